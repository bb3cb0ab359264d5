//! Shard threads: one pinned thread per shard, each running its own runtime.
//!
//! Owns: thread creation, CPU pinning, and what a shard is handed at start (its listeners, the
//! first config generation, its control mailbox). Must not: know any protocol; the function a
//! shard runs is supplied by the caller.

use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;

use crate::config::Config;

use super::ring::{self, Driver};
use super::status::Status;

/// One config generation: the validated config plus whatever the caller compiled from it once
/// (e.g. the route table). Shared read-only by all shards.
#[derive(Debug)]
pub struct Generation<S> {
    /// Monotonic generation number (1 = the config loaded at start).
    pub id: u64,
    /// The validated configuration.
    pub config: Arc<Config>,
    /// Compiled, immutable data shared by all shards.
    pub shared: S,
}

/// A shard's answer to a control message.
#[derive(Debug)]
pub enum ShardEvent {
    /// The shard is listening (sent once at start).
    Ready {
        /// Shard index.
        shard: usize,
    },
    /// The shard built (or could not build) a generation it was asked to prepare.
    Prepared {
        /// Shard index.
        shard: usize,
        /// Generation id.
        generation: u64,
        /// Error text if the shard could not build its pipeline for it.
        error: Option<String>,
    },
    /// The shard switched new requests to a committed generation.
    Applied {
        /// Shard index.
        shard: usize,
        /// Generation id.
        generation: u64,
    },
    /// The shard finished draining.
    Drained {
        /// Shard index.
        shard: usize,
        /// Requests still in flight when the drain timeout hit (0 = clean).
        abandoned: usize,
    },
}

/// A message from the supervisor to a shard.
#[derive(Debug)]
pub enum Control<S> {
    /// Build this generation beside the running one and answer `Prepared`; keep serving the
    /// running one until `Commit`.
    Prepare(Arc<Generation<S>>),
    /// Switch new requests to the prepared generation with this id and answer `Applied`.
    Commit(u64),
    /// Drop the prepared generation with this id; the running one stays.
    Abort(u64),
    /// Stop accepting, finish in-flight requests (up to the deadline), then return.
    Drain(std::time::Duration),
}

/// Everything a shard starts with.
pub struct ShardCtx<S> {
    /// Shard index (0-based).
    pub id: usize,
    /// CPU the shard is pinned to, if pinned.
    pub cpu: Option<usize>,
    /// The shard's own listening sockets (SO_REUSEPORT), in listener order.
    pub listeners: Vec<TcpListener>,
    /// The shard's own UDP socket per listener (same order) that serves HTTP/3, else `None`.
    pub udp: Vec<Option<std::net::UdpSocket>>,
    /// The generation to start with.
    pub initial: Arc<Generation<S>>,
    /// Control mailbox (reloads, drain).
    pub control: async_channel::Receiver<Control<S>>,
    /// Where to report readiness, reload results and drain completion.
    pub events: mpsc::Sender<ShardEvent>,
    /// Shared operational state; the shard publishes its own gauges (`status.shard(id)`).
    pub status: Arc<Status>,
}

/// Spawns one thread per shard; thread `i` runs `main(ctx_i)` on a runtime of `driver`.
pub fn spawn_shards<S, F, Fut>(
    driver: Driver,
    cpus: Vec<Option<usize>>,
    contexts: Vec<ShardCtx<S>>,
    main: Arc<F>,
) -> std::io::Result<Vec<JoinHandle<()>>>
where
    S: Send + Sync + 'static,
    F: Fn(ShardCtx<S>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()>,
{
    let mut handles = Vec::with_capacity(contexts.len());
    for (ctx, cpu) in contexts.into_iter().zip(cpus) {
        let main = main.clone();
        let id = ctx.id;
        let handle = std::thread::Builder::new().name(format!("shard-{id}")).spawn(move || {
            if let Some(cpu) = cpu
                && !core_affinity::set_for_current(core_affinity::CoreId { id: cpu })
            {
                tracing::warn!(shard = id, cpu, "could not pin shard to its CPU");
            }
            if let Err(e) = ring::block_on(driver, main(ctx)) {
                tracing::error!(shard = id, error = %e, "shard runtime failed to start");
            }
        })?;
        handles.push(handle);
    }
    Ok(handles)
}

/// Test builds only: the refusal a shard must report when preparing `cfg`, injected with
/// `PORTCULLIS_FAULT_PREPARE=<shard>:<route name>` (that shard refuses every generation that has
/// a route of that name), so tests can exercise a generation that only some shards refuse.
/// Release builds never refuse here.
pub fn injected_prepare_fault(shard: usize, cfg: &Config) -> Option<String> {
    if !cfg!(debug_assertions) {
        return None;
    }
    let spec = std::env::var("PORTCULLIS_FAULT_PREPARE").ok()?;
    let (id, route) = spec.split_once(':')?;
    let hit = id.parse() == Ok(shard) && cfg.routes.iter().any(|r| r.name.as_deref() == Some(route));
    hit.then(|| format!("injected prepare fault on shard {shard} (PORTCULLIS_FAULT_PREPARE)"))
}

/// The CPUs this process may run on (respecting `taskset`/cgroup limits), in order.
pub fn allowed_cpus() -> Vec<usize> {
    core_affinity::get_core_ids().map(|ids| ids.into_iter().map(|c| c.id).collect()).unwrap_or_default()
}
