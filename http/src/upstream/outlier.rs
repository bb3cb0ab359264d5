//! Passive outlier detection of one upstream on one shard: consecutive failures eject an
//! endpoint for a time that grows with repeated ejections, never more than the configured share
//! at once, and panic mode (spread over all) when too few endpoints are healthy.
//!
//! Owns: the failure counters and ejection marks of `Endpoint`. Must not: pick endpoints (that
//! is `lb.rs`) or do I/O; the clock is read only when something is ejected or failing.

use std::time::Instant;

use super::{EndpointSet, Upstream};

/// The result of one attempt toward an endpoint, as outlier detection sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A response below 500.
    Success,
    /// A 5xx response, a connect failure, a reset or a timeout.
    Failure,
}

impl Upstream {
    /// Records the outcome of an attempt toward endpoint `i` of `set`.
    pub fn report(&self, set: &EndpointSet, i: usize, outcome: Outcome) {
        let Some(ep) = set.eps.get(i) else { return };
        if outcome == Outcome::Success {
            ep.fails.set(0);
            if !ep.is_ejected() {
                ep.ejections.set(0);
            }
            return;
        }
        let need = self.outlier.consecutive_failures;
        if need == 0 || ep.is_ejected() {
            return;
        }
        ep.fails.set(ep.fails.get() + 1);
        if ep.fails.get() < need {
            return;
        }
        ep.fails.set(0);
        self.refresh_ejections(set);
        let n = set.eps.len();
        let max = (n * self.outlier.max_ejected_percent as usize / 100)
            .max(usize::from(self.outlier.max_ejected_percent > 0));
        if set.ejected.get() >= max {
            return;
        }
        let times = ep.ejections.get().saturating_add(1);
        ep.ejections.set(times);
        let d = self.outlier.base_ejection.0.saturating_mul(times).min(self.outlier.max_ejection.0);
        ep.ejected_until.set(Some(Instant::now() + d));
        set.ejected.set(set.ejected.get() + 1);
        tracing::warn!(upstream = %self.name, endpoint = %ep.addr, ejection = times, seconds = d.as_secs_f64(),
            "upstream endpoint ejected");
    }

    /// Returns ejected endpoints whose time is up; true when too few are healthy (panic mode),
    /// counting both ejected endpoints and those active health checks marked down.
    pub(super) fn refresh_ejections(&self, set: &EndpointSet) -> bool {
        let down = self.live.unhealthy();
        if set.ejected.get() == 0 && down == 0 {
            return false;
        }
        if set.ejected.get() > 0 {
            let now = Instant::now();
            for ep in &set.eps {
                if ep.ejected_until.get().is_some_and(|t| t <= now) {
                    ep.ejected_until.set(None);
                    set.ejected.set(set.ejected.get().saturating_sub(1));
                    tracing::info!(upstream = %self.name, endpoint = %ep.addr, "upstream endpoint returned");
                }
            }
        }
        let n = set.eps.len();
        let healthy = set.eps.iter().filter(|e| !e.is_out()).count();
        healthy * 100 < self.outlier.panic_threshold_percent as usize * n
    }
}
