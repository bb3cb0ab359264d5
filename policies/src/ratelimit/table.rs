//! One limit's buckets on one shard: key -> GCRA state, the keys touched since the last
//! reconciliation, and eviction of idle keys when the table is full.
//!
//! Owns: per-key state and bounded memory. Must not: be shared across threads (plain `Rc` and
//! `RefCell` only), decide which parameters apply (the filter passes them in) or talk to Redis.

use std::collections::HashMap;
use std::rc::Rc;

use super::gcra::{Decision, Gcra};

/// One key's state on this shard.
#[derive(Clone, Debug)]
pub(crate) struct Bucket {
    /// Theoretical arrival time in the shard's scaled domain (ns since the process epoch).
    pub tat: u64,
    /// This shard's share of the global limit for this key, learned from Redis (0 = unknown).
    pub share: f64,
    /// Requests admitted since the last batch was cut.
    pub used: u32,
    /// Requests seen (admitted or not) since the last batch was cut.
    pub demand: u32,
    /// Parameters of the last request (what the batch reports to Redis).
    pub params: Gcra,
    /// Already in the dirty list.
    dirty: bool,
    /// The key itself (shared with the map), so marking dirty needs no second lookup.
    key: Rc<[u8]>,
    /// Last time the key was used (ns).
    pub last_seen: u64,
}

/// Checks one request against `b` with `params` scaled by `share`, and records it.
fn admit(b: &mut Bucket, dirty: &mut Vec<Rc<[u8]>>, params: Gcra, share: f64, now: u64) -> Decision {
    let d = params.scaled(share).check(&mut b.tat, now);
    b.params = params;
    b.last_seen = now;
    b.demand = b.demand.saturating_add(1);
    if matches!(d, Decision::Allow { .. }) {
        b.used = b.used.saturating_add(1);
    }
    if !b.dirty {
        b.dirty = true;
        dirty.push(b.key.clone());
    }
    d
}

/// The buckets of one limit on one shard.
#[derive(Debug)]
pub(crate) struct KeyTable {
    buckets: HashMap<Rc<[u8]>, Bucket>,
    dirty: Vec<Rc<[u8]>>,
    max_keys: usize,
    /// Keys dropped while still holding state (the table was full of busy keys).
    pub evicted_busy: u64,
}

impl KeyTable {
    /// An empty table holding at most `max_keys` keys.
    pub fn new(max_keys: usize) -> KeyTable {
        KeyTable {
            buckets: HashMap::with_capacity(max_keys.min(1024)),
            dirty: Vec::new(),
            max_keys: max_keys.max(1),
            evicted_busy: 0,
        }
    }

    /// Number of tracked keys.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// Checks one request for `key` with `params` scaled by the bucket's share, or by
    /// `default_share` when no share is known yet or the known one is older than `stale_ns`
    /// (unused here that long: the demand it was computed from is gone). Allocates only for a
    /// key the table does not hold yet.
    pub fn check(
        &mut self,
        key: &[u8],
        params: Gcra,
        default_share: f64,
        stale_ns: u64,
        now: u64,
    ) -> Decision {
        let share = |b: &Bucket| {
            if b.share <= 0.0 || now.saturating_sub(b.last_seen) > stale_ns { default_share } else { b.share }
        };
        // Known key: one lookup, no allocation.
        if let Some(b) = self.buckets.get_mut(key) {
            return admit(b, &mut self.dirty, params, share(b), now);
        }
        if self.buckets.len() >= self.max_keys {
            self.evict(now);
        }
        let key: Rc<[u8]> = Rc::from(key);
        let mut b = Bucket {
            tat: 0,
            share: 0.0,
            used: 0,
            demand: 0,
            params,
            dirty: false,
            key: key.clone(),
            last_seen: now,
        };
        let d = admit(&mut b, &mut self.dirty, params, default_share, now);
        self.buckets.insert(key, b);
        d
    }

    /// Drops idle keys (bucket full again and nothing unreported); when that frees less than an
    /// eighth of the table, drops the least recently seen keys as well (their state is lost:
    /// counted in `evicted_busy`).
    fn evict(&mut self, now: u64) {
        self.buckets.retain(|_, b| b.dirty || b.tat > now);
        let target = self.max_keys - self.max_keys / 8 - 1;
        if self.buckets.len() > target {
            let mut by_age: Vec<(u64, Rc<[u8]>)> =
                self.buckets.values().map(|b| (b.last_seen, b.key.clone())).collect();
            let excess = self.buckets.len() - target;
            by_age.select_nth_unstable_by_key(excess - 1, |(seen, _)| *seen);
            for (_, key) in &by_age[..excess] {
                self.buckets.remove(key);
            }
            self.evicted_busy += excess as u64;
        }
    }

    /// Takes every key touched since the last call with its usage and demand, resetting them.
    pub fn cut(&mut self, mut each: impl FnMut(&[u8], &Bucket)) {
        for key in self.dirty.drain(..) {
            if let Some(b) = self.buckets.get_mut(&key) {
                each(&key, b);
                b.used = 0;
                b.demand = 0;
                b.dirty = false;
            }
        }
    }

