//! The upstream service: one background thread per process (a small monoio runtime) that runs
//! active health checks and watches endpoints files, and the DNS resolver thread (`dns`),
//! publishing the results to every shard through each upstream's [`LiveUpstream`].
//!
//! Owns: the registry of live upstreams by name (kept across config reloads, so health and
//! discovery state survive them) and the background tasks. Must not: run on a shard or be
//! touched on the request path (shards only read the `LiveUpstream` atomics).

use std::cell::Cell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use portcullis_core::config::{Config, DnsConfig, UpstreamConfig, load_endpoints_file};
use portcullis_core::telemetry::Metrics;

use super::dns::{self, DnsDiscovery, Target};
use super::health;
use super::live::{LiveUpstream, SharedEndpoint, Source};

/// How often the thread looks for config changes, file changes, due lookups and new endpoints.
const TICK: Duration = Duration::from_millis(200);

/// Handle to the upstream service (cheap to clone, `Send + Sync`).
#[derive(Clone, Debug)]
pub struct UpstreamService {
    registry: Arc<Mutex<Registry>>,
    tx: Sender<Update>,
    dns: DnsDiscovery,
    metrics: Option<Metrics>,
}

/// The live upstreams by name and the DNS settings each was last resolved with.
#[derive(Debug, Default)]
struct Registry {
    lives: HashMap<String, Arc<LiveUpstream>>,
    dns: HashMap<String, DnsConfig>,
}

/// A new generation's config and its live upstreams (config order), for the thread.
type Update = (Arc<Config>, Vec<Arc<LiveUpstream>>);

/// The endpoint pairs of an upstream's inline `endpoints`.
pub fn fixed_endpoints(u: &UpstreamConfig) -> Vec<(SocketAddr, u32)> {
    u.addrs.iter().enumerate().map(|(i, a)| (*a, u.weights.get(i).copied().unwrap_or(1).max(1))).collect()
}

impl UpstreamService {
    /// Starts the background thread; health gauges go to `metrics` when given.
    pub fn start(metrics: Option<Metrics>) -> std::io::Result<UpstreamService> {
        let (tx, rx) = mpsc::channel();
        let m = metrics.clone();
        std::thread::Builder::new().name("portcullis-upstreams".into()).spawn(move || {
            match monoio::RuntimeBuilder::<monoio::LegacyDriver>::new().enable_timer().build() {
                Ok(mut rt) => rt.block_on(control(rx, m)),
                Err(e) => tracing::error!("cannot start the upstream service runtime: {e}"),
            }
        })?;
        let dns = DnsDiscovery::start(metrics.clone())?;
        Ok(UpstreamService { registry: Arc::default(), tx, dns, metrics })
    }

    /// The metrics registry the service reports to.
    pub fn metrics(&self) -> Option<&Metrics> {
        self.metrics.as_ref()
    }

    /// The live upstreams of `cfg` (config order), created or updated from it; the threads then
    /// start or adjust the health checks and discovery of each. Called once per generation.
    /// An upstream whose `dns` is new or changed is resolved here first (blocking up to its
    /// `timeout` per server and question), so its endpoints exist before the generation serves.
    pub fn register(&self, cfg: &Arc<Config>) -> Vec<Arc<LiveUpstream>> {
        let mut reg = self.registry.lock().unwrap_or_else(PoisonError::into_inner);
        let reg = &mut *reg;
        let mut targets = Vec::new();
        let lives: Vec<Arc<LiveUpstream>> = cfg
            .upstreams
            .iter()
            .map(|u| {
                let live = reg
                    .lives
                    .entry(u.name.clone())
                    .or_insert_with(|| Arc::new(LiveUpstream::new(&u.name, &[], &[])))
                    .clone();
                // DNS first: an upstream moving from static endpoints to DNS never has none.
                match &u.dns {
                    Some(d) => {
                        let sched = (reg.dns.get(&u.name) != Some(d))
                            .then(|| dns::refresh(&live, d, None, self.metrics.as_ref()));
                        reg.dns.insert(u.name.clone(), d.clone());
                        targets.push(Target { live: live.clone(), cfg: d.clone(), sched });
                    }
                    None => {
                        reg.dns.remove(&u.name);
                    }
                }
                live.update(Source::Fixed, &fixed_endpoints(u));
                live.update(Source::File, &u.file_addrs);
                if u.dns.is_none() {
                    live.update(Source::Dns, &[]);
                }
                live
            })
            .collect();
        reg.lives.retain(|name, _| cfg.upstreams.iter().any(|u| &u.name == name));
        reg.dns.retain(|name, _| reg.lives.contains_key(name));
        self.dns.track(targets);
        let _ = self.tx.send((cfg.clone(), lives.clone()));
        lives
    }
}

