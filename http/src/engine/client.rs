//! What the engine knows about a client connection: the same for every request on it, filled
//! in by the accept, TLS and QUIC stages.
//!
//! Owns: `ClientMeta`. Must not: do I/O.

use std::net::SocketAddr;
use std::rc::Rc;

use bytes::Bytes;
use portcullis_core::pipeline::ClientCert;

/// What the engine knows about the client connection (the same for every request on it).
#[derive(Clone, Debug)]
pub struct ClientMeta {
    /// The peer address.
    pub addr: SocketAddr,
    /// Whether the connection is TLS.
    pub tls: bool,
    /// The negotiated TLS version (`TLSv1.2`, `TLSv1.3`), for the access log.
    pub tls_version: Option<&'static str>,
    /// The verified client certificate (mTLS), if the client presented one.
    pub client_cert: Option<Rc<ClientCert>>,
    /// `Alt-Svc` to put on every response (the listener advertises HTTP/3).
    pub alt_svc: Option<Bytes>,
}
