//! `VerifiedCache`: a per-shard LRU of verified credentials, so a repeated token skips signature
//! verification, claim parsing and identity-header rendering.
//!
//! A hit requires the presented token to be byte-for-byte the one that was verified: each entry
//! keeps the whole token, and the map key (a SipHash with a random per-cache key over the token's
//! length and its last [`KEY_TAIL`] bytes, which lie in the signature) only picks the candidate.
//! No hash collision, however crafted, can make an unverified token pass; the price is the
//! token's bytes per entry (tokens longer than [`MAX_TOKEN`] are not cached).
//!
//! Owns: the bounded map, expiry (never beyond the token's `exp`, nor `cache_ttl`) and hit/miss
//! counters. Must not: be shared between shards (it lives in `RefCell`s, never borrowed across an
//! `.await`) or store anything that does not come from a successful verification.

use std::cell::{Cell, RefCell};
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::num::NonZeroUsize;
use std::rc::Rc;

use lru::LruCache;

use super::accept::Accepted;

/// Bytes at the end of a token that go into its map key.
pub const KEY_TAIL: usize = 48;
/// Longest token the cache keeps.
pub const MAX_TOKEN: usize = 8 * 1024;

/// The map key of a credential under one cache's hasher.
pub type TokenKey = u64;

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
    token: Box<[u8]>,
    accepted: Rc<Accepted>,
    /// Unix second from which the entry is stale.
    until: u64,
}

/// The cache of one shard and one config generation.
#[derive(Debug)]
pub struct VerifiedCache {
    map: Option<RefCell<LruCache<TokenKey, Entry>>>,
    hasher: RandomState,
    ttl: u64,
    hits: Cell<u64>,
    misses: Cell<u64>,
}

impl VerifiedCache {
    /// A cache of at most `entries` tokens (0 = disabled), each kept at most `ttl_secs`.
    pub fn new(entries: usize, ttl_secs: u64) -> VerifiedCache {
        VerifiedCache {
            map: NonZeroUsize::new(entries).map(|n| RefCell::new(LruCache::new(n))),
            hasher: RandomState::new(),
            ttl: ttl_secs,
            hits: Cell::new(0),
            misses: Cell::new(0),
        }
    }

    /// The map key of `token`.
    pub fn key(&self, token: &[u8]) -> TokenKey {
        let mut h = self.hasher.build_hasher();
        h.write_usize(token.len());
        h.write(&token[token.len().saturating_sub(KEY_TAIL)..]);
        h.finish()
    }

    /// The entry for exactly `token` if it is still fresh at unix time `now`.
    pub fn get(&self, key: TokenKey, token: &[u8], now: u64) -> Option<Rc<Accepted>> {
        let found = self.map.as_ref().and_then(|m| {
            let mut m = m.borrow_mut();
            match m.get(&key) {
                Some(e) if *e.token == *token && now < e.until => Some(Rc::clone(&e.accepted)),
                Some(e) if *e.token == *token => {
                    m.pop(&key);
                    None
                }
                _ => None,
            }
        });
        let counter = if found.is_some() { &self.hits } else { &self.misses };
        counter.set(counter.get() + 1);
        found
    }

    /// Remembers a verified `token`; `expires_at` is its `exp` (0 = none).
    pub fn put(&self, key: TokenKey, token: &[u8], accepted: Rc<Accepted>, expires_at: u64, now: u64) {
        let Some(m) = &self.map else { return };
        if token.len() > MAX_TOKEN {
            return;
        }
        let mut until = now.saturating_add(self.ttl);
        if expires_at != 0 {
            until = until.min(expires_at);
        }
        if until > now {
            m.borrow_mut().put(key, Entry { token: Box::from(token), accepted, until });
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
