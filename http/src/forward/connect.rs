//! Opening a new upstream connection for a forward attempt: TCP, then TLS when the upstream
//! speaks it, with their failures as replies.
//!
//! Owns: `open`. Must not: pool connections (that is `upstream::Pool`) or speak HTTP.

use std::net::SocketAddr;

use portcullis_core::LocalReply;

use crate::forward::error::{Fail, connect_reply};
use crate::upstream::{Pool, TlsFail, UpConn, Upstream, UpstreamTls, secure};

/// Opens a new connection to `addr`, with the TLS handshake when the upstream speaks TLS.
pub(crate) async fn open(
    pool: &Pool,
    addr: SocketAddr,
    up: &Upstream,
    tls: Option<&UpstreamTls>,
) -> Result<UpConn, Fail> {
    let conn = pool.connect(addr, up.connect_timeout).await.map_err(connect_reply)?;
    let Some(tls) = tls else { return Ok(conn) };
    secure(conn, tls, up.connect_timeout).await.map_err(|e| {
        tracing::warn!(%addr, upstream = %up.name, error = %e, "upstream TLS failed");
        Fail::Reply(match e {
            TlsFail::Timeout => LocalReply::gateway_timeout("upstream TLS handshake timed out"),
            TlsFail::Certificate(_) => {
                LocalReply::bad_gateway("upstream_tls_failed", "upstream certificate could not be verified")
            }
            TlsFail::Handshake(_) => {
                LocalReply::bad_gateway("upstream_tls_failed", "upstream TLS handshake failed")
            }
        })
    })
}
