//! One HTTP/3 connection on a shard: the QUIC handshake (with 0-RTT when enabled), the h3
//! control streams, one task per request stream (its header section bounded by
//! `header_timeout`), and GOAWAY when the shard drains.
//!
//! Owns: the lifetime of one client connection. Must not: touch other shards' connections.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use portcullis_core::pipeline::Filter;
use portcullis_http::ShardState;
use portcullis_http::engine::ClientMeta;

use super::stream::serve_stream;
use crate::drain::{DrainSignal, Gauge, GaugeGuard};

/// HTTP/3's "no error" application close code (RFC 9114, 8.1).
const H3_NO_ERROR: u32 = 0x100;

/// Settings one connection runs with (from the listener's `http3` table).
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConnSettings {
    /// Largest decoded request header section.
    pub max_field_section_size: u64,
    /// Accept 0-RTT requests (safe methods only).
    pub zero_rtt: bool,
}

/// Drives a connection from its handshake to its close.
pub(crate) async fn serve_connection<F: Filter + 'static>(
    state: Rc<ShardState<F>>,
    connecting: quinn::Connecting,
    settings: ConnSettings,
    drain: Rc<DrainSignal>,
    handshaking: &Cell<u32>,
) {
    let conn = handshake(connecting, settings.zero_rtt).await;
    handshaking.set(handshaking.get() - 1);
    let Some((conn, early)) = conn else { return };
    serve_h3(state, conn, settings, drain, early).await;
}

/// Completes the handshake (or accepts 0-RTT at once); the flag is true while the connection is
/// still early.
async fn handshake(
    connecting: quinn::Connecting,
    zero_rtt: bool,
) -> Option<(quinn::Connection, Rc<Cell<bool>>)> {
    // Early (0-RTT) until the handshake is confirmed; only then are unsafe methods accepted.
    let early = Rc::new(Cell::new(false));
    let conn = if zero_rtt {
        match connecting.into_0rtt() {
            Ok((conn, confirmed)) => {
                early.set(true);
                let flag = early.clone();
                monoio::spawn(async move {
                    let _ = confirmed.await;
                    flag.set(false);
                });
                conn
            }
            Err(connecting) => match connecting.await {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!("quic handshake failed: {e}");
                    return None;
                }
            },
        }
    } else {
        match connecting.await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!("quic handshake failed: {e}");
                return None;
            }
        }
    };
    Some((conn, early))
}

async fn serve_h3<F: Filter + 'static>(
    state: Rc<ShardState<F>>,
    conn: quinn::Connection,
    settings: ConnSettings,
    drain: Rc<DrainSignal>,
    early: Rc<Cell<bool>>,
) {
    let client = ClientMeta {
        addr: conn.remote_address(),
        tls: true,
        tls_version: Some("TLSv1.3"),
        client_cert: None,
        alt_svc: None,
    };
    let quic = conn.clone();
    let built = h3::server::builder()
        .max_field_section_size(settings.max_field_section_size)
        .build::<_, Bytes>(h3_quinn::Connection::new(conn))
        .await;
    let mut h3c = match built {
        Ok(c) => c,
        Err(e) => return tracing::debug!("h3 connection set-up failed: {e}"),
    };
    let streams = Rc::new(Gauge::default());
    let mut goaway_sent = false;
    loop {
        let next = if goaway_sent {
            // After GOAWAY: serve what was already accepted, then close once every stream
            // finished. Finished streams may still have bytes in flight and quinn abandons
            // unsent data on close, so wait a few round trips for the acknowledgements first.
            monoio::select! {
                r = h3c.accept() => r,
                _ = streams.zero() => {
                    let grace = (quic.rtt() * 3 + Duration::from_millis(100)).min(Duration::from_secs(1));
                    monoio::time::sleep(grace).await;
                    quic.close(H3_NO_ERROR.into(), b"draining");
                    break;
                }
            }
        } else {
            monoio::select! {
                r = h3c.accept() => r,
                _ = drain.wait() => {
                    goaway_sent = true;
                    // GOAWAY: requests already accepted finish; new ones go elsewhere.
                    if h3c.shutdown(0).await.is_err() {
                        break;
                    }
                    continue;
                }
            }
        };
        match next {
            Ok(Some(resolver)) => {
                let state = state.clone();
                let client = client.clone();
                let early = early.get();
                streams.inc();
                let guard = GaugeGuard(streams.clone());
                // A request stream must bring its whole header section within `header_timeout`
                // of being opened: a stalled one is dropped (its receive side stopped, its send
                // side closed) instead of holding a task and a stream slot.
                let header_timeout = state.current().config().http.header_timeout.0;
                monoio::spawn(async move {
                    let _guard = guard;
                    match monoio::time::timeout(header_timeout, resolver.resolve_request()).await {
                        Ok(Ok((req, stream))) => serve_stream(state, req, stream, client, early).await,
                        Ok(Err(e)) => tracing::debug!("h3 request head refused: {e}"),
                        Err(_) => {
                            tracing::debug!(peer = %client.addr, "h3 request head not received within header_timeout: stream closed")
                        }
                    }
                });
            }
            Ok(None) => break,
            Err(e) => {
                tracing::debug!("h3 connection ended: {e}");
                break;
            }
        }
    }
}
