//! The connect-with-backoff loop every connection slot uses, for every protocol, and the one
//! report of the first connect error. Owns no socket; never holds the `Stats` borrow across
//! an await.

use std::{
    cell::RefCell,
    fmt::Display,
    future::Future,
    sync::atomic::{AtomicBool, Ordering},
    time::Instant,
};

use super::{
    errors::{Fail, count},
    plan::Plan,
    stats::Stats,
};

/// Pause after a failed connection attempt, so a dead target is not hammered in a loop.
const CONNECT_BACKOFF: std::time::Duration = std::time::Duration::from_millis(20);

/// Says why the first failed connection attempt of the run failed (once per process), so a run
/// full of `connect` errors names the cause (refused, certificate, ALPN, timeout).
pub fn first_connect_error(why: impl Display) {
    static SHOWN: AtomicBool = AtomicBool::new(false);
    if !SHOWN.swap(true, Ordering::Relaxed) {
        eprintln!("portcullis-bench load: first connect error: {why}");
    }
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
