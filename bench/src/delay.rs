//! How long the reference upstream waits before answering (fixed, or uniform in a range), for
//! every protocol it serves. Owns only the choice of the delay; depends on no other module.

use std::time::Duration;

/// How long the upstream waits before answering: fixed, or uniform in `[min, max]`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Delay {
    /// Shortest delay (zero = answer at once).
    pub min: Duration,
    /// Longest delay; equal to `min` (or below it) for a fixed delay.
    pub max: Duration,
}

impl Delay {
    /// The delay for the next response batch (`None` when there is none).
    pub fn pick(&self, rng: &mut u64) -> Option<Duration> {
        if self.max <= self.min {
            return (!self.min.is_zero()).then_some(self.min);
        }
        // xorshift64: no dependency, good enough to spread delays uniformly.
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        let span = (self.max - self.min).as_nanos() as u64;
        Some(self.min + Duration::from_nanos(*rng % (span + 1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_are_fixed_or_within_the_range() {
        let mut rng = 0x1234_5678_u64;
        assert_eq!(Delay::default().pick(&mut rng), None);
        let fixed = Delay { min: Duration::from_millis(3), max: Duration::ZERO };
        assert_eq!(fixed.pick(&mut rng), Some(Duration::from_millis(3)));
        let range = Delay { min: Duration::from_millis(1), max: Duration::from_millis(5) };
        let picks: Vec<Duration> = (0..1000).filter_map(|_| range.pick(&mut rng)).collect();
        assert_eq!(picks.len(), 1000);
        assert!(picks.iter().all(|d| (range.min..=range.max).contains(d)));
        // Spread out, not stuck at one value.
        assert!(picks.iter().any(|d| *d < Duration::from_millis(2)));
        assert!(picks.iter().any(|d| *d > Duration::from_millis(4)));
    }
}
