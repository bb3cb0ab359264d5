//! The gateway's own added time per request: from the request head read to the response head
//! written, less the time spent waiting for the upstream (from the first attempt's start to the
//! response head's arrival), like Envoy's upstream service time subtracted from its own. One
//! histogram per (client protocol, proxied or local reply) per shard, written only by its shard.
//!
//! Owns: the arithmetic of the added time (from instants the engine already took) and its
//! per-shard cells. Must not: read a clock itself, lock or allocate on the request path.

use std::time::{Duration, Instant};

use super::histogram::{Histogram, HistogramSnapshot};
use super::series::PROTOCOLS;

/// Values of the `reply` label: a response relayed from an upstream, or one the gateway made.
pub const REPLIES: [&str; 2] = ["proxied", "local"];

/// The instants one request's added time is computed from (all from the monotonic clock).
#[derive(Clone, Copy, Debug)]
pub struct Timings {
    /// The request head was complete.
    pub started: Instant,
    /// The first upstream attempt began (endpoint pick, connect, request write, then the wait).
    pub upstream_began: Option<Instant>,
    /// The response head used arrived from the upstream.
    pub upstream_answered: Option<Instant>,
    /// The response head was handed to the client connection while its body went on after it;
    /// `None` when the head went out with the whole response (then `now` is that moment).
    pub head_sent: Option<Instant>,
}

impl Timings {
    /// The added time, `now` being the log phase's clock read right after the response.
    /// An upstream tried that never answered counts only the time before its first attempt.
    #[inline]
    pub fn added(&self, now: Instant) -> Duration {
        let end = self.head_sent.unwrap_or(now);
        let until_head = end.saturating_duration_since(self.started);
        match (self.upstream_began, self.upstream_answered) {
            (None, _) => until_head,
            (Some(began), Some(answered)) => {
                until_head.saturating_sub(answered.saturating_duration_since(began))
            }
            (Some(began), None) => began.saturating_duration_since(self.started),
        }
    }
}

/// One shard's added-time histograms, indexed by (protocol, reply).
#[derive(Debug)]
pub struct AddedTime {
    cells: Box<[Histogram]>,
}

impl Default for AddedTime {
    fn default() -> Self {
        AddedTime { cells: (0..PROTOCOLS.len() * REPLIES.len()).map(|_| Histogram::default()).collect() }
    }
}

impl AddedTime {
    /// Records one request's added time. Only the owning shard may call this.
    #[inline]
    pub fn record(&self, protocol: usize, local: bool, added: Duration) {
        self.cells[protocol * REPLIES.len() + usize::from(local)].record(added.as_micros() as u64);
    }

    /// Adds every cell into `into` (indexed like the cells; resized on first use).
    pub fn merge_into(&self, into: &mut Vec<HistogramSnapshot>) {
        into.resize_with(self.cells.len(), HistogramSnapshot::default);
        for (h, acc) in self.cells.iter().zip(into.iter_mut()) {
            h.merge_into(acc);
        }
    }
}

/// The (protocol, reply) label values of merged cell `i`.
pub fn added_labels(i: usize) -> (&'static str, &'static str) {
    (PROTOCOLS[i / REPLIES.len()], REPLIES[i % REPLIES.len()])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(base: Instant, us: u64) -> Instant {
        base + Duration::from_micros(us)
    }

    #[test]
    fn subtracts_the_upstream_wait() {
        let t0 = Instant::now();
        let local = Timings { started: t0, upstream_began: None, upstream_answered: None, head_sent: None };
        assert_eq!(local.added(at(t0, 40)), Duration::from_micros(40), "a local reply: all of it");
        let proxied = Timings {
            started: t0,
            upstream_began: Some(at(t0, 10)),
            upstream_answered: Some(at(t0, 5_010)),
            head_sent: None,
        };
        assert_eq!(proxied.added(at(t0, 5_030)), Duration::from_micros(30), "10 before, 20 after");
        let streamed = Timings { head_sent: Some(at(t0, 5_025)), ..proxied };
        assert_eq!(streamed.added(at(t0, 900_000)), Duration::from_micros(25), "the body is not counted");
        let failed = Timings { upstream_answered: None, ..proxied };
        assert_eq!(failed.added(at(t0, 30_000_000)), Duration::from_micros(10), "a timeout is not ours");
    }

    #[test]
    fn records_per_protocol_and_reply() {
        let a = AddedTime::default();
        a.record(2, false, Duration::from_micros(12));
        a.record(2, true, Duration::from_micros(7));
        a.record(2, true, Duration::from_nanos(7_900));
        let mut s = Vec::new();
        a.merge_into(&mut s);
        a.merge_into(&mut s);
        assert_eq!(s.len(), PROTOCOLS.len() * REPLIES.len());
        assert_eq!(added_labels(4), ("h2", "proxied"));
        assert_eq!(added_labels(5), ("h2", "local"));
        assert_eq!((s[4].count(), s[4].sum_us), (2, 24));
        assert_eq!((s[5].count(), s[5].sum_us), (4, 28), "whole µs, truncated");
        assert_eq!(s.iter().map(HistogramSnapshot::count).sum::<u64>(), 6);
    }
}
