//! Downstream TLS termination: per-listener rustls contexts (SNI, versions, suites, ALPN,
//! tickets), certificate loading with start-up checks, the stream adapter the HTTP servers read
//! and write through, and the accept stage (`accept`: handshake, then HTTP/2 or HTTP/1.1).
//!
//! Owns: everything between the accepted TCP socket and plaintext HTTP bytes. Must not: parse
//! HTTP or know routes and filters.

pub(crate) mod accept;
mod certs;
mod context;
mod sni;
mod stream;
pub mod x509;

pub use context::{ListenerTls, build};
pub use stream::TlsStream;
