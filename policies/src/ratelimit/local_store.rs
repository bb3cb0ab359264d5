//! The global buckets of one process when Redis is not used (none configured, or down with
//! `fail_mode = "open"`): the sync thread keeps one GCRA theoretical arrival time per key, in the
//! process clock, and charges every admission reported by a shard to it, so the shards of one
//! process reconcile exactly as gateways reconcile through Redis.
//!
//! Owns: per-key global TATs of this process and their expiry. Must not: be reached from a shard
//! (only the sync thread owns it) or decide shares (the sync thread does).

use std::collections::HashMap;
use std::sync::Arc;

/// Sweep idle keys at most this often (ns).
const SWEEP_EVERY_NS: u64 = 1_000_000_000;

/// Per (limit, key): the global TAT (ns, process clock).
#[derive(Debug, Default)]
pub(crate) struct LocalStore {
    tats: HashMap<(Arc<str>, Box<[u8]>), u64>,
    last_sweep: u64,
}

impl LocalStore {
    /// Charges `used` admissions (each `charge` times: the process's part of a limit shared by
    /// `charge` gateways) of one emission `interval` to the key; returns its TAT.
    pub(crate) fn charge(
        &mut self,
        limit: &Arc<str>,
        key: &[u8],
        interval: u64,
        used: u64,
        charge: u64,
        now: u64,
    ) -> u64 {
        if now.saturating_sub(self.last_sweep) >= SWEEP_EVERY_NS {
            self.last_sweep = now;
            // A TAT in the past is a full bucket: the same as no entry.
            self.tats.retain(|_, tat| *tat > now);
        }
        let add = used.saturating_mul(charge).saturating_mul(interval);
        match self.tats.get_mut(&(limit.clone(), Box::from(key))) {
            Some(tat) => {
                *tat = (*tat).max(now).saturating_add(add);
                *tat
            }
            None => {
                let tat = now.saturating_add(add);
                self.tats.insert((limit.clone(), key.into()), tat);
                tat
            }
        }
    }

    /// Keys held (tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.tats.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_accumulate_and_idle_keys_are_swept() {
        let mut s = LocalStore::default();
        let l: Arc<str> = "l".into();
        let sec = 1_000_000_000;
        assert_eq!(s.charge(&l, b"a", 10, 3, 1, 5 * sec), 5 * sec + 30);
        assert_eq!(s.charge(&l, b"a", 10, 1, 2, 5 * sec), 5 * sec + 50, "charged twice per admission");
        assert_eq!(s.charge(&l, b"b", 10, 0, 1, 5 * sec), 5 * sec);
        // Long after, a sweep drops both (their buckets are full again).
        assert_eq!(s.charge(&l, b"c", 10, 1, 1, 10 * sec), 10 * sec + 10);
        assert_eq!(s.len(), 1);
    }
}
