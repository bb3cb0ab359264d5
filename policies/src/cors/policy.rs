//! One compiled CORS policy (`[cors]` or a route's `cors`): origin matching and the header values
//! it sends, rendered once at build time.
//!
//! Owns: origin patterns (exact, `scheme://*.suffix`, `*`), the preflight decision and the
//! pre-rendered `Access-Control-*` values. Must not: touch requests or responses (the filter does).

use bytes::Bytes;
use portcullis_core::config::CorsConfig;

/// One `allow_origins` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
enum OriginRule {
    /// `*`.
    Any,
    /// An exact origin (lowercase).
    Exact(String),
    /// `scheme://*.suffix`: the scheme and `://` (`prefix`), then one or more labels, then the
    /// `.suffix` (both lowercase).
    Wildcard { prefix: String, suffix: String },
}

impl OriginRule {
    fn parse(s: &str) -> OriginRule {
        let s = s.trim_end_matches('/').to_ascii_lowercase();
        if s == "*" {
            return OriginRule::Any;
        }
        match s.split_once("://*.") {
            Some((scheme, rest)) => {
                OriginRule::Wildcard { prefix: format!("{scheme}://"), suffix: format!(".{rest}") }
            }
            None => OriginRule::Exact(s),
        }
    }

    fn matches(&self, origin: &[u8]) -> bool {
        match self {
            OriginRule::Any => true,
            OriginRule::Exact(o) => origin.eq_ignore_ascii_case(o.as_bytes()),
            OriginRule::Wildcard { prefix, suffix } => {
                let (p, s) = (prefix.as_bytes(), suffix.as_bytes());
                if origin.len() <= p.len() + s.len() {
                    return false;
                }
                let (head, rest) = origin.split_at(p.len());
                let (middle, tail) = rest.split_at(rest.len() - s.len());
                head.eq_ignore_ascii_case(p)
                    && tail.eq_ignore_ascii_case(s)
                    && middle.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
                    && !middle.starts_with(b".")
                    && !middle.ends_with(b".")
            }
        }
    }
}

/// Why a preflight is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreflightDenied {
    /// The origin is not allowed.
    Origin,
    /// The requested method is not allowed.
    Method,
    /// A requested header is not allowed.
    Header,
}

/// A compiled policy.
#[derive(Debug)]
pub struct CorsPolicy {
    origins: Vec<OriginRule>,
    any_method: bool,
    methods: Vec<String>,
    any_header: bool,
    /// Lowercase names.
    headers: Vec<String>,
    credentials: bool,
    /// `Access-Control-Allow-Methods` (the configured list).
    pub allow_methods: Bytes,
    /// `Access-Control-Expose-Headers`, when configured.
    pub expose: Option<Bytes>,
    /// `Access-Control-Max-Age`, when non-zero.
    pub max_age: Option<Bytes>,
    /// `*` is sent instead of the origin (any origin, no credentials).
    pub wildcard: bool,
}

impl CorsPolicy {
    /// Compiles a validated config; `None` when it is disabled.
    pub fn build(cfg: &CorsConfig) -> Option<CorsPolicy> {
        if !cfg.enabled || cfg.allow_origins.is_empty() {
            return None;
        }
        let origins: Vec<OriginRule> = cfg.allow_origins.iter().map(|o| OriginRule::parse(o)).collect();
        let secs = cfg.max_age.0.as_secs();
        Some(CorsPolicy {
            wildcard: !cfg.allow_credentials && origins.contains(&OriginRule::Any),
            origins,
            any_method: cfg.allow_methods.iter().any(|m| m == "*"),
            methods: cfg.allow_methods.clone(),
            any_header: cfg.allow_headers.iter().any(|h| h == "*"),
            headers: cfg.allow_headers.iter().map(|h| h.to_ascii_lowercase()).collect(),
            credentials: cfg.allow_credentials,
            allow_methods: Bytes::from(cfg.allow_methods.join(", ")),
            expose: (!cfg.expose_headers.is_empty()).then(|| Bytes::from(cfg.expose_headers.join(", "))),
            max_age: (secs > 0).then(|| Bytes::from(secs.to_string())),
        })
    }