    /// Applies a reconciliation: this shard may admit `tokens` requests (fractional, negative for
    /// a debt) as of the batch it cut, less what it admitted since (not yet in the global
    /// state), and its bucket refills at `share` of the key's rate.
    pub fn correct(&mut self, key: &[u8], tokens: f64, share: f64, now: u64) {
        let Some(b) = self.buckets.get_mut(key) else { return };
        b.share = share.clamp(1e-6, 1.0);
        let local = b.params.scaled(b.share);
        b.tat = local.tat_for(tokens - f64::from(b.used), now);
    }

    /// Time-ordered peek at one bucket (tests and diagnostics).
    #[cfg(test)]
    pub fn get(&self, key: &[u8]) -> Option<&Bucket> {
        self.buckets.get(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    fn allowed(d: Decision) -> bool {
        matches!(d, Decision::Allow { .. })
    }

    #[test]
    fn keys_are_independent_and_usage_is_cut_once() {
        let mut t = KeyTable::new(100);
        let g = Gcra::new(10, SEC, 2);
        assert!(allowed(t.check(b"a", g, 1.0, u64::MAX, SEC)));
        assert!(allowed(t.check(b"a", g, 1.0, u64::MAX, SEC)));
        assert!(!allowed(t.check(b"a", g, 1.0, u64::MAX, SEC)));
        assert!(allowed(t.check(b"b", g, 1.0, u64::MAX, SEC)));
        let mut seen = Vec::new();
        t.cut(|k, b| seen.push((k.to_vec(), b.used, b.demand)));
        seen.sort();
        assert_eq!(seen, vec![(b"a".to_vec(), 2, 3), (b"b".to_vec(), 1, 1)]);
        let mut again = 0;
        t.cut(|_, _| again += 1);
        assert_eq!(again, 0, "nothing touched since the last cut");
    }

    #[test]
    fn default_share_splits_the_limit() {
        let mut t = KeyTable::new(100);
        let g = Gcra::new(100, SEC, 8);
        let n = (0..20).filter(|_| allowed(t.check(b"k", g, 0.25, u64::MAX, SEC))).count();
        assert_eq!(n, 2, "a quarter of a burst of 8");
    }

    #[test]
    fn idle_keys_are_evicted_first_and_memory_stays_bounded() {
        let mut t = KeyTable::new(64);
        let g = Gcra::new(1, SEC, 1);
        for i in 0..64u32 {
            t.check(&i.to_be_bytes(), g, 1.0, u64::MAX, 0);
        }
        t.cut(|_, _| {});
        // Long after, every old bucket is full again (idle): a new key drops them, not itself.
        t.check(b"new", g, 1.0, u64::MAX, 100 * SEC);
        assert_eq!(t.len(), 1);
        assert_eq!(t.evicted_busy, 0, "only idle keys were dropped");
        // A flood of distinct busy keys at one instant: the table stays bounded anyway.
        for i in 1000..1300u32 {
            t.check(&i.to_be_bytes(), g, 1.0, u64::MAX, 100 * SEC);
            assert!(t.len() <= 64);
        }
        assert!(t.evicted_busy > 0);
        // Usage of evicted keys is simply not reported.
        let mut n = 0;
        t.cut(|_, _| n += 1);
        assert!(n <= 64);
    }

    #[test]
    fn correction_sets_the_shards_allowance_and_refill() {
        let mut t = KeyTable::new(10);
        let g = Gcra::new(10, SEC, 10);
        let now = 10 * SEC;
        t.check(b"k", g, 1.0, u64::MAX, now);
        t.cut(|_, _| {});
        // The shard may admit 2 and holds half the rate; one was admitted since the cut.
        t.check(b"k", g, 1.0, u64::MAX, now);
        t.correct(b"k", 3.0, 0.5, now);
        let n = (0..10).filter(|_| allowed(t.check(b"k", g, 1.0, u64::MAX, now))).count();
        assert_eq!(n, 2);
        // A debt: the shard pays it before admitting again.
        t.cut(|_, _| {});
        t.correct(b"k", -2.0, 0.5, now);
        assert!(!allowed(t.check(b"k", g, 1.0, u64::MAX, now)));
        let b = t.get(b"k").expect("bucket");
        assert!(g.scaled(0.5).available(b.tat, now) < 0.0);
    }

    #[test]
    fn a_stale_share_falls_back_to_the_default() {
        let mut t = KeyTable::new(10);
        let g = Gcra::new(1, SEC, 4);
        t.check(b"k", g, 0.25, 1000, SEC);
        t.correct(b"k", 4.0, 1.0, SEC);
        // Long unused here: the learned share (1.0) no longer counts; the default (a quarter
        // of the burst: one request) does.
        let later = 100 * SEC;
        let n = (0..4).filter(|_| allowed(t.check(b"k", g, 0.25, 1000, later))).count();
        assert_eq!(n, 1);
    }
}
