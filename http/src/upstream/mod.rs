//! Upstream services as a shard sees them: endpoints, selection, and the connection pool.
//!
//! Owns: per-shard, per-generation upstream state (round-robin cursor). Must not: know routes
//! or filters.

mod pool;

use std::cell::Cell;
use std::net::SocketAddr;
use std::time::Duration;

use portcullis_core::config::UpstreamConfig;

pub use pool::{ConnectError, Pool, PoolStats, UpConn};

/// One upstream service on one shard.
#[derive(Debug)]
pub struct Upstream {
    /// Service name.
    pub name: String,
    /// Endpoint addresses.
    pub addrs: Vec<SocketAddr>,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Idle connections kept per endpoint.
    pub max_idle: usize,
    /// Idle expiry.
    pub idle_timeout: Duration,
    /// Retire a connection after this many requests (0 = never).
    pub max_requests: u64,
    cursor: Cell<usize>,
}

impl Upstream {
    /// Builds the shard-local view of a configured upstream (addresses were resolved by
    /// validation). `start` offsets the round-robin cursor so shards do not move in lockstep.
    pub fn new(cfg: &UpstreamConfig, start: usize) -> Upstream {
        Upstream {
            name: cfg.name.clone(),
            addrs: cfg.addrs.clone(),
            connect_timeout: cfg.connect_timeout.0,
            max_idle: cfg.pool.max_idle_per_endpoint,
            idle_timeout: cfg.pool.idle_timeout.0,
            max_requests: cfg.pool.max_requests_per_connection,
            cursor: Cell::new(start),
        }
    }

    /// Next endpoint, round-robin.
    pub fn pick(&self) -> Option<SocketAddr> {
        if self.addrs.is_empty() {
            return None;
        }
        let i = self.cursor.get();
        self.cursor.set(i.wrapping_add(1));
        Some(self.addrs[i % self.addrs.len()])
    }
}
