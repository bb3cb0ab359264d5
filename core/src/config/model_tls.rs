//! The TLS part of the configuration model: `[listeners.tls]` and its certificates.
//!
//! Owns: the serde shape of downstream TLS settings and their defaults. Must not: read
//! certificate files or know the TLS library (the HTTP crate builds the TLS context from this).
//! Every key here is documented in `docs/config.md`; keep the two in step.

use serde::Deserialize;

use super::units::Dur;

/// Cipher suite names accepted by `cipher_suites` (the ring provider's suites), TLS 1.3 first.
pub const CIPHER_SUITES: &[&str] = &[
    "TLS13_AES_256_GCM_SHA384",
    "TLS13_AES_128_GCM_SHA256",
    "TLS13_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
];

/// ALPN protocol ids a listener may offer.
pub const ALPN_PROTOCOLS: &[&str] = &["h2", "http/1.1"];

/// Lowest TLS version a listener accepts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub enum TlsVersion {
    /// TLS 1.2 and 1.3.
    #[default]
    #[serde(rename = "1.2")]
    Tls12,
    /// TLS 1.3 only.
    #[serde(rename = "1.3")]
    Tls13,
}

/// Whether a listener asks clients for a certificate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// No client certificates.
    #[default]
    Off,
    /// Ask; a presented certificate must verify, none is fine too.
    Optional,
    /// A verified client certificate is required to complete the handshake.
    Required,
}

/// `[listeners.tls]`: terminate TLS on this listener.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerTlsConfig {
    /// Certificates; SNI picks one, the first is the default.
    pub certificates: Vec<CertificateConfig>,
    /// Lowest accepted protocol version.
    #[serde(default)]
    pub min_version: TlsVersion,
    /// Allowed cipher suites (names from `CIPHER_SUITES`); empty = all, in the library's order.
    #[serde(default)]
    pub cipher_suites: Vec<String>,
    /// ALPN protocols offered, in server preference order.
    #[serde(default = "default_alpn")]
    pub alpn: Vec<String>,
    /// Issue session tickets (stateless resumption, keys shared by all shards and rotated).
    #[serde(default = "default_true")]
    pub session_tickets: bool,
    /// Time allowed for the handshake to complete.
    #[serde(default = "default_handshake_timeout")]
    pub handshake_timeout: Dur,
    /// Client certificate authentication (mTLS).
    #[serde(default)]
    pub client_auth: ClientAuth,
    /// PEM file with the CA certificates client certificates must chain to.
    #[serde(default)]
    pub client_ca: Option<String>,
}

fn default_alpn() -> Vec<String> {
    vec!["http/1.1".to_owned()]
}

fn default_true() -> bool {
    true
}

fn default_handshake_timeout() -> Dur {
    Dur::secs(10)
}

/// `[[listeners.tls.certificates]]`: one certificate chain and its key.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateConfig {
    /// PEM file with the certificate chain (leaf first).
    pub cert: String,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: String,
    /// Names this certificate serves: exact (`api.example.com`) or wildcard (`*.example.com`).
    #[serde(default)]
    pub server_names: Vec<String>,
    /// DER OCSP response file stapled to handshakes with this certificate.
    #[serde(default)]
    pub ocsp: Option<String>,
}

impl ListenerTlsConfig {
    /// Every file this TLS context reads (watched for changes).
    pub fn files(&self) -> impl Iterator<Item = &str> {
        self.certificates.iter().flat_map(|c| {
            [Some(c.cert.as_str()), Some(c.key.as_str()), c.ocsp.as_deref()].into_iter().flatten()
        })
    }
}
