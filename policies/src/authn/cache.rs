//! `VerifiedCache`: a per-shard LRU of verified credentials, keyed by the SHA-256 of the whole
//! token, so a repeated token skips signature verification and claim parsing.
//!
//! Owns: the bounded map, expiry (never beyond the token's `exp`, nor `cache_ttl`) and hit/miss
//! counters. Must not: be shared between shards (it lives in `RefCell`s, never borrowed across an
//! `.await`) or store anything that does not come from a successful verification.

use std::cell::{Cell, RefCell};
use std::num::NonZeroUsize;
use std::rc::Rc;

use lru::LruCache;

use super::accept::Accepted;

/// SHA-256 of a credential.
pub type TokenHash = [u8; 32];

/// Hashes a credential.
pub fn token_hash(token: &[u8]) -> TokenHash {
    let d = ring::digest::digest(&ring::digest::SHA256, token);
    let mut out = [0; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Hit and miss counts of one cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that had to verify.
    pub misses: u64,
    /// Entries held now.
    pub len: usize,
}

#[derive(Debug)]
struct Entry {
    accepted: Rc<Accepted>,
    /// Unix second from which the entry is stale.
    until: u64,
}

/// The cache of one shard and one config generation.
#[derive(Debug)]
pub struct VerifiedCache {
    map: Option<RefCell<LruCache<TokenHash, Entry>>>,
    ttl: u64,
    hits: Cell<u64>,
    misses: Cell<u64>,
}

impl VerifiedCache {
    /// A cache of at most `entries` tokens (0 = disabled), each kept at most `ttl_secs`.
    pub fn new(entries: usize, ttl_secs: u64) -> VerifiedCache {
        VerifiedCache {
            map: NonZeroUsize::new(entries).map(|n| RefCell::new(LruCache::new(n))),
            ttl: ttl_secs,
            hits: Cell::new(0),
            misses: Cell::new(0),
        }
    }

    /// The entry for `key` if it is still fresh at unix time `now`.
    pub fn get(&self, key: &TokenHash, now: u64) -> Option<Rc<Accepted>> {
        let found = self.map.as_ref().and_then(|m| {
            let mut m = m.borrow_mut();
            match m.get(key) {
                Some(e) if now < e.until => Some(Rc::clone(&e.accepted)),
                Some(_) => {
                    m.pop(key);
                    None
                }
                None => None,
            }
        });
        let counter = if found.is_some() { &self.hits } else { &self.misses };
        counter.set(counter.get() + 1);
        found
    }

    /// Remembers a verified credential; `expires_at` is its `exp` (0 = none).
    pub fn put(&self, key: TokenHash, accepted: Rc<Accepted>, expires_at: u64, now: u64) {
        let Some(m) = &self.map else { return };
        let mut until = now.saturating_add(self.ttl);
        if expires_at != 0 {
            until = until.min(expires_at);
        }
        if until > now {
            m.borrow_mut().put(key, Entry { accepted, until });
        }
    }

    /// Hit/miss counters and size.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.get(),
            misses: self.misses.get(),
            len: self.map.as_ref().map_or(0, |m| m.borrow().len()),
        }
    }
}

/// Current unix time in seconds.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
