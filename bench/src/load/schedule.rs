//! Open-loop arrival schedule: the intended send time of every request of every connection,
//! computed from the start instant alone (never from when the previous response arrived), so a
//! slow server cannot slow the offered load down (no coordinated omission). Pure arithmetic.

use std::time::{Duration, Instant};

/// The intended send times of one connection: the total rate is spread evenly over all
/// connections, which take turns, so the merged arrivals are one request every `1/rate` s.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    start: Instant,
    /// Offset of this connection's first request from `start`, in nanoseconds.
    offset_ns: f64,
    /// Gap between two requests of this connection, in nanoseconds.
    interval_ns: f64,
}

impl Schedule {
    /// The schedule of connection `index` of `conns` sharing `rate` requests per second.
    pub fn new(start: Instant, rate: f64, conns: usize, index: usize) -> Self {
        let gap_ns = 1e9 / rate.max(f64::MIN_POSITIVE);
        Self { start, offset_ns: gap_ns * index as f64, interval_ns: gap_ns * conns.max(1) as f64 }
    }

    /// Intended send time of this connection's `k`-th request (from 0).
    pub fn at(&self, k: u64) -> Instant {
        let ns = self.offset_ns + self.interval_ns * k as f64;
        self.start + Duration::from_nanos(ns.round() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_arrivals_are_evenly_spaced() {
        let start = Instant::now();
        let (rate, conns) = (10_000.0, 7);
        let mut all: Vec<Instant> = (0..conns)
            .flat_map(|i| {
                let s = Schedule::new(start, rate, conns, i);
                (0..100).map(move |k| s.at(k))
            })
            .collect();
        all.sort();
        for pair in all.windows(2) {
            let gap = pair[1] - pair[0];
            assert!((99_000..=101_000).contains(&gap.as_nanos()), "gap {gap:?}");
        }
        let first = Schedule::new(start, rate, conns, 0);
        assert_eq!(first.at(1) - first.at(0), Duration::from_micros(700));
    }

    #[test]
    fn count_in_window_matches_rate() {
        let start = Instant::now();
        let (rate, conns) = (2_500.0, 16);
        let end = start + Duration::from_secs(2);
        let total: usize = (0..conns)
            .map(|i| {
                let s = Schedule::new(start, rate, conns, i);
                (0..).map(|k| s.at(k)).take_while(|t| *t < end).count()
            })
            .sum();
        assert_eq!(total, 5_000);
    }

    #[test]
    fn schedule_does_not_drift() {
        // Request k's time is computed from the start, not by adding gaps: no accumulated error.
        let s = Schedule::new(Instant::now(), 3.0, 3, 2);
        assert_eq!(s.at(0) - s.at(0), Duration::ZERO);
        assert_eq!(s.at(3000) - s.at(0), Duration::from_secs(3000));
        assert!((1..100).all(|k| s.at(k) > s.at(k - 1)));
    }
}
