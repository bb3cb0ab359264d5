//! The process-wide rate-limit service: the handle every shard clones from `ChainEnv`, its sync
//! thread, the Redis health as the shards see it, and the counters.
//!
//! Owns: `RateLimitService` (Send + Sync, cheap to clone) and `Health`. Must not: be locked on
//! the request path (shards only `try_send` to a channel and load one atomic) or talk to Redis
//! itself (`sync.rs` does; the message types live in `messages.rs`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};
use portcullis_core::config::RateLimitConfig;

use super::messages::{HEALTH_DOWN, HEALTH_LOCAL, HEALTH_UP, Shared, ToSync, clock_ns};

/// Whether global (Redis-reconciled) state is available.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// No Redis configured: the shards of this process reconcile through the sync thread
    /// (each process enforces `1 / gateways` of every limit).
    Local,
    /// Redis answers: shards use their reconciled shares.
    Up,
    /// Redis is unreachable or too slow: the fail mode applies.
    Down,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub tx: Sender<ToSync>,
    pub shared: Arc<Shared>,
    pub sync_interval_ns: u64,
    /// A shard's share of a key older than this (unused on the shard) is forgotten.
    pub stale_ns: u64,
}

/// Handle to the process-wide rate-limit service (the Redis sync thread and its counters).
/// The default handle has no sync thread: limits are local only.
#[derive(Clone, Debug, Default)]
pub struct RateLimitService {
    pub(crate) inner: Option<Arc<Inner>>,
}

/// A snapshot of the service's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RateLimitStats {
    /// Failed Redis connections, commands and timeouts.
    pub redis_errors: u64,
    /// Batches reconciled with Redis.
    pub batches: u64,
    /// Batches discarded (Redis down, or the channel full).
    pub dropped_batches: u64,
    /// Requests refused because Redis was down with `fail_mode = "closed"`.
    pub fail_closed: u64,
    /// Requests refused per (route, limit), as folded in by the sync thread.
    pub hits: BTreeMap<(String, String), u64>,
}

impl RateLimitService {
    /// Starts the sync thread for `cfg` (it connects to `cfg.redis` when set, waiting up to the
    /// Redis timeout for the first answer so the health is known before traffic arrives).
    pub fn start(cfg: &RateLimitConfig) -> std::io::Result<RateLimitService> {
        clock_ns(Instant::now());
        let (tx, rx): (Sender<ToSync>, Receiver<ToSync>) = crossbeam_channel::bounded(4096);
        let shared = Arc::new(Shared::default());
        shared.health.store(HEALTH_LOCAL, Ordering::Relaxed);
        super::sync::spawn(cfg, rx, shared.clone())?;
        Ok(RateLimitService {
            inner: Some(Arc::new(Inner {
                tx,
                shared,
                sync_interval_ns: u64::try_from(cfg.sync_interval.0.as_nanos()).unwrap_or(u64::MAX).max(1),
                stale_ns: u64::try_from(super::sync::demand_window(cfg.sync_interval.0).as_nanos())
                    .unwrap_or(u64::MAX),
            })),
        })
    }

    /// The current Redis health.
    pub fn health(&self) -> Health {
        match self.inner.as_ref().map(|i| i.shared.health.load(Ordering::Relaxed)) {
            Some(HEALTH_UP) => Health::Up,
            Some(HEALTH_DOWN) => Health::Down,
            _ => Health::Local,
        }
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> RateLimitStats {
        let Some(i) = &self.inner else { return RateLimitStats::default() };
        let s = &i.shared;
        RateLimitStats {
            redis_errors: s.redis_errors.load(Ordering::Relaxed),
            batches: s.batches.load(Ordering::Relaxed),
            dropped_batches: s.dropped_batches.load(Ordering::Relaxed),
            fail_closed: s.fail_closed.load(Ordering::Relaxed),
            hits: s.hits.lock().map(|h| h.clone()).unwrap_or_default(),
        }
    }

    /// Identity of the service (a shard rebuilds its state when it changes).
    pub(crate) fn id(&self) -> usize {
        self.inner.as_ref().map_or(0, |i| Arc::as_ptr(i) as usize)
    }
}
