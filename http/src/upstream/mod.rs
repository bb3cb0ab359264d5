//! Upstream services as a shard sees them: endpoints, selection, and the connection pool.
//!
//! Owns: per-shard, per-generation upstream state (endpoints with their in-flight counts and
//! health, the pick cursor and random state, circuit counters). Must not: know routes or
//! filters, or be shared across threads (everything is `Cell`, no locks).

mod lb;
mod outlier;
mod pool;
mod retry;
mod stream;
mod tls;

use std::cell::Cell;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use portcullis_core::config::{LbPolicy, OutlierConfig, UpstreamConfig};
use portcullis_core::pipeline::Headers;

pub use lb::{build_ring, hash_bytes, hash_ip, ring_lookup};
pub use outlier::Outcome;
pub use pool::{ConnectError, Pool, PoolStats, UpConn};
pub use stream::UpStream;
pub use tls::{TlsFail, UpstreamTls, build as build_tls, secure};

/// One endpoint of an upstream on one shard.
#[derive(Debug)]
pub struct Endpoint {
    /// Its address.
    pub addr: SocketAddr,
    /// Relative weight.
    pub weight: u32,
    /// Requests in flight to it from this shard.
    outstanding: Cell<u32>,
    /// Smooth weighted round robin state.
    current: Cell<i64>,
    /// Consecutive failures.
    fails: Cell<u32>,
    /// Ejected until then.
    ejected_until: Cell<Option<Instant>>,
    /// Ejections since the last success.
    ejections: Cell<u32>,
}

impl Endpoint {
    fn is_ejected(&self) -> bool {
        self.ejected_until.get().is_some()
    }
}

/// What the consistent hash is computed on.
#[derive(Debug)]
enum HashOn {
    ClientIp,
    Header(String),
}

/// One upstream service on one shard.
#[derive(Debug)]
pub struct Upstream {
    /// Service name.
    pub name: String,
    /// Endpoints.
    pub eps: Vec<Endpoint>,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Idle connections kept per endpoint.
    pub max_idle: usize,
    /// Idle expiry.
    pub idle_timeout: Duration,
    /// Retire a connection after this many requests (0 = never).
    pub max_requests: u64,
    lb: LbPolicy,
    hash_on: HashOn,
    ring: Vec<(u64, u32)>,
    cursor: Cell<usize>,
    rng: Cell<u64>,
    outlier: OutlierConfig,
    /// Endpoints currently marked ejected.
    ejected: Cell<usize>,
    max_in_flight: u32,
    in_flight: Cell<u32>,
    max_pending: u32,
    pending: Cell<u32>,
    circuit_trips: Cell<u64>,
    sent: Cell<u64>,
    retried: Cell<u64>,
    budget_refusals: Cell<u64>,
}

impl Upstream {
    /// Builds the shard-local view of a configured upstream (addresses were resolved by
    /// validation). `start` offsets the round-robin cursor and seeds the random state so shards
    /// do not move in lockstep.
    pub fn new(cfg: &UpstreamConfig, start: usize) -> Upstream {
        let pairs: Vec<(SocketAddr, u32)> = cfg
            .addrs
            .iter()
            .enumerate()
            .map(|(i, a)| (*a, cfg.weights.get(i).copied().unwrap_or(1).max(1)))
            .collect();
        let ring = if cfg.lb == LbPolicy::ConsistentHash { build_ring(&pairs) } else { Vec::new() };
        let hash_on = match cfg.hash_on.as_deref().and_then(|k| k.strip_prefix("header:")) {
            Some(name) => HashOn::Header(name.to_ascii_lowercase()),
            None => HashOn::ClientIp,
        };
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ (start as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        Upstream {
            name: cfg.name.clone(),
            eps: pairs
                .into_iter()
                .map(|(addr, weight)| Endpoint {
                    addr,
                    weight,
                    outstanding: Cell::new(0),
                    current: Cell::new(0),
                    fails: Cell::new(0),
                    ejected_until: Cell::new(None),
                    ejections: Cell::new(0),
                })
                .collect(),
            connect_timeout: cfg.connect_timeout.0,
            max_idle: cfg.pool.max_idle_per_endpoint,
            idle_timeout: cfg.pool.idle_timeout.0,
            max_requests: cfg.pool.max_requests_per_connection,
            lb: cfg.lb,
            hash_on,
            ring,
            cursor: Cell::new(start),
            rng: Cell::new(seed),
            outlier: cfg.outlier.clone(),
            ejected: Cell::new(0),
            max_in_flight: cfg.circuit.max_requests,
            in_flight: Cell::new(0),
            max_pending: cfg.circuit.max_pending,
            pending: Cell::new(0),
            circuit_trips: Cell::new(0),
            sent: Cell::new(0),
            retried: Cell::new(0),
            budget_refusals: Cell::new(0),
        }
    }

    /// The consistent-hash key of a request (0 when the policy does not hash). A missing
    /// header falls back to the client address.
    pub fn hash_key(&self, headers: &Headers, client: IpAddr) -> u64 {
        if self.lb != LbPolicy::ConsistentHash {
            return 0;
        }
        match &self.hash_on {
            HashOn::Header(name) => headers.get(name).map_or_else(|| hash_ip(client), |v| hash_bytes(v)),
            HashOn::ClientIp => hash_ip(client),
        }
    }

    /// Admits one request under `circuit.max_requests`; `None` = over the limit (counted).
    pub fn begin(&self) -> Option<Slot<'_>> {
        if self.max_in_flight != 0 && self.in_flight.get() >= self.max_in_flight {
            self.circuit_trips.set(self.circuit_trips.get() + 1);
            return None;
        }
        self.in_flight.set(self.in_flight.get() + 1);
        Some(Slot(&self.in_flight))
    }

    /// Admits one connection attempt under `circuit.max_pending`; `None` = over (counted).
    pub fn begin_connect(&self) -> Option<Slot<'_>> {
        if self.max_pending != 0 && self.pending.get() >= self.max_pending {
            self.circuit_trips.set(self.circuit_trips.get() + 1);
            return None;
        }
        self.pending.set(self.pending.get() + 1);
        Some(Slot(&self.pending))
    }

    /// Counts a request in flight to endpoint `i` until the slot drops (least request).
    pub fn track(&self, i: usize) -> Slot<'_> {
        let c = &self.eps[i].outstanding;
        c.set(c.get() + 1);
        Slot(c)
    }

    /// Requests refused by the circuit breaker on this shard.
    pub fn circuit_trips(&self) -> u64 {
        self.circuit_trips.get()
    }
}

/// A held unit of a per-shard counter, released on drop.
#[must_use]
pub struct Slot<'a>(&'a Cell<u32>);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get().saturating_sub(1));
    }
}
