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

// SAFETY: a read and a write of the adapter may be in flight at once on its one thread (an
// upgrade tunnel, HTTP/2 through `monoio_compat`). Across every await the adapter holds no
// borrow of its own fields but the socket: the rustls state is touched only between awaits, and
// the ciphertext buffers are moved out of the struct for the socket operation and put back after.
// The socket is TCP, whose reads and writes (even two writes at once, when the read side answers
// a key update while the write side flushes) are independent io_uring operations on owned
// buffers. The bound names TCP rather than any `Split` stream because of those two writes.
unsafe impl<C> monoio::io::Split for TlsStream<monoio::net::TcpStream, C> {}
