//! The process's operational state, shared by the supervisor (which writes it), the shards
//! (each writes only its own gauges) and the admin API (which reads it): readiness, draining,
//! the running config generation and text, reload results.
//!
//! Owns: that state and its atomics. Must not: change anything itself (reloads and drains go
//! through the supervisor).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::Config;

/// Gauges one shard publishes (it alone writes them).
#[derive(Debug, Default)]
pub struct ShardGauges {
    /// Open HTTP/1.x client connections.
    pub connections: AtomicU64,
    /// Open HTTP/2 client connections.
    pub h2_connections: AtomicU64,
    /// Open HTTP/3 (QUIC) client connections.
    pub h3_connections: AtomicU64,
    /// Requests in flight.
    pub inflight: AtomicU64,
    /// Set once the shard is listening.
    pub ready: AtomicBool,
}

/// The running configuration as the admin API shows it.
#[derive(Clone, Debug)]
pub struct RunningConfig {
    /// Generation number.
    pub generation: u64,
    /// The validated config.
    pub config: Arc<Config>,
    /// Its source text, when it came from a file or `POST /config`.
    pub text: Option<Arc<str>>,
    /// Where it came from (the file path or `POST /config`).
    pub source: Arc<str>,
}

/// Result of the most recent reload attempt.
#[derive(Clone, Debug, Default)]
pub struct ReloadResult {
    /// Seconds since the Unix epoch.
    pub at_unix: u64,
    /// Whether it was applied.
    pub ok: bool,
    /// The errors when it was refused.
    pub errors: Vec<String>,
}

/// Shared operational state.
#[derive(Debug)]
pub struct Status {
    shards: Vec<ShardGauges>,
    draining: AtomicBool,
    reloads_ok: AtomicU64,
    reloads_failed: AtomicU64,
    started_unix: u64,
    running: Mutex<RunningConfig>,
    last_reload: Mutex<Option<ReloadResult>>,
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl Status {
    /// State for `shards` shards running `running`.
    pub fn new(shards: usize, running: RunningConfig) -> Status {
        Status {
            shards: (0..shards).map(|_| ShardGauges::default()).collect(),
            draining: AtomicBool::new(false),
            reloads_ok: AtomicU64::new(0),
            reloads_failed: AtomicU64::new(0),
            started_unix: unix_now(),
            running: Mutex::new(running),
            last_reload: Mutex::new(None),
        }
    }

    /// Gauges of every shard.
    pub fn shards(&self) -> &[ShardGauges] {
        &self.shards
    }

    /// Gauges of one shard (a dummy for an out-of-range index).
    pub fn shard(&self, id: usize) -> Option<&ShardGauges> {
        self.shards.get(id)
    }

    /// Every shard is listening and the gateway is not draining.
    pub fn ready(&self) -> bool {
        !self.draining() && !self.shards.is_empty() && self.shards.iter().all(|s| s.ready.load(Relaxed))
    }

    /// Draining has begun.
    pub fn draining(&self) -> bool {
        self.draining.load(Relaxed)
    }

    /// Marks the start of draining.
    pub fn set_draining(&self) {
        self.draining.store(true, Relaxed);
    }

    /// Process start time (seconds since the epoch).
    pub fn started_unix(&self) -> u64 {
        self.started_unix
    }

    /// The running config.
    pub fn running(&self) -> RunningConfig {
        self.running.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Records an applied generation.
    pub fn applied(&self, running: RunningConfig) {
        *self.running.lock().unwrap_or_else(PoisonError::into_inner) = running;
        self.reloads_ok.fetch_add(1, Relaxed);
        *self.last_reload.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(ReloadResult { at_unix: unix_now(), ok: true, errors: Vec::new() });
    }

    /// Names where the running config came from (a source that is not a file, after start).
    pub fn describe_running(&self, text: Option<Arc<str>>, source: Arc<str>) {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        running.text = text;
        running.source = source;
    }

    /// Records a refused reload.
    pub fn refused(&self, errors: Vec<String>) {
        self.reloads_failed.fetch_add(1, Relaxed);
        *self.last_reload.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(ReloadResult { at_unix: unix_now(), ok: false, errors });
    }

    /// (applied, refused) reload counts.
    pub fn reload_counts(&self) -> (u64, u64) {
        (self.reloads_ok.load(Relaxed), self.reloads_failed.load(Relaxed))
    }

    /// The last reload attempt, if any.
    pub fn last_reload(&self) -> Option<ReloadResult> {
        self.last_reload.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}
