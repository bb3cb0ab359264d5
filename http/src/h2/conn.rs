//! One HTTP/2 client connection: the server handshake with the configured limits, the flood
//! guard under it, accepting streams (each runs as its own task through the shared engine),
//! idle timeout and graceful shutdown when the shard drains.
//!
//! Owns: the lifecycle of an HTTP/2 connection. Must not: handle a stream's request itself
//! (that is `stream`).

use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use monoio_compat::StreamWrapper;
use portcullis_core::config::Http2Config;
use portcullis_core::pipeline::Filter;

use super::guard::{Flood, FloodLimits, Guarded};
use super::stream::serve_stream;
use crate::engine::client::ClientMeta;
use crate::shard::state::ShardState;

/// How often a connection checks for idleness and draining.
const TICK: Duration = Duration::from_millis(500);

fn builder(cfg: &Http2Config, max_header_bytes: u64) -> h2::server::Builder {
    let mut b = h2::server::Builder::new();
    let clamp = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
    b.max_concurrent_streams(cfg.max_concurrent_streams)
        .max_header_list_size(clamp(cfg.max_header_list_size.0.max(max_header_bytes)))
        .initial_window_size(clamp(cfg.initial_stream_window.0))
        .initial_connection_window_size(clamp(cfg.initial_connection_window.0))
        .max_pending_accept_reset_streams(cfg.max_pending_resets)
        .max_local_error_reset_streams(Some(1024));
    b
}

/// Logs why a connection ended: floods loudly, protocol errors at info, I/O quietly.
fn log_close(client: &ClientMeta, e: &h2::Error) {
    // h2 keeps an I/O error's kind and message (not its source): match the message.
    if let Some(what) = e.get_io().map(ToString::to_string).filter(|m| Flood::is_flood(m)) {
        tracing::warn!(peer = %client.addr, "HTTP/2 {what}: connection closed");
    } else if e.is_io() {
        tracing::debug!(peer = %client.addr, error = %e, "HTTP/2 connection failed");
    } else {
        tracing::info!(peer = %client.addr, error = %e, "HTTP/2 connection closed on a protocol error");
    }
}

struct ConnGuard<F>(Rc<ShardState<F>>);

impl<F> Drop for ConnGuard<F> {
    fn drop(&mut self) {
        self.0.connections.set(self.0.connections.get() - 1);
        self.0.h2_connections.set(self.0.h2_connections.get() - 1);
    }
}

/// Serves one HTTP/2 connection (TLS with ALPN `h2`, or cleartext prior knowledge).
pub async fn serve_h2<F, S>(state: Rc<ShardState<F>>, stream: S, client: ClientMeta)
where
    F: Filter + 'static,
    S: AsyncReadRent + AsyncWriteRent + Unpin + 'static,
{
    state.connections.set(state.connections.get() + 1);
    state.h2_connections.set(state.h2_connections.get() + 1);
    let _conn = ConnGuard(state.clone());
    let sg = state.current();
    let cfg = &sg.config().http2;
    let limits = FloodLimits {
        pings: cfg.max_pings_per_second,
        settings: cfg.max_settings_per_second,
        resets: cfg.max_resets_per_second,
        continuations: cfg.max_continuation_frames,
    };
    let header_timeout = sg.config().http.header_timeout.0;
    let idle_timeout = sg.config().http.idle_timeout.0;
    let io = StreamWrapper::new(Guarded::new(stream, limits));
    let handshake = builder(cfg, sg.config().http.max_header_bytes.0).handshake::<_, Bytes>(io);
    drop(sg);
    let mut conn = match monoio::time::timeout(header_timeout, handshake).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            log_close(&client, &e);
            return;
        }
        Err(_) => return,
    };
    let mut last_active = Instant::now();
    let mut closing = false;
    // One timer for the connection's life, re-armed when it fires: a fresh sleep per accepted
    // stream cost a timer-wheel insert and removal plus a copy for every request.
    let tick = monoio::time::sleep(TICK);
    let mut tick = std::pin::pin!(tick);
    loop {
        let accepted = monoio::select! {
            r = conn.accept() => Some(r),
            _ = tick.as_mut() => None,
        };
        match accepted {
            Some(Some(Ok((req, respond)))) => {
                last_active = Instant::now();
                monoio::spawn(serve_stream(state.clone(), req, respond, client.clone()));
            }
            Some(Some(Err(e))) => {
                log_close(&client, &e);
                return;
            }
            Some(None) => return,
            None => {
                tick.as_mut().reset(monoio::time::Instant::now() + TICK);
                if conn.has_streams() {
                    last_active = Instant::now();
                }
                let idle = last_active.elapsed() >= idle_timeout;
                if !closing && (state.draining.get() || idle) {
                    closing = true;
                    conn.graceful_shutdown();
                }
            }
        }
    }
}
