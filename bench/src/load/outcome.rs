//! How the outcome of one attempt is counted, for every protocol: why a request or connection
//! failed, which status codes are failures, and the connect-with-backoff loop every connection
//! slot uses. Owns no socket; never holds the `Stats` borrow across an await.

use std::{
    cell::RefCell,
    fmt::Display,
    future::Future,
    sync::atomic::{AtomicBool, Ordering},
    time::Instant,
};

use super::{
    conn::Plan,
    stats::{Errors, Stats},
};

/// Pause after a failed connection attempt, so a dead target is not hammered in a loop.
const CONNECT_BACKOFF: std::time::Duration = std::time::Duration::from_millis(20);

/// Why a request (or a connection) failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fail {
    /// TCP/QUIC connect, TLS handshake, ALPN or HTTP/2 / HTTP/3 session set-up failed.
    Connect,
    /// Sending a request failed.
    Write,
    /// Reading a response failed.
    Read,
    /// The server closed the connection (or sent GOAWAY) with the request outstanding.
    Closed,
    /// No complete response within the timeout.
    Timeout,
    /// A response that could not be framed or violated the protocol.
    Parse,
    /// The server reset the stream (HTTP/2 RST_STREAM, HTTP/3 stream error).
    Reset,
}

/// Adds `n` failures of kind `fail`.
pub fn count(e: &mut Errors, fail: Fail, n: u64) {
    match fail {
        Fail::Connect => e.connect += n,
        Fail::Write => e.write += n,
        Fail::Read => e.read += n,
        Fail::Closed => e.closed += n,
        Fail::Timeout => e.timeout += n,
        Fail::Parse => e.parse += n,
        Fail::Reset => e.reset += n,
    }
}

/// Says why the first failed connection attempt of the run failed (once per process), so a run
/// full of `connect` errors names the cause (refused, certificate, ALPN, timeout).
pub fn first_connect_error(why: impl Display) {
    static SHOWN: AtomicBool = AtomicBool::new(false);
    if !SHOWN.swap(true, Ordering::Relaxed) {
        eprintln!("portcullis-bench load: first connect error: {why}");
    }
}

/// Counts a status: `true` when it is a success (2xx/3xx, or anything below 400).
pub fn status_ok(e: &mut Errors, status: u16) -> bool {
    match status {
        400..=499 => e.status_4xx += 1,
        500..=599 => e.status_5xx += 1,
        _ => return true,
    }
    false
}

/// Opens a connection with `open`, retrying after failures (counted when in the measured
/// window) and counting reconnects; `None` once the run is over.
pub async fn connect<T, F, Fut>(plan: &Plan, stats: &RefCell<Stats>, first: &mut bool, open: F) -> Option<T>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, Fail>>,
{
    loop {
        if Instant::now() >= plan.end {
            return None;
        }
        match open().await {
            Ok(c) => {
                let measured = Instant::now() >= plan.measure_from;
                if !std::mem::take(first) && measured {
                    stats.borrow_mut().reconnects += 1;
                }
                return Some(c);
            }
            Err(fail) => {
                if Instant::now() >= plan.measure_from {
                    count(&mut stats.borrow_mut().errors, fail, 1);
                }
                monoio::time::sleep(CONNECT_BACKOFF).await;
            }
        }
    }
}
