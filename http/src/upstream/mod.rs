//! Upstream services as a shard sees them: endpoints, selection, and the connection pool.
//!
//! Owns: per-shard, per-generation upstream state (the endpoint set with in-flight counts and
//! ejections, rebuilt when discovery publishes a new list; the pick cursor and random state;
//! circuit counters). Must not: know routes or filters, or be shared across threads
//! (everything is `Cell`, no locks; the shared parts are in `live.rs`).

mod attempts;
mod conn;
mod deadline;
mod dns;
pub mod h2;
mod health;
mod lb;
mod live;
mod outlier;
mod pool;
mod retry;
mod service;
mod stream;
mod tls;

use std::cell::{Cell, RefCell};
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use portcullis_core::config::{LbPolicy, OutlierConfig, UpstreamConfig, UpstreamProtocol};
use portcullis_core::pipeline::Headers;
use portcullis_core::telemetry::{Metrics, bump};

pub use attempts::Attempts;
pub use conn::UpConn;
pub use deadline::stamp_deadline;
pub use lb::{build_ring, hash_bytes, hash_ip, ring_lookup};
pub use live::{LiveUpstream, SharedEndpoint, Source};
pub use outlier::Outcome;
pub use pool::{ConnectError, Pool, PoolStats};
pub use service::{UpstreamService, fixed_endpoints};
pub use stream::UpStream;
pub use tls::{NoVerify, TlsFail, UpstreamTls, build as build_tls, secure};

/// One endpoint of an upstream on one shard.
#[derive(Debug)]
pub struct Endpoint {
    /// Its address.
    pub addr: SocketAddr,
    /// Relative weight.
    pub weight: u32,
    /// Shared health (active checks).
    shared: Arc<SharedEndpoint>,
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

    /// Ejected by outlier detection or marked unhealthy by active checks.
    fn is_out(&self) -> bool {
        self.is_ejected() || !self.shared.healthy()
    }
}

/// The endpoints of an upstream on one shard for one published list. A request holds its set
/// (an `Rc`) for its whole life, so a list change never moves indexes under it.
#[derive(Debug)]
pub struct EndpointSet {
    /// Endpoints, in list order.
    pub eps: Vec<Endpoint>,
    ring: Vec<(u64, u32)>,
    /// Endpoints currently marked ejected.
    ejected: Cell<usize>,
}

impl EndpointSet {
    fn build(list: &[Arc<SharedEndpoint>], lb: LbPolicy, old: Option<&EndpointSet>) -> EndpointSet {
        let pairs: Vec<(SocketAddr, u32)> = list.iter().map(|e| (e.addr, e.weight.max(1))).collect();
        let ring = if lb == LbPolicy::ConsistentHash { build_ring(&pairs) } else { Vec::new() };
        let mut ejected = 0;
        let eps = list
            .iter()
            .map(|shared| {
                // Passive health follows an endpoint that stays in the list.
                let prev = old.and_then(|o| o.eps.iter().find(|e| e.addr == shared.addr));
                let until = prev.and_then(|p| p.ejected_until.get());
                ejected += usize::from(until.is_some());
                Endpoint {
                    addr: shared.addr,
                    weight: shared.weight.max(1),
                    shared: shared.clone(),
                    outstanding: Cell::new(0),
                    current: Cell::new(0),
                    fails: Cell::new(prev.map_or(0, |p| p.fails.get())),
                    ejected_until: Cell::new(until),
                    ejections: Cell::new(prev.map_or(0, |p| p.ejections.get())),
                }
            })
            .collect();
        EndpointSet { eps, ring, ejected: Cell::new(ejected) }
    }

    /// Counts a request in flight to endpoint `i` until the slot drops (least request).
    pub fn track(&self, i: usize) -> Slot<'_> {
        let c = &self.eps[i].outstanding;
        c.set(c.get() + 1);
        Slot(c)
    }

    /// Endpoints currently ejected (outlier detection) in this set.
    pub fn ejected_count(&self) -> usize {
        self.ejected.get()
    }
}

/// What the consistent hash is computed on.
#[derive(Debug)]
enum HashOn {
    ClientIp,
    Header(String),
    Cookie(String),
}

/// Per-shard counters of an upstream exported as `portcullis_events_total`.
#[derive(Debug, Default)]
struct Events {
    retry: Option<Arc<AtomicU64>>,
    budget: Option<Arc<AtomicU64>>,
    max_requests: Option<Arc<AtomicU64>>,
    max_pending: Option<Arc<AtomicU64>>,
    max_connections: Option<Arc<AtomicU64>>,
}

