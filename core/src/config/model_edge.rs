//! Edge settings of the configuration model: TLS toward an upstream (`[upstreams.tls]`).
//!
//! Owns: the serde shape of upstream TLS settings and their defaults. Must not: read
//! certificate files or know the TLS library (the HTTP crate builds the client context from
//! this). Every key here is documented in `docs/config.md`; keep the two in step.

use serde::Deserialize;

/// ALPN protocol ids that may be offered to an upstream.
pub const UPSTREAM_ALPN: &[&str] = &["h2", "http/1.1"];

/// `[upstreams.tls]`: connect to this upstream's endpoints over TLS.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq, Hash)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTlsConfig {
    /// PEM file with the CA certificates the upstream's certificate must chain to; absent =
    /// the bundled Mozilla root set (webpki-roots).
    #[serde(default)]
    pub ca: Option<String>,
    /// Name sent by SNI and verified in the certificate; absent = the host of the first endpoint.
    #[serde(default)]
    pub server_name: Option<String>,
    /// ALPN protocols offered to the upstream (empty = no ALPN).
    #[serde(default)]
    pub alpn: Vec<String>,
    /// PEM certificate chain presented to the upstream (mTLS to the backend).
    #[serde(default)]
    pub client_cert: Option<String>,
    /// PEM private key of `client_cert`.
    #[serde(default)]
    pub client_key: Option<String>,
    /// Accept any upstream certificate (testing only: it disables authentication of the
    /// upstream and logs a warning at start).
    #[serde(default)]
    pub insecure_skip_verify: bool,
}
