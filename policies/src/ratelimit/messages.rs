//! What crosses threads in the rate-limit service: the shards' usage batches, the sync thread's
//! corrections, the shared health flag and counters, and the process clock both sides use.
//!
//! Owns: the message and shared-state types (plain data). Must not: start threads, talk to
//! Redis or hold shard state (`service.rs`, `sync.rs` and `shard.rs` do).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use crossbeam_channel::Sender;

/// Nanoseconds since the process epoch on the monotonic clock (the time base of every bucket).
pub(crate) fn clock_ns(t: Instant) -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(|| Instant::now() - std::time::Duration::from_secs(1));
    u64::try_from(t.saturating_duration_since(epoch).as_nanos()).unwrap_or(u64::MAX)
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
        replies: Sender<Reply>,
    },
    /// Usage and limit hits since the shard's last batch. The sync thread answers every batch
    /// with exactly one (possibly empty) list of corrections.
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
    /// Requests (fractional, negative for a debt) the shard may admit as of the batch it cut,
    /// before subtracting what it admitted since.
    pub tokens: f64,
    /// The shard's share of the key's rate (0..=1): how fast its bucket refills.
    pub share: f64,
}

/// What the sync thread sends a shard.
#[derive(Debug, Default)]
pub(crate) struct Reply {
    /// True when this answers the shard's last batch (it may send the next); false for
    /// corrections caused by other shards' demand for keys this shard holds.
    pub answer: bool,
    /// Corrections for this shard's keys.
    pub list: Vec<Correction>,
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
