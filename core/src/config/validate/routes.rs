//! Validation of `[[routes]]`: hosts, paths and templates, prefixes and rewrites, methods, header
//! conditions and edits, upstream references, names.
//!
//! Owns: the per-route rules and host lowercasing. Must not: compile or rank routes (the router
//! in `portcullis-http` does that); its limits are mirrored here so a validated config compiles.

use std::collections::{HashMap, HashSet};

use super::{Issues, is_field_value, is_token};
use crate::config::model::{HeaderOps, RouteConfig};
use crate::config::spans::KeyPath;

/// Longest host name accepted (DNS allows 253; slack for bracketed IPv6 literals).
const MAX_HOST_LEN: usize = 255;
/// Longest path, prefix or rewrite in bytes.
const MAX_PATTERN_LEN: usize = 8192;
/// Most segments in a path or prefix.
const MAX_SEGMENTS: usize = 128;

/// Checks every route; `upstreams` are the defined upstream names.
pub(super) fn check(
    routes: &mut [RouteConfig],
    upstreams: &HashSet<String>,
    path: &KeyPath,
    out: &mut Issues,
) {
    let mut names: HashMap<String, usize> = HashMap::new();
    for (i, r) in routes.iter_mut().enumerate() {
        let here = path.index(i);
        if let Some(name) = &r.name {
            if name.trim().is_empty() {
                out.push(here.key("name"), "route name must not be empty (omit it to get route-N)");
            } else if let Some(&first) = names.get(name) {
                out.push(here.key("name"), format!("duplicate route name {name:?} (also routes[{first}])"));
            } else {
                names.insert(name.clone(), i);
            }
        }
        for (j, host) in r.hosts.iter_mut().enumerate() {
            match check_host(host) {
                Ok(lower) => *host = lower,
                Err(msg) => out.push(here.key("hosts").index(j), msg),
            }
        }
        paths(r, &here, out);
        for (j, m) in r.methods.iter().enumerate() {
            if !is_token(m) {
                out.push(
                    here.key("methods").index(j),
                    format!("method {m:?} is not a valid HTTP method token"),
                );
            } else if m.bytes().any(|b| b.is_ascii_lowercase()) {
                out.push(
                    here.key("methods").index(j),
                    format!(
                        "method {m:?} must be uppercase (methods are case-sensitive): use {:?}",
                        m.to_ascii_uppercase()
                    ),
                );
            }
        }
        for (j, h) in r.headers.iter().enumerate() {
            let at = here.key("headers").index(j);
            if !is_token(&h.name) {
                out.push(at.key("name"), format!("header name {:?} is not a valid header name", h.name));
            }
            if h.value.as_deref().is_some_and(|v| !is_field_value(v)) {
                out.push(at.key("value"), bad_value(&h.name));
            }
        }
        if !upstreams.contains(&r.upstream) {
            out.push(here.key("upstream"), format!("unknown upstream {:?}", r.upstream));
        }
        out.nonzero(here.key("timeout"), r.timeout);
        header_ops(&r.request_headers, &here.key("request_headers"), out);
        header_ops(&r.response_headers, &here.key("response_headers"), out);
    }
}

/// The message for a header value with control characters.
fn bad_value(name: &str) -> String {
    format!("value of header {name:?} must not contain control characters (CR, LF, NUL, ...)")
}

/// `path`, `prefix` and `rewrite_prefix` of one route.
fn paths(r: &RouteConfig, here: &KeyPath, out: &mut Issues) {
    if r.path.is_some() && r.prefix.is_some() {
        out.push(here.key("prefix"), "`path` and `prefix` are mutually exclusive: set one of them");
    }
    if let Some((p, Err(msg))) = r.path.as_deref().map(|p| (p, check_path(p))) {
        out.push(here.key("path"), format!("path {p:?} {msg}"));
    }
    if let Some((p, Err(msg))) = r.prefix.as_deref().map(|p| (p, check_literal(p))) {
        out.push(here.key("prefix"), format!("prefix {p:?} {msg}"));
    }
    if let Some(rw) = &r.rewrite_prefix {
        if r.prefix.is_none() {
            out.push(here.key("rewrite_prefix"), "rewrite_prefix is only allowed on a route with `prefix`");
        } else if let Err(msg) = check_literal(rw) {
            out.push(here.key("rewrite_prefix"), format!("rewrite_prefix {rw:?} {msg}"));
        } else if rw.trim_end_matches('/').contains("//") {
            out.push(here.key("rewrite_prefix"), format!("rewrite_prefix {rw:?} must not contain `//`"));
        }
    }
}

