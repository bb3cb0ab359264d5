//! One open upstream connection as the pools lend it out (transport, read buffer, request
//! count, endpoint) and the guard that counts it toward its endpoint while it lives.
//!
//! Owns: `UpConn` and `OpenGuard`. Must not: connect, pool or speak HTTP (`pool`, `h2`).

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;

use bytes::BytesMut;

use super::stream::UpStream;

/// One upstream connection with its read buffer.
pub struct UpConn {
    /// The transport (plain TCP or TLS).
    pub stream: UpStream,
    /// Bytes read from the upstream and not yet consumed.
    pub rbuf: BytesMut,
    /// Requests sent on this connection so far.
    pub requests: u64,
    /// The endpoint it is connected to.
    pub addr: SocketAddr,
    /// Its TLS settings' identity (0 = plain TCP): part of the pool key.
    pub flavor: u64,
    /// Counts it as open toward its endpoint until dropped.
    pub(crate) _open: OpenGuard,
}

/// One open connection in its endpoint's count.
pub(crate) struct OpenGuard(pub(super) Rc<Cell<u32>>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.set(self.0.get().saturating_sub(1));
    }
}
