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

    /// Checks one request for `key` with `params` scaled by the bucket's share (or
    /// `default_share` when `use_default` or no share is known yet). Allocates only for a key
    /// the table does not hold yet.
    pub fn check(
        &mut self,
        key: &[u8],
        params: Gcra,
        default_share: f64,
        use_default: bool,
        now: u64,
    ) -> Decision {
        let share = |b: &Bucket| if use_default || b.share <= 0.0 { default_share } else { b.share };
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

    /// Applies a reconciliation: the global TAT `global_tat` (this process's clock) and this
    /// shard's share. The bucket is set so that it holds its share of what the global bucket
    /// holds (at least one request when the global bucket has one), minus what was admitted here
    /// since the batch was cut (not yet in the global state).
    pub fn correct(&mut self, key: &[u8], global_tat: u64, share: f64, now: u64) {
        let Some(b) = self.buckets.get_mut(key) else { return };
        b.share = share.clamp(1e-6, 1.0);
        let global = b.params;
        let local = global.scaled(b.share);
        let global_avail = global.available(global_tat, now);
        let mine = (b.share * global_avail).max(global_avail.min(1.0)) - f64::from(b.used);
        b.tat = local.tat_for(mine, now);
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
        assert!(allowed(t.check(b"a", g, 1.0, false, SEC)));
        assert!(allowed(t.check(b"a", g, 1.0, false, SEC)));
        assert!(!allowed(t.check(b"a", g, 1.0, false, SEC)));
        assert!(allowed(t.check(b"b", g, 1.0, false, SEC)));
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
        let n = (0..20).filter(|_| allowed(t.check(b"k", g, 0.25, false, SEC))).count();
        assert_eq!(n, 2, "a quarter of a burst of 8");
    }

    #[test]
    fn idle_keys_are_evicted_first_and_memory_stays_bounded() {
        let mut t = KeyTable::new(64);
        let g = Gcra::new(1, SEC, 1);
        for i in 0..64u32 {
            t.check(&i.to_be_bytes(), g, 1.0, false, 0);
        }
        t.cut(|_, _| {});
        // Long after, every old bucket is full again (idle): a new key drops them, not itself.
        t.check(b"new", g, 1.0, false, 100 * SEC);
        assert_eq!(t.len(), 1);
        assert_eq!(t.evicted_busy, 0, "only idle keys were dropped");
        // A flood of distinct busy keys at one instant: the table stays bounded anyway.
        for i in 1000..1300u32 {
            t.check(&i.to_be_bytes(), g, 1.0, false, 100 * SEC);
            assert!(t.len() <= 64);
        }
        assert!(t.evicted_busy > 0);
        // Usage of evicted keys is simply not reported.
        let mut n = 0;
        t.cut(|_, _| n += 1);
        assert!(n <= 64);
    }

    #[test]
    fn correction_gives_the_shard_its_share_of_the_global_bucket() {
        let mut t = KeyTable::new(10);
        let g = Gcra::new(10, SEC, 10);
        let now = 10 * SEC;
        t.check(b"k", g, 1.0, false, now);
        t.cut(|_, _| {});
        // Globally 4 requests are left; this shard holds half the demand.
        let global_tat = g.tat_for(4.0, now);
        t.correct(b"k", global_tat, 0.5, now);
        let n = (0..10).filter(|_| allowed(t.check(b"k", g, 1.0, false, now))).count();
        assert_eq!(n, 2);
        // The global bucket is in debt: the shard pays its share before admitting again.
        t.cut(|_, _| {});
        t.correct(b"k", g.tat_for(-2.0, now), 0.5, now);
        assert!(!allowed(t.check(b"k", g, 1.0, false, now)));
        let b = t.get(b"k").expect("bucket");
        assert!(g.scaled(0.5).available(b.tat, now) < 0.0);
    }
}
