//! The configuration model of the browser-facing response policy: `[cors]` (also per route as
//! `routes[].cors`) and `[response]` (internal response headers stripped before the client).
//!
//! Owns: the serde shape and defaults of those sections. Must not: validate (`validate/cors.rs`
//! does) or compile matchers (the policies crate's `cors` filter does). Documented in
//! `docs/config.md` (sections "CORS" and "`[response]`").

use serde::Deserialize;

use super::units::Dur;

/// `[cors]` / `routes[].cors`: which browser origins may call the API and how.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorsConfig {
    /// `false` turns CORS off (on a route: overrides the global `[cors]`).
    pub enabled: bool,
    /// Allowed origins: exact (`https://app.example.com`), one-level-or-more wildcard
    /// (`https://*.example.com`), or `*` (any).
    pub allow_origins: Vec<String>,
    /// Methods a preflight may ask for (`*` = any).
    pub allow_methods: Vec<String>,
    /// Request headers a preflight may ask for, case-insensitive (`*` = any).
    pub allow_headers: Vec<String>,
    /// Response headers the browser may read (`Access-Control-Expose-Headers`).
    pub expose_headers: Vec<String>,
    /// Send `Access-Control-Allow-Credentials: true` (the origin is then always echoed, never `*`).
    pub allow_credentials: bool,
    /// How long a browser may cache a preflight (`Access-Control-Max-Age`); 0 = header left out.
    pub max_age: Dur,
}

impl Default for CorsConfig {
    fn default() -> Self {
        CorsConfig {
            enabled: true,
            allow_origins: Vec::new(),
            allow_methods: ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"].map(str::to_owned).to_vec(),
            allow_headers: Vec::new(),
            expose_headers: Vec::new(),
            allow_credentials: false,
            max_age: Dur::secs(600),
        }
    }
}

/// `[response]`: edits applied to every response the client gets (upstream or local).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResponseConfig {
    /// Header names removed from every response, case-insensitive; a trailing `*` matches a
    /// prefix (`x-internal-*`).
    pub strip_headers: Vec<String>,
}