fn count(c: &Option<Arc<AtomicU64>>) {
    if let Some(c) = c {
        bump(c, 1);
    }
}

/// Where an upstream's shard-local state comes from besides its config.
pub struct UpstreamEnv<'a> {
    /// This shard.
    pub shard: usize,
    /// Shards in the process (for per-shard shares of process-wide limits).
    pub shards: usize,
    /// The shared endpoint list.
    pub live: Arc<LiveUpstream>,
    /// Event counters registry, when metrics are on.
    pub metrics: Option<&'a Metrics>,
}

/// One upstream service on one shard.
#[derive(Debug)]
pub struct Upstream {
    /// Service name.
    pub name: String,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Idle connections kept per endpoint.
    pub max_idle: usize,
    /// Idle expiry.
    pub idle_timeout: Duration,
    /// Retire a connection after this many requests (0 = never).
    pub max_requests: u64,
    /// Header carrying the remaining deadline to the upstream.
    pub deadline_header: Option<String>,
    /// Wire protocol toward the endpoints.
    pub protocol: UpstreamProtocol,
    live: Arc<LiveUpstream>,
    seen: Cell<u64>,
    set: RefCell<Rc<EndpointSet>>,
    lb: LbPolicy,
    hash_on: HashOn,
    cursor: Cell<usize>,
    rng: Cell<u64>,
    outlier: OutlierConfig,
    max_in_flight: u32,
    in_flight: Cell<u32>,
    max_pending: u32,
    pending: Cell<u32>,
    max_connections: u32,
    circuit_trips: Cell<u64>,
    sent: Cell<u64>,
    retried: Cell<u64>,
    budget_refusals: Cell<u64>,
    events: Events,
}

impl Upstream {
    /// Builds the shard-local view of a configured upstream over its shared endpoint list.
    /// `env.shard` offsets the round-robin cursor and seeds the random state so shards do not
    /// move in lockstep.
    pub fn new(cfg: &UpstreamConfig, env: UpstreamEnv<'_>) -> Upstream {
        let start = env.shard;
        let hash_on = match cfg.hash_on.as_deref() {
            Some(k) if k.starts_with("header:") => HashOn::Header(k[7..].to_ascii_lowercase()),
            Some(k) if k.starts_with("cookie:") => HashOn::Cookie(k[7..].to_owned()),
            _ => HashOn::ClientIp,
        };
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ (start as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let events = match env.metrics {
            Some(m) => {
                let n = &cfg.name;
                let ev = |event: &str, reason: &str| Some(m.event(start, event, reason));
                Events {
                    retry: ev("upstream_retry", n),
                    budget: ev("upstream_retry_budget_exhausted", n),
                    max_requests: ev("upstream_circuit_open", &format!("{n}:max_requests")),
                    max_pending: ev("upstream_circuit_open", &format!("{n}:max_pending")),
                    max_connections: ev("upstream_circuit_open", &format!("{n}:max_connections")),
                }
            }
            None => Events::default(),
        };
        let seen = env.live.generation();
        let set = EndpointSet::build(&env.live.list(), cfg.lb, None);
        let shards = env.shards.max(1) as u32;
        let c = &cfg.circuit;
        Upstream {
            name: cfg.name.clone(),
            connect_timeout: cfg.connect_timeout.0,
            max_idle: cfg.pool.max_idle_per_endpoint,
            idle_timeout: cfg.pool.idle_timeout.0,
            max_requests: cfg.pool.max_requests_per_connection,
            deadline_header: cfg.deadline_header.as_ref().map(|h| h.to_ascii_lowercase()),
            protocol: cfg.protocol,
            live: env.live,
            seen: Cell::new(seen),
            set: RefCell::new(Rc::new(set)),
            lb: cfg.lb,
            hash_on,
            cursor: Cell::new(start),
            rng: Cell::new(seed),
            outlier: cfg.outlier.clone(),
            max_in_flight: c.max_requests,
            in_flight: Cell::new(0),
            max_pending: c.max_pending,
            pending: Cell::new(0),
            max_connections: if c.max_connections == 0 { 0 } else { c.max_connections.div_ceil(shards) },
            circuit_trips: Cell::new(0),
            sent: Cell::new(0),
            retried: Cell::new(0),
            budget_refusals: Cell::new(0),
            events,
        }
    }

    /// The endpoint set a new request works on: the current one, rebuilt first when discovery
    /// published a new list (then idle pooled connections to removed endpoints are closed).
    pub fn endpoints(&self, pool: &Pool) -> Rc<EndpointSet> {
        let g = self.live.generation();
        if g != self.seen.get() {
            let list = self.live.list();
            let next = Rc::new(EndpointSet::build(&list, self.lb, Some(&self.set.borrow())));
            let old = std::mem::replace(&mut *self.set.borrow_mut(), next);
            for ep in old.eps.iter().filter(|e| !list.iter().any(|n| n.addr == e.addr)) {
                pool.forget(ep.addr);
            }
            self.seen.set(g);
        }
        self.set.borrow().clone()
    }

    /// Whether connections to `addr` may go back to the pool (false once discovery removed it,
    /// so connections to removed endpoints drain as their requests finish).
    pub fn still_serves(&self, set: &Rc<EndpointSet>, addr: SocketAddr) -> bool {
        let current = self.set.borrow();
        Rc::ptr_eq(&current, set) || current.eps.iter().any(|e| e.addr == addr)
    }

    /// The consistent-hash key of a request (0 when the policy does not hash). A missing
    /// header or cookie falls back to the client address.
    pub fn hash_key(&self, headers: &Headers, client: IpAddr) -> u64 {
        if self.lb != LbPolicy::ConsistentHash {
            return 0;
        }
        let value = match &self.hash_on {
            HashOn::Header(name) => headers.get(name).map(|v| hash_bytes(v)),
            HashOn::Cookie(name) => {
                headers.get_all("cookie").find_map(|v| cookie_value(v, name.as_bytes())).map(hash_bytes)
            }
            HashOn::ClientIp => None,
        };
        value.unwrap_or_else(|| hash_ip(client))
    }

    /// Admits one request under `circuit.max_requests`; `None` = over the limit (counted).
    pub fn begin(&self) -> Option<Slot<'_>> {
        if self.max_in_flight != 0 && self.in_flight.get() >= self.max_in_flight {
            self.trip(&self.events.max_requests);
            return None;
        }
        self.in_flight.set(self.in_flight.get() + 1);
        Some(Slot(&self.in_flight))
    }

