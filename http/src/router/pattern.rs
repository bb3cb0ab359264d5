//! Parsing one `RouteConfig` into the router's patterns: host patterns, a segmented path
//! pattern, and method/header conditions, with validation.
//!
//! Owns: the syntax of hosts (`name`, `*.suffix`, `*`), paths (exact, `{name}` templates) and
//! prefixes, and their limits. Must not: build tables or match requests.

use portcullis_core::config::RouteConfig;

use super::conds::{Conditions, HeaderCond};
use super::error::RouterError;
use super::rank::{HostClass, PathKind, Rank};
use super::saturate;

/// Longest host name (DNS allows 253; a little slack for IPv6 literals in brackets).
pub(crate) const MAX_HOST_LEN: usize = 255;
/// Longest path or prefix pattern in bytes.
pub(crate) const MAX_PATTERN_LEN: usize = 8192;
/// Most segments in a path or prefix pattern (bounds the trie depth and the search recursion).
pub(crate) const MAX_SEGMENTS: usize = 128;

/// One host condition of a route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum HostPattern {
    /// No host condition.
    Any,
    /// Lowercased exact host.
    Exact(Box<[u8]>),
    /// Lowercased suffix including its leading dot (`*.example.com` -> `.example.com`).
    Wildcard(Box<[u8]>),
}

/// One segment of a path pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Segment {
    /// Must equal these bytes.
    Literal(Box<[u8]>),
    /// `{name}`: any one non-empty segment.
    Param,
}

/// A route's path condition as trie segments (the text after the leading `/`, split on `/`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum PathPattern {
    /// Any path at all.
    Any,
    /// The path's segments equal these (templates contain `Param`).
    Full { segments: Vec<Segment> },
    /// The path's segments start with these; with `slash`, at least one more segment follows.
    Prefix { segments: Vec<Segment>, slash: bool },
}

/// A route, parsed and validated.
#[derive(Debug)]
pub(crate) struct ParsedRoute {
    /// Host patterns (one `Any` when the route has no host condition).
    pub hosts: Vec<HostPattern>,
    /// Path condition.
    pub path: PathPattern,
    /// Method and header conditions.
    pub conds: Conditions,
    /// Rank fields that come from the path: kind, literal segments, literal bytes.
    kind: PathKind,
    literal_segments: u32,
    literal_bytes: u32,
}

impl ParsedRoute {
    /// Parses and validates route `index`.
    pub fn parse(cfg: &RouteConfig, index: usize) -> Result<ParsedRoute, RouterError> {
        let name = || cfg.display_name(index);
        let mut hosts = Vec::with_capacity(cfg.hosts.len().max(1));
        for h in &cfg.hosts {
            let host = parse_host(h).map_err(|reason| RouterError::BadHost {
                route: name(),
                host: h.clone(),
                reason,
            })?;
            if !hosts.contains(&host) {
                hosts.push(host);
            }
        }
        if hosts.is_empty() {
            hosts.push(HostPattern::Any);
        }
        let (path, kind, literal_segments, literal_bytes) = match (&cfg.path, &cfg.prefix) {
            (Some(_), Some(_)) => return Err(RouterError::PathAndPrefix { route: name() }),
            (None, None) => (PathPattern::Any, PathKind::AnyPath, 0, 0),
            (Some(p), None) => {
                let bad = |reason| RouterError::BadPath { route: name(), path: p.clone(), reason };
                let segments = parse_path(p).map_err(bad)?;
                let template = segments.contains(&Segment::Param);
                let literals = segments.iter().filter(|s| matches!(s, Segment::Literal(_)));
                if template {
                    let count = saturate(literals.clone().count());
                    let bytes = literals.map(|s| if let Segment::Literal(b) = s { b.len() } else { 0 }).sum();
                    (PathPattern::Full { segments }, PathKind::Template, count, saturate(bytes))
                } else {
                    (PathPattern::Full { segments }, PathKind::Exact, 0, saturate(p.len()))
                }
            }
            (None, Some(p)) => {
                let bad = |reason| RouterError::BadPrefix { route: name(), prefix: p.clone(), reason };
                let (segments, slash) = parse_prefix(p).map_err(bad)?;
                (PathPattern::Prefix { segments, slash }, PathKind::Prefix, 0, saturate(p.len()))
            }
        };
        let conds = parse_conditions(cfg, index)?;
        Ok(ParsedRoute { hosts, path, conds, kind, literal_segments, literal_bytes })
    }

    /// The route's rank through an any-host match (see `Rank::with_host` for others).
    pub fn rank(&self, priority: i32, index: usize) -> Rank {
        Rank {
            priority,
            kind: self.kind,
            literal_segments: self.literal_segments,
            literal_bytes: self.literal_bytes,
            host: HostClass::Any,
            host_bytes: 0,
            conditions: self.conds.count(),
            order: std::cmp::Reverse(index),
        }
    }
}

