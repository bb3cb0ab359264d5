//! The wire protocol an `[[upstreams]]` entry speaks toward its endpoints.
//!
//! Owns: the `protocol` key's values. Must not: check combinations with other keys (that is
//! `validate/protocol.rs`).

use serde::Deserialize;

/// `protocol`: how requests are sent to an upstream's endpoints.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamProtocol {
    /// HTTP/1.1 over pooled keep-alive connections (plain or TLS).
    #[default]
    Http1,
    /// HTTP/2 over TLS (ALPN `h2`; needs `[upstreams.tls]`), multiplexed.
    H2,
    /// HTTP/2 over cleartext TCP with prior knowledge, multiplexed.
    H2c,
}

impl UpstreamProtocol {
    /// Whether requests go out as HTTP/2 streams.
    pub fn is_h2(self) -> bool {
        self != UpstreamProtocol::Http1
    }
}