/// The background work of one upstream on the service thread.
struct Watch {
    live: Arc<LiveUpstream>,
    cfg: UpstreamConfig,
    stop: Rc<Cell<bool>>,
    /// Endpoints that have a health check task.
    probed: Vec<Arc<SharedEndpoint>>,
    /// Modification time and length of the endpoints file last applied.
    file_stamp: Option<(SystemTime, u64)>,
}

impl Watch {
    fn same(&self, u: &UpstreamConfig, live: &Arc<LiveUpstream>) -> bool {
        Arc::ptr_eq(&self.live, live)
            && self.cfg.health_check == u.health_check
            && self.cfg.endpoints_file == u.endpoints_file
    }
}

async fn control(rx: Receiver<Update>, metrics: Option<Metrics>) {
    let mut watches: HashMap<String, Watch> = HashMap::new();
    loop {
        loop {
            match rx.try_recv() {
                Ok((cfg, lives)) => reconcile(&mut watches, &cfg, &lives),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    for w in watches.values() {
                        w.stop.set(true);
                    }
                    return;
                }
            }
        }
        for w in watches.values_mut() {
            tick(w, &metrics);
        }
        monoio::time::sleep(TICK).await;
    }
}

/// Applies a new config: keeps the watches whose settings did not change, restarts the others.
fn reconcile(watches: &mut HashMap<String, Watch>, cfg: &Config, lives: &[Arc<LiveUpstream>]) {
    watches.retain(|name, w| {
        let keep = cfg.upstreams.iter().zip(lives).any(|(u, l)| &u.name == name && w.same(u, l));
        if !keep {
            w.stop.set(true);
        }
        keep
    });
    for (u, live) in cfg.upstreams.iter().zip(lives) {
        watches.entry(u.name.clone()).or_insert_with(|| Watch {
            live: live.clone(),
            cfg: u.clone(),
            stop: Rc::new(Cell::new(false)),
            probed: Vec::new(),
            file_stamp: None,
        });
    }
}

/// One round of an upstream's background work: reload a changed endpoints file, start health
/// checks for endpoints that have none.
fn tick(w: &mut Watch, metrics: &Option<Metrics>) {
    if let Some(path) = &w.cfg.endpoints_file {
        let stamp = std::fs::metadata(path).ok().and_then(|m| Some((m.modified().ok()?, m.len())));
        if stamp.is_some() && stamp != w.file_stamp {
            w.file_stamp = stamp;
            match load_endpoints_file(path) {
                Ok(list) => {
                    w.live.update(Source::File, &list);
                }
                // A broken file keeps the previous endpoints until it changes again.
                Err(e) => tracing::warn!(upstream = %w.live.name, "endpoints file not applied: {e}"),
            }
        }
    }
    let Some(hc) = &w.cfg.health_check else {
        // Checks were turned off by a reload: nothing may stay marked down.
        for ep in w.live.list().iter().filter(|e| !e.healthy()) {
            w.live.set_health(ep, true);
        }
        return;
    };
    w.probed.retain(|e| !e.retired());
    let hc = Rc::new(hc.clone());
    for ep in w.live.list().iter() {
        if w.probed.iter().any(|p| Arc::ptr_eq(p, ep)) {
            continue;
        }
        w.probed.push(ep.clone());
        monoio::spawn(health::run(w.live.clone(), ep.clone(), hc.clone(), w.stop.clone(), metrics.clone()));
    }
}
