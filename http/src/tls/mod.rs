//! Downstream TLS termination: per-listener rustls contexts (SNI, versions, suites, ALPN,
//! tickets), certificate loading with start-up checks, and the stream adapter the HTTP engine
//! reads and writes through.
//!
//! Owns: everything between the accepted TCP socket and plaintext HTTP bytes. Must not: parse
//! HTTP or know routes and filters.

mod certs;
mod context;
mod sni;
mod stream;
pub mod x509;

pub use context::{ListenerTls, build};
pub use stream::TlsStream;