    /// True when `origin` may see responses.
    pub fn allows_origin(&self, origin: &[u8]) -> bool {
        self.origins.iter().any(|r| r.matches(origin))
    }

    /// True when `Access-Control-Allow-Credentials: true` is sent.
    pub fn credentials(&self) -> bool {
        self.credentials
    }

    /// Checks a preflight's origin, `Access-Control-Request-Method` and
    /// `Access-Control-Request-Headers` (comma-separated).
    pub fn preflight(
        &self,
        origin: &[u8],
        method: &[u8],
        headers: Option<&[u8]>,
    ) -> Result<(), PreflightDenied> {
        if !self.allows_origin(origin) {
            return Err(PreflightDenied::Origin);
        }
        if !self.any_method && !self.methods.iter().any(|m| m.as_bytes() == method) {
            return Err(PreflightDenied::Method);
        }
        if !self.any_header {
            let asked = headers.unwrap_or_default().split(|&b| b == b',').map(|h| h.trim_ascii());
            for h in asked.filter(|h| !h.is_empty()) {
                if !self.headers.iter().any(|a| h.eq_ignore_ascii_case(a.as_bytes())) {
                    return Err(PreflightDenied::Header);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(origins: &[&str], credentials: bool) -> CorsPolicy {
        let cfg = CorsConfig {
            allow_origins: origins.iter().map(|s| (*s).to_owned()).collect(),
            allow_headers: vec!["Content-Type".into(), "X-Trace".into()],
            allow_credentials: credentials,
            ..CorsConfig::default()
        };
        CorsPolicy::build(&cfg).expect("enabled")
    }

    #[test]
    fn origins_match_exactly_or_by_subdomain_pattern() {
        let p = policy(&["https://app.example.com", "https://*.example.org"], false);
        assert!(p.allows_origin(b"https://app.example.com"));
        assert!(p.allows_origin(b"HTTPS://APP.example.com"));
        assert!(!p.allows_origin(b"http://app.example.com"));
        assert!(!p.allows_origin(b"https://app.example.com.evil.net"));
        assert!(p.allows_origin(b"https://a.example.org"));
        assert!(p.allows_origin(b"https://a.b.example.org"));
        assert!(!p.allows_origin(b"https://example.org"));
        assert!(!p.allows_origin(b"https://.example.org"));
        assert!(!p.allows_origin(b"https://evil.net/.example.org"));
        assert!(!p.allows_origin(b"https://evilexample.org"));
        assert!(!p.allows_origin(b"null"));
        assert!(!p.wildcard);
    }

    #[test]
    fn any_origin_sends_star_only_without_credentials() {
        assert!(policy(&["*"], false).wildcard);
        let p = policy(&["*"], true);
        assert!(!p.wildcard && p.allows_origin(b"https://x.test"));
    }

    #[test]
    fn preflight_checks_method_and_every_requested_header() {
        let p = policy(&["https://app.example.com"], false);
        let o = b"https://app.example.com".as_slice();
        assert_eq!(p.preflight(o, b"PUT", Some(b"content-type, x-trace")), Ok(()));
        assert_eq!(p.preflight(o, b"GET", None), Ok(()));
        assert_eq!(p.preflight(o, b"TRACE", None), Err(PreflightDenied::Method));
        assert_eq!(p.preflight(o, b"put", None), Err(PreflightDenied::Method), "methods are case-sensitive");
        assert_eq!(p.preflight(o, b"GET", Some(b"x-secret")), Err(PreflightDenied::Header));
        assert_eq!(p.preflight(b"https://other.test", b"GET", None), Err(PreflightDenied::Origin));
        assert_eq!(&p.allow_methods[..], b"GET, HEAD, POST, PUT, PATCH, DELETE");
        assert_eq!(p.max_age.as_deref(), Some(b"600".as_slice()));
    }

    #[test]
    fn disabled_or_empty_policies_compile_to_nothing() {
        assert!(CorsPolicy::build(&CorsConfig::default()).is_none());
        let cfg = CorsConfig { enabled: false, allow_origins: vec!["*".into()], ..CorsConfig::default() };
        assert!(CorsPolicy::build(&cfg).is_none());
    }
}
