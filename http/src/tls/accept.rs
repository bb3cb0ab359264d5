//! One accepted TLS client connection: the handshake (bounded by the listener's handshake
//! timeout), then HTTP/2 (ALPN `h2`) or HTTP/1.1 over the decrypted stream.
//!
//! Owns: the step from a TCP socket to a protocol engine on a TLS listener. Must not: parse
//! HTTP or hold TLS settings (they come from the generation current at accept time, so a reload
//! with new certificates applies to new connections while old ones keep theirs).

use std::rc::Rc;

use monoio::net::TcpStream;
use portcullis_core::pipeline::{ClientCert, Filter};

use crate::engine::client::ClientMeta;
use crate::h1::server::serve_conn;
use crate::h2::serve_h2;
use crate::shard::state::ShardState;
use crate::tls::{ListenerTls, TlsStream, x509};

/// The identity in the client's verified certificate (rustls verified the chain already).
fn client_cert(stream: &TlsStream<TcpStream>) -> Option<Rc<ClientCert>> {
    let leaf = stream.connection().peer_certificates()?.first()?;
    let info = x509::parse(leaf).ok()?;
    let spiffe_id = info.uris.iter().find(|u| u.starts_with("spiffe://")).cloned();
    Some(Rc::new(ClientCert { subject: info.subject, dns_names: info.dns_names, uris: info.uris, spiffe_id }))
}

/// Completes the handshake and serves the connection. (An `async` block, not an `async fn`,
/// so the arguments are not stored twice in every connection's task; the handshake and the
/// HTTP/2 engine are boxed, so an idle HTTP/1.1 TLS connection's task holds neither.)
#[allow(clippy::manual_async_fn, reason = "an async fn stores its arguments twice in the task")]
pub fn serve_tls<F: Filter + 'static>(
    state: Rc<ShardState<F>>,
    stream: TcpStream,
    client: ClientMeta,
    tls: ListenerTls,
) -> impl Future<Output = ()> {
    async move {
        let offers_h2 = tls.offers_h2;
        let Some((stream, client)) = Box::pin(handshake(stream, client, tls)).await else {
            return;
        };
        if offers_h2 && stream.connection().alpn_protocol() == Some(b"h2") {
            Box::pin(serve_h2(state, stream, client)).await;
        } else {
            serve_conn(state, stream, client).await;
        }
    }
}

/// The handshake, bounded by the listener's timeout; the stream and what it tells about the
/// client, or `None` (logged) when it failed.
async fn handshake(
    stream: TcpStream,
    client: ClientMeta,
    tls: ListenerTls,
) -> Option<(TlsStream<TcpStream>, ClientMeta)> {
    let peer = client.addr;
    let handshake = TlsStream::accept(stream, tls.config.clone());
    let stream = match monoio::time::timeout(tls.handshake_timeout, handshake).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            return None;
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            return None;
        }
    };
    let tls_version = match stream.connection().protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => Some("TLSv1.3"),
        Some(rustls::ProtocolVersion::TLSv1_2) => Some("TLSv1.2"),
        _ => None,
    };
    let client = ClientMeta { client_cert: client_cert(&stream), tls_version, ..client };
    Some((stream, client))
}