    /// Admits one connection attempt under `circuit.max_pending` and this shard's share of
    /// `circuit.max_connections` (closing an idle connection of this upstream to make room
    /// when needed); `None` = over a limit (counted).
    pub fn begin_connect(&self, set: &EndpointSet, pool: &Pool) -> Option<Slot<'_>> {
        if self.max_pending != 0 && self.pending.get() >= self.max_pending {
            self.trip(&self.events.max_pending);
            return None;
        }
        if self.max_connections != 0 {
            let open: u32 = set.eps.iter().map(|e| pool.open_count(e.addr)).sum();
            if open >= self.max_connections && !pool.evict_idle(set.eps.iter().map(|e| e.addr)) {
                self.trip(&self.events.max_connections);
                return None;
            }
        }
        self.pending.set(self.pending.get() + 1);
        Some(Slot(&self.pending))
    }

    fn trip(&self, event: &Option<Arc<AtomicU64>>) {
        self.circuit_trips.set(self.circuit_trips.get() + 1);
        count(event);
    }

    /// Requests refused by the circuit breaker on this shard.
    pub fn circuit_trips(&self) -> u64 {
        self.circuit_trips.get()
    }
}

/// The value of cookie `name` in one `Cookie` header value.
fn cookie_value<'a>(header: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    header.split(|&b| b == b';').find_map(|pair| {
        let pair = pair.trim_ascii();
        let eq = pair.iter().position(|&b| b == b'=')?;
        (&pair[..eq] == name).then(|| &pair[eq + 1..])
    })
}

/// A held unit of a per-shard counter, released on drop.
#[must_use]
pub struct Slot<'a>(&'a Cell<u32>);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get().saturating_sub(1));
    }
}

#[cfg(test)]
mod tests {
    use super::cookie_value;

    #[test]
    fn cookie_value_finds_the_named_cookie() {
        assert_eq!(cookie_value(b"a=1; session=xyz; b=2", b"session"), Some(&b"xyz"[..]));
        assert_eq!(cookie_value(b"sessionx=1", b"session"), None);
        assert_eq!(cookie_value(b"session=", b"session"), Some(&b""[..]));
    }
}
