//! The attempts of one request toward an upstream: the endpoint each one goes to (the LB pick,
//! avoiding the endpoint that just failed) and whether a failed one may be retried (attempts
//! left, the retry budget) after which backoff. Used by the one attempt loop (`forward::retry`).
//!
//! Owns: per-request retry bookkeeping. Must not: decide which failures are retryable
//! (`forward::error::UpstreamError` knows), sleep, or do I/O.

use std::time::{Duration, Instant};

use portcullis_core::config::RetryConfig;

use super::{EndpointSet, Upstream};

/// Retry state of one request.
pub struct Attempts<'a> {
    upstream: &'a Upstream,
    retry: &'a RetryConfig,
    deadline: Instant,
    left: u32,
    done: u32,
    exclude: Option<usize>,
}

impl<'a> Attempts<'a> {
    /// Starts a request's attempts; only a `replayable` request (body in hand, method safe to
    /// repeat or `any_method`) gets retries.
    pub fn new(upstream: &'a Upstream, retry: &'a RetryConfig, replayable: bool, deadline: Instant) -> Self {
        let left = if replayable { retry.max } else { 0 };
        Attempts { upstream, retry, deadline, left, done: 0, exclude: None }
    }

    /// The endpoint of the next attempt (`None`: the upstream has none).
    pub fn pick(&self, set: &EndpointSet, key: u64) -> Option<usize> {
        self.upstream.pick(set, key, self.exclude)
    }

    /// Whether a response with `status` is retried when a retry is left.
    pub fn retries_status(&self, status: u16) -> bool {
        self.left > 0 && self.retry.statuses.contains(&status)
    }

    /// Takes one retry away from endpoint `ep` when allowed: the backoff to wait first (never
    /// past the deadline). `None`: no retry (fail now).
    pub fn retry(&mut self, ep: usize) -> Option<Duration> {
        if self.left == 0 || !self.upstream.take_retry(self.retry.budget_percent, self.retry.min_retries) {
            return None;
        }
        self.left -= 1;
        self.done += 1;
        self.exclude = Some(ep);
        tracing::debug!(upstream = %self.upstream.name, retry = self.done, "retrying on another endpoint");
        let left = self.deadline.saturating_duration_since(Instant::now());
        Some(self.upstream.backoff(self.retry.backoff.0, self.done).min(left))
    }
}
