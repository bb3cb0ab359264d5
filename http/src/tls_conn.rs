//! One accepted TLS client connection: the handshake (bounded by the listener's handshake
//! timeout), then the HTTP engine over the decrypted stream, chosen by ALPN.
//!
//! Owns: the step from a TCP socket to a protocol engine on a TLS listener. Must not: parse
//! HTTP or hold TLS settings (they come from the generation current at accept time, so a reload
//! with new certificates applies to new connections while old ones keep theirs).

use std::net::SocketAddr;
use std::rc::Rc;

use monoio::net::TcpStream;
use portcullis_core::pipeline::Filter;

use crate::conn::{ClientMeta, serve_conn};
use crate::shard::ShardState;
use crate::tls::{ListenerTls, TlsStream};

/// Completes the handshake and serves the connection.
pub async fn serve_tls<F: Filter>(
    state: Rc<ShardState<F>>,
    stream: TcpStream,
    peer: SocketAddr,
    tls: ListenerTls,
) {
    let handshake = TlsStream::accept(stream, tls.config.clone());
    let stream = match monoio::time::timeout(tls.handshake_timeout, handshake).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            return;
        }
    };
    serve_conn(state, stream, ClientMeta { addr: peer, tls: true }).await;
}