/// Rules shared by paths, prefixes and rewrites; returns the text after the leading `/`.
fn check_common(p: &str) -> Result<&str, String> {
    let rest = p.strip_prefix('/').ok_or("must start with `/`")?;
    if p.len() > MAX_PATTERN_LEN {
        return Err(format!("is longer than {MAX_PATTERN_LEN} bytes"));
    }
    if p.bytes().any(|b| b <= b' ' || b == 0x7f || b == b'?' || b == b'#' || !b.is_ascii()) {
        return Err(
            "must not contain spaces, control characters, `?`, `#` or non-ASCII characters".to_owned()
        );
    }
    if rest.split('/').count() > MAX_SEGMENTS {
        return Err(format!("has more than {MAX_SEGMENTS} segments"));
    }
    Ok(rest)
}

/// A prefix or rewrite: common rules and no templates.
fn check_literal(p: &str) -> Result<(), String> {
    check_common(p)?;
    if p.contains(['{', '}']) {
        return Err("must be literal: `{name}` templates are only allowed in `path`".to_owned());
    }
    Ok(())
}

/// An exact path or a template whose `{name}` parameters are whole segments, named once each.
fn check_path(p: &str) -> Result<(), String> {
    let rest = check_common(p)?;
    let mut seen: Vec<&str> = Vec::new();
    for seg in rest.split('/') {
        if !seg.contains(['{', '}']) {
            continue;
        }
        let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) else {
            return Err(format!("has {seg:?}: a template must be a whole segment, like /users/{{id}}"));
        };
        if !is_identifier(name) {
            return Err(format!(
                "has template {seg:?}: a name must be a letter or `_` followed by letters, digits or `_`"
            ));
        }
        if seen.contains(&name) {
            return Err(format!("repeats template {{{name}}}: each name may appear once"));
        }
        seen.push(name);
    }
    Ok(())
}

/// True for `[A-Za-z_][A-Za-z0-9_]*`.
fn is_identifier(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Checks a host pattern (`api.example.com`, `*.example.com`, `*`, `[::1]`) and lowercases it.
fn check_host(h: &str) -> Result<String, String> {
    let lower = h.to_ascii_lowercase();
    if lower == "*" {
        return Ok(lower);
    }
    if lower.len() > MAX_HOST_LEN {
        return Err(format!("host {h:?} is longer than {MAX_HOST_LEN} bytes"));
    }
    let name = match lower.strip_prefix("*.") {
        Some(suffix) => suffix,
        None if lower.contains('*') => {
            return Err(format!(
                "host {h:?}: only a leading `*.` wildcard is allowed, like \"*.example.com\""
            ));
        }
        None => &lower,
    };
    if let Some(inner) = name.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
        if name.len() == lower.len() && inner.parse::<std::net::Ipv6Addr>().is_ok() {
            return Ok(lower);
        }
        return Err(format!("host {h:?} is not a valid bracketed IPv6 address"));
    }
    if name.contains('*') {
        return Err(format!("host {h:?}: only a leading `*.` wildcard is allowed, like \"*.example.com\""));
    }
    if name.contains(':') {
        return Err(format!("host {h:?}: hosts match without the port; remove `:port`"));
    }
    let label_ok =
        |l: &str| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !name.split('.').all(label_ok) {
        return Err(format!(
            "host {h:?} is not a host name: use letters, digits, `-` and `_` in dot-separated labels"
        ));
    }
    Ok(lower)
}

/// Headers owned by the codec: editing them from config could desynchronise message framing.
pub const FRAMING_HEADERS: &[&str] = &[
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
];

fn reserved(name: &str) -> bool {
    FRAMING_HEADERS.iter().any(|r| r.eq_ignore_ascii_case(name))
}

