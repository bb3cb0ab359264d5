//! Passive outlier detection of one upstream on one shard: consecutive failures eject an
//! endpoint for a time that grows with repeated ejections, never more than the configured share
//! at once, and panic mode (spread over all) when too few endpoints are healthy.
//!
//! Owns: the failure counters and ejection marks of `Endpoint`. Must not: pick endpoints (that
//! is `lb.rs`) or do I/O; the clock is read only when something is ejected or failing.

use std::time::Instant;

use super::Upstream;

/// The result of one attempt toward an endpoint, as outlier detection sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A response below 500.
    Success,
    /// A 5xx response, a connect failure, a reset or a timeout.
    Failure,
}

impl Upstream {
    /// Records the outcome of an attempt toward endpoint `i`.
    pub fn report(&self, i: usize, outcome: Outcome) {
        let Some(ep) = self.eps.get(i) else { return };
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
        self.refresh_ejections();
        let n = self.eps.len();
        let max = (n * self.outlier.max_ejected_percent as usize / 100)
            .max(usize::from(self.outlier.max_ejected_percent > 0));
        if self.ejected.get() >= max {
            return;
        }
        let times = ep.ejections.get().saturating_add(1);
        ep.ejections.set(times);
        let d = self.outlier.base_ejection.0.saturating_mul(times).min(self.outlier.max_ejection.0);
        ep.ejected_until.set(Some(Instant::now() + d));
        self.ejected.set(self.ejected.get() + 1);
        tracing::warn!(upstream = %self.name, endpoint = %ep.addr, ejection = times, seconds = d.as_secs_f64(),
            "upstream endpoint ejected");
    }

    /// Returns ejected endpoints whose time is up; true when too few are healthy (panic mode).
    pub(super) fn refresh_ejections(&self) -> bool {
        if self.ejected.get() == 0 {
            return false;
        }
        let now = Instant::now();
        for ep in &self.eps {
            if ep.ejected_until.get().is_some_and(|t| t <= now) {
                ep.ejected_until.set(None);
                self.ejected.set(self.ejected.get().saturating_sub(1));
                tracing::info!(upstream = %self.name, endpoint = %ep.addr, "upstream endpoint returned");
            }
        }
        let n = self.eps.len();
        let healthy = n - self.ejected.get().min(n);
        healthy * 100 < self.outlier.panic_threshold_percent as usize * n
    }

    /// Endpoints currently ejected on this shard.
    pub fn ejected_count(&self) -> usize {
        self.refresh_ejections();
        self.ejected.get()
    }
}
