//! Endpoint selection for one upstream on one shard: round robin, smooth weighted round robin,
//! weighted random, least request (power of two choices) and ring hash, each skipping ejected
//! endpoints, endpoints active health checks marked down, and one excluded endpoint (for
//! retries) unless nothing else is left.
//!
//! Owns: the pick algorithms and the hash ring. Must not: eject endpoints or count failures
//! (that is `outlier.rs`), or allocate on a pick (the ring is built once per generation).

use std::net::{IpAddr, SocketAddr};

use portcullis_core::config::LbPolicy;

use super::{EndpointSet, Upstream};

/// Ring points per unit of weight.
const POINTS_PER_WEIGHT: u32 = 100;

/// FNV-1a over `bytes`, finished with a splitmix64 mix (stable across runs and builds).
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    mix(h)
}

/// Hash of a client address (no allocation).
pub fn hash_ip(ip: IpAddr) -> u64 {
    match ip {
        IpAddr::V4(v4) => hash_bytes(&v4.octets()),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => hash_bytes(&v4.octets()),
            None => hash_bytes(&v6.octets()),
        },
    }
}

/// splitmix64 finaliser.
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Builds the ring: `POINTS_PER_WEIGHT x weight` points per endpoint, placed by the endpoint's
/// address only, so removing an endpoint moves only the keys it owned.
pub fn build_ring(eps: &[(SocketAddr, u32)]) -> Vec<(u64, u32)> {
    let mut ring = Vec::new();
    for (i, (addr, weight)) in eps.iter().enumerate() {
        let base = hash_bytes(addr.to_string().as_bytes());
        for p in 0..weight.saturating_mul(POINTS_PER_WEIGHT) {
            ring.push((mix(base ^ mix(u64::from(p) + 1)), i as u32));
        }
    }
    ring.sort_unstable();
    ring
}

/// The first ring owner at or after `key` (clockwise) accepted by `ok`.
pub fn ring_lookup(ring: &[(u64, u32)], key: u64, ok: impl Fn(usize) -> bool) -> Option<usize> {
    if ring.is_empty() {
        return None;
    }
    let start = ring.partition_point(|&(h, _)| h < key);
    (0..ring.len()).map(|k| ring[(start + k) % ring.len()].1 as usize).find(|&i| ok(i))
}

impl Upstream {
    /// Picks an endpoint index of `set` for a request with consistent-hash `key`, avoiding
    /// `exclude`, ejected and unhealthy endpoints when others are left.
    pub fn pick(&self, set: &EndpointSet, key: u64, exclude: Option<usize>) -> Option<usize> {
        if set.eps.is_empty() {
            return None;
        }
        let panic = self.refresh_ejections(set);
        // Fast path: nothing is ejected or unhealthy.
        let all_in = set.ejected.get() == 0 && self.live.unhealthy() == 0;
        // Level 0: healthy and not excluded; 1: healthy; 2: any (panic mode).
        for level in 0..3 {
            let ok = |i: usize| match level {
                0 => Some(i) != exclude && (panic || all_in || !set.eps[i].is_out()),
                1 => panic || all_in || !set.eps[i].is_out(),
                _ => true,
            };
            if let Some(i) = self.pick_with(set, key, &ok) {
                return Some(i);
            }
        }
        None
    }

    fn pick_with(&self, set: &EndpointSet, key: u64, ok: &impl Fn(usize) -> bool) -> Option<usize> {
        let n = set.eps.len();
        match self.lb {
            LbPolicy::RoundRobin => {
                let start = self.cursor.get();
                self.cursor.set(start.wrapping_add(1));
                (0..n).map(|k| (start + k) % n).find(|&i| ok(i))
            }
            LbPolicy::WeightedRoundRobin => {
                let (mut total, mut best) = (0i64, None::<usize>);
                for (i, ep) in set.eps.iter().enumerate().filter(|&(i, _)| ok(i)) {
                    let cur = ep.current.get() + i64::from(ep.weight);
                    ep.current.set(cur);
                    total += i64::from(ep.weight);
                    if best.is_none_or(|b| cur > set.eps[b].current.get()) {
                        best = Some(i);
                    }
                }
                let b = best?;
                set.eps[b].current.set(set.eps[b].current.get() - total);
                Some(b)
            }
            LbPolicy::Random => self.weighted_random(set, ok),
            LbPolicy::LeastRequest => {
                let a = self.weighted_random(set, ok)?;
                let b = self.weighted_random(set, ok)?;
                let (ea, eb) = (&set.eps[a], &set.eps[b]);
                // Fewer in flight per unit of weight wins.
                let la = u64::from(ea.outstanding.get()) * u64::from(eb.weight);
                let lb = u64::from(eb.outstanding.get()) * u64::from(ea.weight);
                Some(if la <= lb { a } else { b })
            }
            LbPolicy::ConsistentHash => ring_lookup(&set.ring, key, ok),
        }
    }

    fn weighted_random(&self, set: &EndpointSet, ok: &impl Fn(usize) -> bool) -> Option<usize> {
        let eps = &set.eps;
        let total: u64 = (0..eps.len()).filter(|&i| ok(i)).map(|i| u64::from(eps[i].weight)).sum();
        if total == 0 {
            return None;
        }
        let mut r = self.next_random() % total;
        for i in (0..eps.len()).filter(|&i| ok(i)) {
            let w = u64::from(eps[i].weight);
            if r < w {
                return Some(i);
            }
            r -= w;
        }
        None
    }

    /// splitmix64 step on the upstream's own state (per shard, no lock).
    pub(super) fn next_random(&self) -> u64 {
        let s = self.rng.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        self.rng.set(s);
        mix(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn eps(n: usize) -> Vec<(SocketAddr, u32)> {
        (0..n).map(|i| (SocketAddr::from(([10, 0, 0, i as u8 + 1], 8080)), 1)).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        /// Removing one endpoint moves only the keys it owned, and about 1/n of all keys.
        #[test]
        fn ring_remaps_only_the_removed_endpoints_keys(n in 3usize..12, gone in 0usize..12, seed: u64) {
            let gone = gone % n;
            let all = eps(n);
            let fewer: Vec<_> = all.iter().enumerate().filter(|&(i, _)| i != gone).map(|(_, e)| *e).collect();
            let (r1, r2) = (build_ring(&all), build_ring(&fewer));
            let keys = 4000u64;
            let mut moved = 0;
            for k in 0..keys {
                let key = mix(seed ^ k);
                let before = all[ring_lookup(&r1, key, |_| true).expect("owner")].0;
                let after = fewer[ring_lookup(&r2, key, |_| true).expect("owner")].0;
                if before != after {
                    prop_assert_eq!(before, all[gone].0, "a key of a remaining endpoint moved");
                    moved += 1;
                }
            }
            let share = moved as f64 / keys as f64;
            prop_assert!(share < 2.0 / n as f64, "moved {share} with {n} endpoints");
        }
    }

    #[test]
    fn ten_endpoints_one_leaves_about_ten_percent_move() {
        let all = eps(10);
        let fewer = all[..9].to_vec();
        let (r1, r2) = (build_ring(&all), build_ring(&fewer));
        let moved = (0..100_000u64)
            .filter(|&k| {
                let key = mix(k);
                all[ring_lookup(&r1, key, |_| true).expect("o")].0
                    != fewer[ring_lookup(&r2, key, |_| true).expect("o")].0
            })
            .count();
        let share = moved as f64 / 100_000.0;
        assert!((0.06..0.14).contains(&share), "remapped share {share}");
    }
}
