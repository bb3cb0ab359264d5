//! A fixed log-linear latency histogram in microseconds: written by one shard with plain
//! relaxed loads and stores (no lock, no read-modify-write, no allocation), read by the scrape
//! thread, merged over shards into a [`HistogramSnapshot`].
//!
//! Owns: the bucket layout (exact below 16 µs, then 8 sub-buckets per power of two, so every
//! bucket is at most 12.5 % wide) and quantile estimation. Must not: know labels or formats.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Linear buckets for 0..16 µs.
const LINEAR: usize = 16;
/// Sub-buckets per power of two.
const SUB: usize = 8;
/// Largest power of two tracked (2^37 µs is about 38 hours); larger values land in the last bucket.
const MAX_EXP: usize = 37;
/// Number of buckets.
pub const BUCKETS: usize = LINEAR + (MAX_EXP - 3) * SUB;

/// Bucket index of a value in µs.
pub fn bucket_of(us: u64) -> usize {
    if us < LINEAR as u64 {
        return us as usize;
    }
    let exp = 63 - us.leading_zeros() as usize;
    if exp > MAX_EXP {
        return BUCKETS - 1;
    }
    let sub = ((us >> (exp - 3)) & (SUB as u64 - 1)) as usize;
    LINEAR + (exp - 4) * SUB + sub
}

/// Smallest value (µs) of bucket `i`.
pub fn bucket_low(i: usize) -> u64 {
    if i < LINEAR {
        return i as u64;
    }
    let exp = (i - LINEAR) / SUB + 4;
    let sub = ((i - LINEAR) % SUB) as u64;
    (1u64 << exp) + (sub << (exp - 3))
}

/// Whether `us` is a bucket boundary (a value whose counts below it are exact).
pub fn is_boundary(us: u64) -> bool {
    us >> (MAX_EXP + 1) != 0 || bucket_low(bucket_of(us)) == us
}

/// A single-writer histogram.
#[derive(Debug)]
pub struct Histogram {
    buckets: Box<[AtomicU64]>,
    sum_us: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram { buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(), sum_us: AtomicU64::new(0) }
    }
}

/// Adds `n` to a counter that only the calling shard writes (a plain load and store: no lock
/// prefix, no contention; readers on other threads see a recent value).
#[inline]
pub fn bump(c: &AtomicU64, n: u64) {
    c.store(c.load(Relaxed).wrapping_add(n), Relaxed);
}

impl Histogram {
    /// Records one value in µs. Only the owning shard may call this.
    #[inline]
    pub fn record(&self, us: u64) {
        bump(&self.buckets[bucket_of(us)], 1);
        bump(&self.sum_us, us);
    }

    /// Adds this histogram into `into`.
    pub fn merge_into(&self, into: &mut HistogramSnapshot) {
        for (acc, b) in into.buckets.iter_mut().zip(self.buckets.iter()) {
            *acc += b.load(Relaxed);
        }
        into.sum_us += self.sum_us.load(Relaxed);
    }
}

/// A merged copy of one or more histograms.
#[derive(Clone, Debug)]
pub struct HistogramSnapshot {
    /// Count per bucket.
    pub buckets: Vec<u64>,
    /// Sum of recorded values in µs.
    pub sum_us: u64,
}

impl Default for HistogramSnapshot {
    fn default() -> Self {
        HistogramSnapshot { buckets: vec![0; BUCKETS], sum_us: 0 }
    }
}

impl HistogramSnapshot {
    /// Number of recorded values.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// Values strictly below `2^exp` µs, i.e. durations of at most `2^exp` µs (values are whole
    /// µs, truncated). Exact: powers of two are bucket boundaries.
    pub fn count_below_pow2(&self, exp: u32) -> u64 {
        let limit = if exp as usize > MAX_EXP { BUCKETS } else { bucket_of(1u64 << exp) };
        self.buckets[..limit].iter().sum()
    }

    /// Values strictly below `us` µs, i.e. durations under `us` µs (values are whole µs,
    /// truncated). Exact when `us` is a bucket boundary ([`is_boundary`]).
    pub fn count_below(&self, us: u64) -> u64 {
        let limit = if us >> (MAX_EXP + 1) != 0 { BUCKETS } else { bucket_of(us) };
        self.buckets[..limit].iter().sum()
    }

    /// The `q` quantile (0..=1) in µs: the midpoint of the bucket holding it (error at most half
    /// a bucket, 6.25 %). `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let low = bucket_low(i) as f64;
                let high = if i + 1 < BUCKETS { bucket_low(i + 1) as f64 } else { low };
                return Some(if i < LINEAR { low } else { (low + high) / 2.0 });
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_ordered() {
        for i in 0..BUCKETS - 1 {
            assert!(bucket_low(i) < bucket_low(i + 1), "bucket {i}");
            assert_eq!(bucket_of(bucket_low(i)), i);
            assert_eq!(bucket_of(bucket_low(i + 1) - 1), i);
        }
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
        for exp in 4..=MAX_EXP as u32 {
            assert_eq!(bucket_low(bucket_of(1 << exp)), 1 << exp, "powers of two are boundaries");
        }
    }

    #[test]
    fn width_is_bounded() {
        for i in LINEAR..BUCKETS - 1 {
            let (lo, hi) = (bucket_low(i) as f64, bucket_low(i + 1) as f64);
            assert!((hi - lo) / lo <= 0.125 + 1e-9, "bucket {i}: {lo}..{hi}");
        }
    }

    #[test]
    fn quantiles_and_merge() {
        let a = Histogram::default();
        let b = Histogram::default();
        for v in 1..=1000u64 {
            if v % 2 == 0 { a.record(v * 100) } else { b.record(v * 100) }
        }
        let mut s = HistogramSnapshot::default();
        a.merge_into(&mut s);
        b.merge_into(&mut s);
        assert_eq!(s.count(), 1000);
        assert_eq!(s.sum_us, (1..=1000u64).map(|v| v * 100).sum::<u64>());
        for (q, want) in [(0.5, 50_000.0), (0.95, 95_000.0), (0.99, 99_000.0)] {
            let got = s.quantile(q).expect("non-empty");
            assert!((got - want).abs() / want < 0.07, "q{q}: {got} vs {want}");
        }
        // 2^10 = 1024 µs: values 100..=1000 are below (10 of them), 1100 is not.
        assert_eq!(s.count_below_pow2(10), 10);
        assert_eq!(s.count_below_pow2(40), 1000);
        assert_eq!(s.count_below(1100), 10);
        assert_eq!(s.count_below(1152), 11, "1152 is the boundary above 1100");
        assert!(is_boundary(1024) && is_boundary(1152) && is_boundary(7) && !is_boundary(1100));
        assert!(HistogramSnapshot::default().quantile(0.5).is_none());
    }
}
