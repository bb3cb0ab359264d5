//! The retry budget of one upstream on one shard, and the jittered backoff between attempts.
//!
//! Owns: the request and retry counters (a window halved every `WINDOW` requests, so the budget
//! follows recent traffic). Must not: decide which failures are retryable (the engine does).

use std::time::Duration;

use super::{Upstream, count};

/// Requests after which both counters are halved.
const WINDOW: u64 = 1024;

impl Upstream {
    /// Counts a request (first attempt) toward the upstream.
    pub fn note_request(&self) {
        let sent = self.sent.get() + 1;
        if sent >= WINDOW {
            self.sent.set(sent / 2);
            self.retried.set(self.retried.get() / 2);
        } else {
            self.sent.set(sent);
        }
    }

    /// Takes one retry from the budget (`percent` of requests plus `min`); false = spent (counted).
    pub fn take_retry(&self, percent: u32, min: u32) -> bool {
        let allowed = u64::from(min) + self.sent.get() * u64::from(percent) / 100;
        if self.retried.get() >= allowed {
            self.budget_refusals.set(self.budget_refusals.get() + 1);
            count(&self.events.budget);
            return false;
        }
        self.retried.set(self.retried.get() + 1);
        count(&self.events.retry);
        true
    }

    /// Retries taken and retries refused by the budget on this shard.
    pub fn retry_stats(&self) -> (u64, u64) {
        (self.retried.get(), self.budget_refusals.get())
    }

    /// Full-jitter backoff before retry number `n` (from 1): random in `[0, base x 2^(n-1)]`.
    pub fn backoff(&self, base: Duration, n: u32) -> Duration {
        let cap = base.saturating_mul(1 << n.saturating_sub(1).min(10));
        let nanos = cap.as_nanos().min(u128::from(u64::MAX)) as u64;
        if nanos == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(self.next_random() % (nanos + 1))
    }
}
