//! Edge cases and properties of the GCRA arithmetic.

use proptest::prelude::*;

use super::{Decision, Gcra};

const SEC: u64 = 1_000_000_000;

fn admitted(g: &Gcra, arrivals: impl IntoIterator<Item = u64>) -> u64 {
    let mut tat = 0;
    arrivals.into_iter().filter(|&t| matches!(g.check(&mut tat, t), Decision::Allow { .. })).count() as u64
}

#[test]
fn burst_then_one_per_interval() {
    let g = Gcra::new(10, SEC, 5);
    let mut tat = 0;
    let now = 1000 * SEC;
    for i in 0..5 {
        match g.check(&mut tat, now) {
            Decision::Allow { remaining, .. } => assert_eq!(remaining, 4 - i),
            d => panic!("request {i} of the burst refused: {d:?}"),
        }
    }
    match g.check(&mut tat, now) {
        Decision::Deny { retry_after, reset } => {
            assert_eq!(retry_after, SEC / 10, "one interval until the next request");
            assert_eq!(reset, SEC / 2, "five intervals until full");
        }
        d => panic!("sixth request admitted: {d:?}"),
    }
    assert!(matches!(g.check(&mut tat, now + SEC / 10 - 1), Decision::Deny { retry_after: 1, .. }));
    assert!(matches!(g.check(&mut tat, now + SEC / 10), Decision::Allow { remaining: 0, .. }));
}

#[test]
fn refill_after_idle_is_capped_at_burst() {
    let g = Gcra::new(100, SEC, 3);
    let mut tat = 0;
    assert_eq!(admitted(&g, [0; 10]), 3);
    // After a long idle period the bucket holds the burst, not more.
    let later = 3600 * SEC;
    let n = (0..10).filter(|_| matches!(g.check(&mut tat, later), Decision::Allow { .. })).count();
    assert_eq!(n, 3);
}

#[test]
fn exact_count_under_dense_arrivals() {
    // Arrivals every millisecond for 10 s against 50/s with burst 20: burst + rate x time.
    let g = Gcra::new(50, SEC, 20);
    let n = admitted(&g, (0..=10_000u64).map(|ms| ms * 1_000_000));
    assert_eq!(n, 20 + 500);
}

#[test]
fn clock_going_backwards_grants_nothing_extra() {
    let g = Gcra::new(1, SEC, 2);
    let mut tat = 0;
    let t = 50 * SEC;
    assert!(matches!(g.check(&mut tat, t), Decision::Allow { .. }));
    assert!(matches!(g.check(&mut tat, t), Decision::Allow { .. }));
    for back in [1, SEC, 10 * SEC, t] {
        assert!(matches!(g.check(&mut tat, t - back), Decision::Deny { .. }), "went back {back}");
    }
    assert!(matches!(g.check(&mut tat, t + SEC), Decision::Allow { .. }));
}

#[test]
fn very_small_and_very_large_rates() {
    // One request per hour.
    let g = Gcra::new(1, 3600 * SEC, 1);
    assert_eq!(admitted(&g, (0..3600).map(|s| s * SEC)), 1);
    assert_eq!(admitted(&g, [0, 3600 * SEC]), 2);
    // A billion per second: the interval is one nanosecond.
    let g = Gcra::new(1_000_000_000, SEC, 1_000);
    assert_eq!(g.interval, 1);
    assert_eq!(admitted(&g, std::iter::repeat_n(5 * SEC, 5000)), 1000);
    // More than one per nanosecond is clamped to one per nanosecond, never zero.
    assert_eq!(Gcra::new(u64::MAX, 1, 1).interval, 1);
    // A huge TAT never overflows.
    let mut tat = u64::MAX - 1;
    assert!(matches!(g.check(&mut tat, 0), Decision::Deny { .. }));
}

#[test]
fn scaled_share_splits_rate_and_keeps_one_request() {
    let g = Gcra::new(60, SEC, 12);
    let half = g.scaled(0.5);
    assert_eq!(half.interval, 2 * g.interval);
    assert_eq!(half.burst(), 6);
    let tiny = g.scaled(0.01);
    assert_eq!(tiny.burst(), 1, "a share never rounds the bucket down to nothing");
    assert_eq!(g.scaled(1.0), g);
    assert_eq!(g.scaled(f64::NAN), g);
}

#[test]
fn available_and_tat_for_are_inverse() {
    let g = Gcra::new(10, SEC, 10);
    let now = 77 * SEC;
    for tokens in [10.0, 7.5, 1.0, 0.0, -3.0] {
        let tat = g.tat_for(tokens, now);
        assert!((g.available(tat, now) - tokens).abs() < 1e-6, "{tokens}");
    }
    assert_eq!(g.tat_for(50.0, now), now, "more than the burst clamps to a full bucket");
}

proptest! {
    /// In any window of any arrival sequence, admissions never exceed burst + window / interval
    /// (plus one for the boundary).
    #[test]
    fn never_more_than_burst_plus_rate(
        rate in 1u64..2000,
        burst in 1u64..50,
        gaps in proptest::collection::vec(0u64..20_000_000, 1..400),
    ) {
        let g = Gcra::new(rate, SEC, burst);
        let mut tat = 0;
        let mut t = SEC;
        let mut admitted_at = Vec::new();
        for gap in gaps {
            t += gap;
            if matches!(g.check(&mut tat, t), Decision::Allow { .. }) {
                admitted_at.push(t);
            }
        }
        for (i, &start) in admitted_at.iter().enumerate() {
            for (j, &end) in admitted_at.iter().enumerate().skip(i) {
                let n = (j - i + 1) as u64;
                prop_assert!(n <= burst + (end - start) / g.interval + 1);
            }
        }
    }

    /// Dense arrivals over a duration admit exactly burst + floor(duration / interval).
    #[test]
    fn dense_arrivals_admit_exactly(rate in 1u64..500, burst in 2u64..100, secs in 1u64..5) {
        let g = Gcra::new(rate, SEC, burst);
        let step = (g.interval / 7).max(1);
        let end = secs * SEC;
        let arrivals = std::iter::repeat_n(0, burst as usize).chain((0..=end / step).map(|k| k * step));
        let n = admitted(&g, arrivals);
        let last = (end / step) * step;
        prop_assert_eq!(n, burst + last / g.interval);
    }
}
