//! The generic cell rate algorithm on one bucket: a theoretical arrival time (TAT) per key, an
//! emission interval (time per request) and a tolerance (burst x interval).
//!
//! Owns: the admission arithmetic, in nanoseconds on a monotonic clock, and its scaling to a
//! shard's share of a limit. Must not: know keys, tables, shards or Redis.

/// A limit as GCRA parameters: one request per `interval` sustained, `burst` at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gcra {
    /// Nanoseconds per request at the sustained rate (at least 1).
    pub interval: u64,
    /// `burst * interval`: how far the TAT may run ahead of now.
    pub tolerance: u64,
}

/// The outcome of one admission check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Admitted; `remaining` more would be admitted right now, the bucket is full again after
    /// `reset` nanoseconds.
    Allow {
        /// Requests still allowed right now.
        remaining: u64,
        /// Nanoseconds until the bucket is full again.
        reset: u64,
    },
    /// Refused; the next request would be admitted after `retry_after` nanoseconds.
    Deny {
        /// Nanoseconds until one request is admitted again.
        retry_after: u64,
        /// Nanoseconds until the bucket is full again.
        reset: u64,
    },
}

impl Gcra {
    /// `rate` requests per `per_ns` nanoseconds with `burst` at once (both at least 1; the
    /// interval is at least 1 ns).
    pub fn new(rate: u64, per_ns: u64, burst: u64) -> Gcra {
        let interval = (per_ns / rate.max(1)).max(1);
        Gcra { interval, tolerance: interval.saturating_mul(burst.max(1)) }
    }

    /// Burst size in requests.
    pub fn burst(&self) -> u64 {
        self.tolerance / self.interval
    }

    /// These parameters for a holder of `share` (0 < share <= 1) of the rate: the interval
    /// grows by `1 / share`, and the bucket holds `burst * share` requests, but never less than
    /// one (a share that could never admit would starve its holder).
    pub fn scaled(&self, share: f64) -> Gcra {
        if share >= 1.0 || share.is_nan() {
            return *self;
        }
        let share = share.max(1e-6);
        let interval = ((self.interval as f64) / share).min(u64::MAX as f64 / 4.0) as u64;
        let burst = (self.burst() as f64 * share).max(1.0);
        Gcra { interval: interval.max(1), tolerance: (interval as f64 * burst) as u64 }
    }

    /// Checks one request at `now` against `tat` and advances `tat` when it is admitted.
    /// A clock that went backwards is treated as standing still (never a panic, never a grant
    /// beyond the burst).
    pub fn check(&self, tat: &mut u64, now: u64) -> Decision {
        let base = (*tat).max(now);
        let new_tat = base.saturating_add(self.interval);
        let ahead = new_tat - now;
        if ahead > self.tolerance {
            return Decision::Deny { retry_after: ahead - self.tolerance, reset: base - now };
        }
        *tat = new_tat;
        Decision::Allow { remaining: (self.tolerance - ahead) / self.interval, reset: ahead }
    }

    /// Requests that would be admitted at `now` (fractional), negative when `tat` is beyond the
    /// tolerance (a debt).
    pub fn available(&self, tat: u64, now: u64) -> f64 {
        let ahead = tat as f64 - now as f64;
        (self.tolerance as f64 - ahead.max(0.0)) / self.interval as f64
    }

    /// The TAT at which exactly `tokens` requests (may be fractional or negative) are available
    /// at `now`.
    pub fn tat_for(&self, tokens: f64, now: u64) -> u64 {
        let ahead = self.tolerance as f64 - tokens * self.interval as f64;
        if ahead <= 0.0 { now } else { now.saturating_add(ahead.min(u64::MAX as f64 / 2.0) as u64) }
    }
}

#[cfg(test)]
#[path = "gcra_tests.rs"]
mod tests;