/// Parses `api.example.com`, `*.example.com` or `*`, lowercasing.
fn parse_host(h: &str) -> Result<HostPattern, &'static str> {
    if h == "*" {
        return Ok(HostPattern::Any);
    }
    if h.is_empty() {
        return Err("empty host");
    }
    if h.len() > MAX_HOST_LEN {
        return Err("host is longer than 255 bytes");
    }
    let lower = h.to_ascii_lowercase().into_bytes();
    if lower.iter().any(|b| b.is_ascii_whitespace() || b.is_ascii_control() || *b == b'/') {
        return Err("host contains whitespace, a control character or `/`");
    }
    if let Some(suffix) = lower.strip_prefix(b"*") {
        if suffix.len() < 2 || suffix[0] != b'.' {
            return Err("a wildcard must look like `*.example.com`");
        }
        if suffix.contains(&b'*') {
            return Err("only a single leading `*.` wildcard is supported");
        }
        return Ok(HostPattern::Wildcard(suffix.into()));
    }
    if lower.contains(&b'*') {
        return Err("only a single leading `*.` wildcard is supported");
    }
    if lower[0] != b'[' && lower.contains(&b':') {
        return Err("hosts match without the port; remove `:port`");
    }
    Ok(HostPattern::Exact(lower.into_boxed_slice()))
}

/// Checks the shared rules of paths and prefixes and returns the text after the leading `/`.
fn check_pattern(p: &str) -> Result<&str, &'static str> {
    if p.len() > MAX_PATTERN_LEN {
        return Err("longer than 8192 bytes");
    }
    let rest = p.strip_prefix('/').ok_or("must start with `/`")?;
    if p.bytes().any(|b| b.is_ascii_control() || b == b' ' || b == b'?' || b == b'#') {
        return Err("contains a space, a control character, `?` or `#`");
    }
    if rest.split('/').count() > MAX_SEGMENTS {
        return Err("more than 128 segments");
    }
    Ok(rest)
}

/// Parses an exact path or a `{name}` template into segments.
fn parse_path(p: &str) -> Result<Vec<Segment>, &'static str> {
    let rest = check_pattern(p)?;
    let template = p.contains('{');
    let mut names: Vec<&str> = Vec::new();
    let mut segments = Vec::new();
    for seg in rest.split('/') {
        if !template {
            segments.push(Segment::Literal(seg.as_bytes().into()));
            continue;
        }
        match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(name) => {
                if name.is_empty() || name.contains(['{', '}']) {
                    return Err("a parameter must be a whole segment `{name}` with a non-empty name");
                }
                if names.contains(&name) {
                    return Err("a parameter name is used twice");
                }
                names.push(name);
                segments.push(Segment::Param);
            }
            None if seg.contains(['{', '}']) => {
                return Err("a parameter must be a whole segment `{name}` with a non-empty name");
            }
            None => segments.push(Segment::Literal(seg.as_bytes().into())),
        }
    }
    Ok(segments)
}

/// Parses a prefix into its literal segments and whether it ends with `/`.
fn parse_prefix(p: &str) -> Result<(Vec<Segment>, bool), &'static str> {
    check_pattern(p)?;
    if p.contains(['{', '}']) {
        return Err("prefixes are literal; use `path` for `{name}` templates");
    }
    let (body, slash) = match p.strip_suffix('/') {
        Some(body) => (body, true),
        None => (p, false),
    };
    // `body` is empty (prefix `/`) or starts with `/`.
    let segments = match body.strip_prefix('/') {
        Some(rest) => rest.split('/').map(|s| Segment::Literal(s.as_bytes().into())).collect(),
        None => Vec::new(),
    };
    Ok((segments, slash))
}

/// True for an RFC 9110 `token` (methods and header field names).
fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Validates and collects the method and header conditions of route `index`.
fn parse_conditions(cfg: &RouteConfig, index: usize) -> Result<Conditions, RouterError> {
    let mut methods: Vec<Box<[u8]>> = Vec::with_capacity(cfg.methods.len());
    for m in &cfg.methods {
        if !is_token(m) {
            return Err(RouterError::BadMethod { route: cfg.display_name(index), method: m.clone() });
        }
        if !methods.iter().any(|x| **x == *m.as_bytes()) {
            methods.push(m.as_bytes().into());
        }
    }
    let mut headers = Vec::with_capacity(cfg.headers.len());
    for h in &cfg.headers {
        if !is_token(&h.name) {
            return Err(RouterError::BadHeaderName { route: cfg.display_name(index), name: h.name.clone() });
        }
        headers.push(HeaderCond {
            name: h.name.to_ascii_lowercase().into_boxed_str(),
            value: h.value.as_ref().map(|v| v.as_bytes().into()),
        });
    }
    Ok(Conditions::new(methods, headers))
}
