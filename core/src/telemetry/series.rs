//! The per-shard metric cells: one [`RouteSeries`] per (route, upstream) per shard and one
//! [`CodeTable`] of local-reply codes per shard. Only the owning shard writes them (relaxed
//! load + store, see [`bump`]); the scrape thread reads and merges.
//!
//! Owns: the label dimensions and their bounded value sets (method, status class, protocol).
//! Must not: allocate or lock when recording, or render anything.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::histogram::{Histogram, bump};
use crate::pipeline::{Method, Version};

/// Method label values; anything else is `OTHER` (bounded cardinality).
pub const METHODS: [&str; 8] = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "OTHER"];
/// Status class label values; `none` = no response was sent (the client or upstream broke).
pub const CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "none"];
/// Protocol label values.
pub const PROTOCOLS: [&str; 4] = ["http/1.0", "http/1.1", "h2", "h3"];

const CELLS: usize = METHODS.len() * CLASSES.len() * PROTOCOLS.len();

/// Index of a method in [`METHODS`].
pub fn method_index(m: &Method) -> usize {
    match m {
        Method::Get => 0,
        Method::Head => 1,
        Method::Post => 2,
        Method::Put => 3,
        Method::Delete => 4,
        Method::Patch => 5,
        Method::Options => 6,
        _ => 7,
    }
}

/// Index of a status in [`CLASSES`].
pub fn class_index(status: u16) -> usize {
    match status {
        100..=599 => usize::from(status / 100) - 1,
        _ => 5,
    }
}

/// Index of a protocol in [`PROTOCOLS`].
pub fn protocol_index(v: Version) -> usize {
    match v {
        Version::Http10 => 0,
        Version::Http11 => 1,
        Version::H2 => 2,
        Version::H3 => 3,
    }
}

/// What one finished request adds to its series.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// [`method_index`].
    pub method: usize,
    /// [`class_index`].
    pub class: usize,
    /// [`protocol_index`].
    pub protocol: usize,
    /// Request body bytes.
    pub bytes_in: u64,
    /// Response body bytes.
    pub bytes_out: u64,
    /// Whole exchange in µs.
    pub total_us: u64,
    /// Time the upstream took to answer (µs), when one was asked.
    pub upstream_us: Option<u64>,
}

/// The cells of one (route, upstream) on one shard.
#[derive(Debug)]
pub struct RouteSeries {
    requests: Box<[AtomicU64]>,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    /// Whole exchange.
    pub total: Histogram,
    /// Upstream: request sent until response head received.
    pub upstream: Histogram,
    /// Whole exchange minus upstream time (exchanges that reached an upstream).
    pub overhead: Histogram,
}

impl Default for RouteSeries {
    fn default() -> Self {
        RouteSeries {
            requests: (0..CELLS).map(|_| AtomicU64::new(0)).collect(),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            total: Histogram::default(),
            upstream: Histogram::default(),
            overhead: Histogram::default(),
        }
    }
}

fn cell(method: usize, class: usize, protocol: usize) -> usize {
    (method * CLASSES.len() + class) * PROTOCOLS.len() + protocol
}

impl RouteSeries {
    /// Records one request. Only the owning shard may call this.
    #[inline]
    pub fn record(&self, s: &Sample) {
        bump(&self.requests[cell(s.method, s.class, s.protocol)], 1);
        bump(&self.bytes_in, s.bytes_in);
        bump(&self.bytes_out, s.bytes_out);
        self.total.record(s.total_us);
        if let Some(up) = s.upstream_us {
            self.upstream.record(up);
            self.overhead.record(s.total_us.saturating_sub(up));
        }
    }

    /// Request count of one (method, class, protocol) cell.
    pub fn requests(&self, method: usize, class: usize, protocol: usize) -> u64 {
        self.requests[cell(method, class, protocol)].load(Relaxed)
    }

    /// Request and response body bytes.
    pub fn bytes(&self) -> (u64, u64) {
        (self.bytes_in.load(Relaxed), self.bytes_out.load(Relaxed))
    }
}

/// Distinct local-reply codes tracked per shard; further codes count as `other`.
pub const CODE_SLOTS: usize = 64;

/// Local replies by error code on one shard: fixed slots claimed on first use (a `OnceLock` set
/// by the single writer, so never contended), no allocation.
#[derive(Debug)]
pub struct CodeTable {
    slots: Box<[(OnceLock<&'static str>, AtomicU64)]>,
    other: AtomicU64,
}

impl Default for CodeTable {
    fn default() -> Self {
        CodeTable {
            slots: (0..CODE_SLOTS).map(|_| (OnceLock::new(), AtomicU64::new(0))).collect(),
            other: AtomicU64::new(0),
        }
    }
}

impl CodeTable {
    /// Counts one local reply with `code`. Only the owning shard may call this.
    pub fn record(&self, code: &'static str) {
        for (name, count) in self.slots.iter() {
            match name.get() {
                Some(n) if *n == code => return bump(count, 1),
                Some(_) => {}
                None => {
                    let _ = name.set(code);
                    return bump(count, 1);
                }
            }
        }
        bump(&self.other, 1);
    }

    /// Every (code, count) so far, `other` last when non-zero.
    pub fn snapshot(&self, into: &mut Vec<(&'static str, u64)>) {
        for (name, count) in self.slots.iter() {
            let Some(n) = name.get() else { break };
            into.push((n, count.load(Relaxed)));
        }
        let other = self.other.load(Relaxed);
        if other > 0 {
            into.push(("other", other));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_bounded() {
        assert_eq!(method_index(&Method::Get), 0);
        assert_eq!(method_index(&Method::Other(bytes::Bytes::from_static(b"PURGE"))), 7);
        assert_eq!(method_index(&Method::Trace), 7);
        assert_eq!([class_index(101), class_index(204), class_index(404), class_index(599)], [0, 1, 3, 4]);
        assert_eq!([class_index(0), class_index(600), class_index(99)], [5, 5, 5]);
    }

    #[test]
    fn records_a_sample() {
        let s = RouteSeries::default();
        let sample = Sample {
            method: 2,
            class: 1,
            protocol: 1,
            bytes_in: 10,
            bytes_out: 20,
            total_us: 900,
            upstream_us: Some(700),
        };
        s.record(&sample);
        s.record(&Sample { upstream_us: None, ..sample });
        assert_eq!(s.requests(2, 1, 1), 2);
        assert_eq!(s.requests(0, 1, 1), 0);
        assert_eq!(s.bytes(), (20, 40));
        let mut up = Default::default();
        s.upstream.merge_into(&mut up);
        assert_eq!(up.count(), 1);
        let mut over = Default::default();
        s.overhead.merge_into(&mut over);
        assert_eq!(over.sum_us, 200);
    }

    #[test]
    fn codes_fill_slots_then_other() {
        let t = CodeTable::default();
        t.record("route_not_found");
        t.record("route_not_found");
        t.record("upstream_timeout");
        let mut out = Vec::new();
        t.snapshot(&mut out);
        assert_eq!(out, vec![("route_not_found", 2), ("upstream_timeout", 1)]);
        let names: Vec<&'static str> =
            (0..CODE_SLOTS + 3).map(|i| &*Box::leak(format!("c{i}").into_boxed_str())).collect();
        for n in &names {
            t.record(n);
        }
        out.clear();
        t.snapshot(&mut out);
        assert_eq!(out.len(), CODE_SLOTS + 1);
        assert_eq!(out.last(), Some(&("other", 5)));
    }
}
