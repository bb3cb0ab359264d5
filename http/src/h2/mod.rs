//! HTTP/2 toward clients (h2 crate over monoio through `monoio_compat`): connections, streams
//! through the shared proxy engine, body bridges, the flood and slow-header guard, and the
//! reset watch that cancels a reset stream's exchange.
//!
//! Owns: HTTP/2 client-side framing and connection management. Must not: duplicate the engine
//! (`crate::engine` runs every stream) or know filters by name.

pub(crate) mod body;
mod conn;
pub mod guard;
mod prior;
mod reset;
mod stream;

pub use conn::serve_h2;
pub use prior::{Prefixed, serve_h2c_or_h1};

/// The client connection preface of HTTP/2 (prior knowledge starts with it).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