/// `remove`, `set` and `add` of one header edit block.
fn header_ops(ops: &HeaderOps, path: &KeyPath, out: &mut Issues) {
    for (j, name) in ops.remove.iter().enumerate() {
        if !is_token(name) {
            out.push(path.key("remove").index(j), format!("header name {name:?} is not a valid header name"));
        } else if reserved(name) {
            out.push(
                path.key("remove").index(j),
                format!("header {name:?} is managed by the gateway and cannot be edited"),
            );
        }
    }
    for (key, map) in [("set", &ops.set), ("add", &ops.add)] {
        for (name, value) in map {
            let at = path.key(key).key(name);
            if !is_token(name) {
                out.push(at.clone(), format!("header name {name:?} is not a valid header name"));
            } else if reserved(name) {
                out.push(
                    at.clone(),
                    format!("header {name:?} is managed by the gateway and cannot be edited"),
                );
            }
            if !is_field_value(value) {
                out.push(at, bad_value(name));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert_eq!(check_host("API.Example.com"), Ok("api.example.com".to_owned()));
        assert_eq!(check_host("*.Example.com"), Ok("*.example.com".to_owned()));
        assert_eq!(check_host("*"), Ok("*".to_owned()));
        assert_eq!(check_host("[::1]"), Ok("[::1]".to_owned()));
        assert_eq!(check_host("10.0.0.1"), Ok("10.0.0.1".to_owned()));
        for bad in [
            "",
            "a*.example.com",
            "*example.com",
            "*.",
            "*.*.example.com",
            "api.example.com:8080",
            "a..b",
            ".a",
            "a b",
            "[::1",
            "[zz]",
            "*.[::1]",
        ] {
            assert!(check_host(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn paths_and_templates() {
        assert!(check_path("/").is_ok());
        assert!(check_path("/users/{id}/posts/{post_id}").is_ok());
        assert!(check_path("/users/{id}x").is_err());
        assert!(check_path("/users/x{id}").is_err());
        assert!(check_path("/users/{}").is_err());
        assert!(check_path("/users/{1d}").is_err());
        assert!(check_path("/a/{id}/b/{id}").is_err());
        assert!(check_path("users").is_err());
        assert!(check_path("/a?b").is_err());
        assert!(check_path("/a b").is_err());
        assert!(check_path("/é").is_err());
        assert!(check_literal("/api/{v}").is_err());
        assert!(check_literal("/api/").is_ok());
        let long = format!("/{}", "a/".repeat(MAX_SEGMENTS));
        assert!(check_path(&long).is_err());
    }

    use crate::config::load_str;
    use crate::config::validate::tests::{BASE, BASE_LINES, load, one};

    #[test]
    fn unknown_upstream_display() {
        let text = format!("{BASE}[[routes]]\nprefix = \"/\"\nupstream = \"users-v3\"\n");
        let errs = load_str(&text, "gateway.toml").expect_err("unknown upstream");
        assert_eq!(errs.len(), 1);
        assert_eq!(
            errs.to_string(),
            format!("routes[0].upstream: unknown upstream \"users-v3\" (gateway.toml:{})", BASE_LINES + 3)
        );
    }

    #[test]
    fn path_and_prefix_exclusive() {
        one(
            "[[routes]]\npath = \"/a\"\nprefix = \"/b\"\nupstream = \"app\"\n",
            "routes[0].prefix",
            3,
            "exclusive",
        );
    }

    #[test]
    fn path_and_prefix_start_with_slash() {
        one("[[routes]]\npath = \"a\"\nupstream = \"app\"\n", "routes[0].path", 2, "must start with `/`");
        one(
            "[[routes]]\nprefix = \"api\"\nupstream = \"app\"\n",
            "routes[0].prefix",
            2,
            "must start with `/`",
        );
        one("[[routes]]\nprefix = \"/a?x=1\"\nupstream = \"app\"\n", "routes[0].prefix", 2, "`?`");
    }

    #[test]
    fn templates() {
        let route = |p: &str| format!("[[routes]]\nupstream = \"app\"\npath = \"{p}\"\n");
        one(&route("/users/{id}.json"), "routes[0].path", 3, "whole segment");
        one(&route("/users/{user-id}"), "routes[0].path", 3, "a name must be a letter");
        one(&route("/a/{id}/b/{id}"), "routes[0].path", 3, "repeats template {id}");
        one(
            "[[routes]]\nupstream = \"app\"\nprefix = \"/v/{x}\"\n",
            "routes[0].prefix",
            3,
            "only allowed in `path`",
        );
        assert!(load(&route("/users/{id}/posts/{post_id}")).is_ok());
    }

    #[test]
    fn rewrite_prefix() {
        let extra = "[[routes]]\npath = \"/a\"\nrewrite_prefix = \"/b\"\nupstream = \"app\"\n";
        one(extra, "routes[0].rewrite_prefix", 3, "only allowed on a route with `prefix`");
        let extra = "[[routes]]\nprefix = \"/a\"\nrewrite_prefix = \"b\"\nupstream = \"app\"\n";
        one(extra, "routes[0].rewrite_prefix", 3, "must start with `/`");
        let extra = "[[routes]]\nprefix = \"/a\"\nrewrite_prefix = \"/b//c\"\nupstream = \"app\"\n";
        one(extra, "routes[0].rewrite_prefix", 3, "must not contain `//`");
        assert!(load("[[routes]]\nprefix = \"/a\"\nrewrite_prefix = \"/\"\nupstream = \"app\"\n").is_ok());
    }

    #[test]
    fn methods() {
        let extra = "[[routes]]\nupstream = \"app\"\nmethods = [\"GET\", \"get\"]\n";
        one(extra, "routes[0].methods[1]", 3, "must be uppercase (methods are case-sensitive): use \"GET\"");
        one(
            "[[routes]]\nupstream = \"app\"\nmethods = [\"GE T\"]\n",
            "routes[0].methods[0]",
            3,
            "not a valid",
        );
        one("[[routes]]\nupstream = \"app\"\nmethods = [\"\"]\n", "routes[0].methods[0]", 3, "not a valid");
    }

    #[test]
    fn hosts_checked_and_lowercased() {
        let extra =
            "[[routes]]\nupstream = \"app\"\nhosts = [\n  \"ok.example.com\",\n  \"a.*.example.com\",\n]\n";
        one(extra, "routes[0].hosts[1]", 5, "only a leading `*.` wildcard");
        one(
            "[[routes]]\nupstream = \"app\"\nhosts = [\"a.com:80\"]\n",
            "routes[0].hosts[0]",
            3,
            "without the port",
        );
        let cfg = load("[[routes]]\nupstream = \"app\"\nhosts = [\"API.Example.COM\", \"*.Example.com\"]\n")
            .expect("valid hosts");
        assert_eq!(cfg.routes[0].hosts, ["api.example.com", "*.example.com"]);
    }

    #[test]
    fn header_names() {
        let extra = "[[routes]]\nupstream = \"app\"\n\n[[routes.headers]]\nname = \"x bad\"\n";
        one(extra, "routes[0].headers[0].name", 5, "not a valid header name");
        let extra = "[[routes]]\nupstream = \"app\"\n[routes.request_headers]\nremove = [\"ok\", \"b@d\"]\n";
        one(extra, "routes[0].request_headers.remove[1]", 4, "\"b@d\"");
        let extra = "[[routes]]\nupstream = \"app\"\n[routes.response_headers.set]\n\"x y\" = \"1\"\n";
        one(extra, "routes[0].response_headers.set.\"x y\"", 4, "not a valid header name");
        let extra = "[[routes]]\nupstream = \"app\"\n[routes.request_headers.add]\n\"x:y\" = \"1\"\n";
        one(extra, "routes[0].request_headers.add.\"x:y\"", 4, "not a valid header name");
    }

    #[test]
    fn framing_headers_are_refused() {
        let extra =
            "[[routes]]\nupstream = \"app\"\n[routes.request_headers]\nremove = [\"Content-Length\"]\n";
        one(extra, "routes[0].request_headers.remove[0]", 4, "managed by the gateway");
        let extra = "[[routes]]\nupstream = \"app\"\n[routes.response_headers.set]\nconnection = \"close\"\n";
        one(extra, "routes[0].response_headers.set.connection", 4, "managed by the gateway");
    }

    #[test]
    fn header_values() {
        let extra =
            "[[routes]]\nupstream = \"app\"\n[routes.request_headers.set]\nx-a = \"1\\r\\nEvil: 1\"\n";
        one(extra, "routes[0].request_headers.set.x-a", 4, "control characters");
        let extra = "[[routes]]\nupstream = \"app\"\n[routes.response_headers.add]\nx-a = \"nul\\u0000\"\n";
        one(extra, "routes[0].response_headers.add.x-a", 4, "control characters");
        let extra = "[[routes]]\nupstream = \"app\"\nheaders = [{ name = \"x-a\", value = \"a\\nb\" }]\n";
        one(extra, "routes[0].headers[0].value", 3, "control characters");
        assert!(
            load("[[routes]]\nupstream = \"app\"\nheaders = [{ name = \"x-a\", value = \"a\\tb\" }]\n")
                .is_ok()
        );
    }

    #[test]
    fn route_names() {
        let extra =
            "[[routes]]\nname = \"r\"\nupstream = \"app\"\n\n[[routes]]\nname = \"r\"\nupstream = \"app\"\n";
        one(extra, "routes[1].name", 6, "duplicate route name \"r\" (also routes[0])");
        one("[[routes]]\nname = \"\"\nupstream = \"app\"\n", "routes[0].name", 2, "must not be empty");
    }

    #[test]
    fn route_timeout() {
        one(
            "[[routes]]\nupstream = \"app\"\ntimeout = \"0s\"\n",
            "routes[0].timeout",
            3,
            "greater than zero",
        );
    }
}
