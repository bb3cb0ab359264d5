//! One HTTP/2 client connection: the server handshake with the configured limits, the flood
//! guard under it, accepting streams (each runs as its own task through the shared engine, and
//! counts toward the stream limit until that task ends), and every way it closes: idle timeout
//! or drain (graceful, then forced after a grace period), a header block left incomplete past
//! `header_timeout`, and a flood (GOAWAY ENHANCE_YOUR_CALM, then closed).
//!
//! Owns: the lifecycle of an HTTP/2 connection. Must not: handle a stream's request itself
//! (that is `stream`).

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use monoio_compat::StreamWrapper;
use portcullis_core::config::Http2Config;
use portcullis_core::pipeline::Filter;

use super::guard::{FloodLimits, GuardSignal, Guarded};
use super::stream::serve_stream;
use crate::engine::client::ClientMeta;
use crate::shard::state::ShardState;

/// How often a connection checks for idleness, draining and stalled header blocks.
const TICK: Duration = Duration::from_millis(500);

/// How long an abrupt close (GOAWAY with an error) may take to flush before the socket closes.
const ABRUPT_GRACE: Duration = Duration::from_secs(1);

/// Why the connection is closing, once it is.
#[derive(Clone, Copy)]
enum Closing {
    /// Idle or draining: GOAWAY, streams in flight finish, then closed at the deadline.
    Graceful,
    /// A stalled header block or a flood: GOAWAY with a reason, closed at the deadline.
    Abrupt,
}

/// Counts a connection's stream tasks: a stream the client reset counts until its task (and its
/// upstream exchange) has ended, not only until the library forgets it.
struct Running(Rc<Cell<u32>>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

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

/// Logs why a connection ended: protocol errors at info, I/O quietly (floods are logged where
/// the guard's verdict is acted on).
fn log_close(client: &ClientMeta, e: &h2::Error) {
    if e.is_io() {
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
    let max_streams = cfg.max_concurrent_streams;
    let signal = Rc::new(GuardSignal::default());
    let io = StreamWrapper::new(Guarded::new(stream, limits, signal.clone()));
    let handshake = builder(cfg, sg.config().http.max_header_bytes.0).handshake::<_, Bytes>(io);
    drop(sg);
    let mut conn = match monoio::time::timeout(header_timeout, handshake).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            log_close(&client, &e);
            return;
        }
        Err(_) => {
            if let Some(what) = signal.flood() {
                tracing::warn!(peer = %client.addr, "HTTP/2 {what} before the handshake: connection closed");
            }
            return;
        }
    };
    let running = Rc::new(Cell::new(0u32));
    let mut last_active = Instant::now();
    let mut closing: Option<(Closing, Instant)> = None;
    // One timer for the connection's life, re-armed when it fires: a fresh sleep per accepted
    // stream cost a timer-wheel insert and removal plus a copy for every request.
    let tick = monoio::time::sleep(TICK);
    let mut tick = std::pin::pin!(tick);
    loop {
        let accepted = monoio::select! {
            r = conn.accept() => Some(r),
            _ = tick.as_mut() => None,
            what = signal.flooded(), if closing.is_none() => {
                tracing::warn!(peer = %client.addr, "HTTP/2 {what}: connection closed");
                conn.abrupt_shutdown(h2::Reason::ENHANCE_YOUR_CALM);
                closing = Some((Closing::Abrupt, Instant::now() + ABRUPT_GRACE));
                continue;
            }
        };
        match accepted {
            Some(Some(Ok((req, mut respond)))) => {
                last_active = Instant::now();
                if running.get() >= max_streams {
                    // Streams the client reset whose exchanges are still ending count too.
                    respond.send_reset(h2::Reason::REFUSED_STREAM);
                    continue;
                }
                running.set(running.get() + 1);
                let slot = Running(running.clone());
                let (state, client) = (state.clone(), client.clone());
                monoio::spawn(async move {
                    let _slot = slot;
                    serve_stream(state, req, respond, client).await;
                });
            }
            Some(Some(Err(e))) => {
                log_close(&client, &e);
                return;
            }
            Some(None) => return,
            None => {
                tick.as_mut().reset(monoio::time::Instant::now() + TICK);
                let now = Instant::now();
                match closing {
                    None => {}
                    // Past the deadline the socket closes, whether or not the client answered
                    // the GOAWAY's PING or read what was sent.
                    Some((Closing::Abrupt, by)) if now >= by => return,
                    Some((Closing::Abrupt, _)) => continue,
                    Some((Closing::Graceful, by)) => {
                        if conn.has_streams() || running.get() > 0 {
                            closing = Some((Closing::Graceful, now + header_timeout));
                        } else if now >= by {
                            return;
                        }
                        continue;
                    }
                }
                if signal.stalled_since().is_some_and(|t| now.duration_since(t) >= header_timeout) {
                    tracing::info!(peer = %client.addr, "HTTP/2 header block not completed within header_timeout: connection closed");
                    conn.abrupt_shutdown(h2::Reason::NO_ERROR);
                    closing = Some((Closing::Abrupt, now + ABRUPT_GRACE));
                    continue;
                }
                if conn.has_streams() || running.get() > 0 {
                    last_active = now;
                }
                let idle = now.duration_since(last_active) >= idle_timeout;
                if state.draining.get() || idle {
                    conn.graceful_shutdown();
                    // The client gets `header_timeout` to answer the GOAWAY's PING once no
                    // stream is left; a client that ignores it is closed then.
                    closing = Some((Closing::Graceful, now + header_timeout));
                }
            }
        }
    }
}
