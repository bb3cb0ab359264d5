//! Opening a new upstream connection for a forward attempt: TCP, then TLS when the upstream
//! speaks it, with their failures as `UpstreamError`s.
//!
//! Owns: `open`. Must not: pool connections (that is `upstream::Pool`) or speak HTTP.

use std::net::SocketAddr;

use crate::forward::error::UpstreamError;
use crate::upstream::{ConnectError, Pool, TlsFail, UpConn, Upstream, UpstreamTls, secure};

/// Opens a new connection to `addr`, with the TLS handshake when the upstream speaks TLS.
pub(crate) async fn open(
    pool: &Pool,
    addr: SocketAddr,
    up: &Upstream,
    tls: Option<&UpstreamTls>,
) -> Result<UpConn, UpstreamError> {
    let conn = pool.connect(addr, up.connect_timeout).await.map_err(|e| match e {
        ConnectError::Timeout(addr) => {
            tracing::debug!(%addr, "upstream connect timeout");
            UpstreamError::ConnectTimeout
        }
        ConnectError::Io(addr, err) => {
            tracing::debug!(%addr, error = %err, "upstream connect failed");
            UpstreamError::ConnectFailed
        }
    })?;
    let Some(tls) = tls else { return Ok(conn) };
    secure(conn, tls, up.connect_timeout).await.map_err(|e| {
        tracing::warn!(%addr, upstream = %up.name, error = %e, "upstream TLS failed");
        match e {
            TlsFail::Timeout => UpstreamError::TlsTimeout,
            TlsFail::Certificate(_) => UpstreamError::TlsCertificate,
            TlsFail::Handshake(_) => UpstreamError::TlsHandshake,
        }
    })
}
