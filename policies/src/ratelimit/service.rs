//! The process-wide rate-limit service: the handle every shard clones from `ChainEnv`, the
//! messages between shards and the sync thread, the Redis health flag and the counters.
//!
//! Owns: `RateLimitService` (Send + Sync, cheap to clone), `Health`, the message types and the
//! process clock. Must not: be locked on the request path (shards only `try_send` to a channel
//! and load one atomic) or talk to Redis itself (`sync.rs` does).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};
use portcullis_core::config::RateLimitConfig;

/// Nanoseconds since the process epoch on the monotonic clock (the time base of every bucket).
pub(crate) fn clock_ns(t: Instant) -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(|| Instant::now() - std::time::Duration::from_secs(1));
    u64::try_from(t.saturating_duration_since(epoch).as_nanos()).unwrap_or(u64::MAX)
}

/// Whether global (Redis-reconciled) state is available.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// No Redis configured: local limits only, split by shards and gateways.
    Local,
    /// Redis answers: shards use their reconciled shares.
    Up,
    /// Redis is unreachable or too slow: the fail mode applies.
    Down,
}

/// One key's usage on one shard since the last batch.
#[derive(Debug)]
pub(crate) struct Usage {
    /// The shard's table the key lives in.
    pub table: u64,
    /// Limit name (part of the Redis key).
    pub limit: Arc<str>,
    /// Key bytes.
    pub key: Box<[u8]>,
    /// Requests admitted.
    pub used: u32,
    /// Requests seen.
    pub demand: u32,
    /// GCRA emission interval (ns) of the unscaled limit.
    pub interval: u64,
    /// GCRA tolerance (ns) of the unscaled limit.
    pub tolerance: u64,
}

/// What a shard hands the sync thread.
#[derive(Debug)]
pub(crate) enum ToSync {
    /// A shard announces itself and where its corrections go.
    Register {
        /// Shard id.
        shard: u32,
        /// The shard's correction channel.
        replies: Sender<Vec<Correction>>,
    },
    /// Usage and limit hits since the shard's last batch.
    Batch {
        /// Shard id.
        shard: u32,
        /// Per key.
        usage: Vec<Usage>,
        /// (route, limit) -> requests refused.
        hits: Vec<(Arc<str>, Arc<str>, u64)>,
    },
}

/// The global state of one key, in this process's clock, for one shard.
#[derive(Debug)]
pub(crate) struct Correction {
    /// The shard's table.
    pub table: u64,
    /// Key bytes.
    pub key: Box<[u8]>,
    /// Global theoretical arrival time (ns, process clock).
    pub global_tat: u64,
    /// The shard's share of the key's demand (0..=1).
    pub share: f64,
}

/// State shared by the sync thread and the shards: health and counters.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub health: AtomicU8,
    pub next_shard: AtomicU32,
    pub redis_errors: AtomicU64,
    pub batches: AtomicU64,
    pub dropped_batches: AtomicU64,
    pub fail_closed: AtomicU64,
    pub hits: Mutex<BTreeMap<(String, String), u64>>,
}

pub(crate) const HEALTH_LOCAL: u8 = 0;
pub(crate) const HEALTH_UP: u8 = 1;
pub(crate) const HEALTH_DOWN: u8 = 2;

#[derive(Debug)]
pub(crate) struct Inner {
    pub tx: Sender<ToSync>,
    pub shared: Arc<Shared>,
    pub sync_interval_ns: u64,
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
