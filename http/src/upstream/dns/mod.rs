//! DNS service discovery: one resolver thread per process re-resolves every upstream's
//! `[upstreams.dns]` when its TTL (clamped to `min_ttl..=max_ttl`) expires and publishes the
//! endpoints through the upstream's [`LiveUpstream`] as [`Source::Dns`]; health checks then cover
//! them like any other endpoint.
//!
//! A failed lookup, NXDOMAIN or an empty answer never removes endpoints: the last good list stays,
//! the first failure of a streak is logged as a warning (the rest at debug) and every one is
//! counted as `portcullis_events_total{event="upstream_dns_failure",reason=<upstream>}`; the
//! lookup is retried with a doubling backoff from `min_ttl` up to `min(max_ttl, 30s)`.
//!
//! Owns: the resolver thread and each upstream's lookup schedule. Must not: run on a shard or
//! block the upstream service thread (lookups are blocking), or touch per-shard state.

mod client;
mod error;
mod lookup;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use portcullis_core::config::DnsConfig;
use portcullis_core::telemetry::Metrics;

use super::live::{LiveUpstream, Source};

use lookup::resolve;

/// Longest wait between two attempts during a failure streak.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The event counted for each failed or empty lookup.
const FAILURE_EVENT: &str = "upstream_dns_failure";

/// When an upstream's next lookup is due and how many in a row have failed.
#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    /// The next lookup.
    pub due: Instant,
    failures: u32,
}

/// One upstream whose endpoints come from DNS.
#[derive(Debug)]
pub struct Target {
    /// Where the endpoints are published.
    pub live: Arc<LiveUpstream>,
    /// What to resolve.
    pub cfg: DnsConfig,
    /// Its schedule after a lookup just made, or `None` to keep the thread's (unchanged config).
    pub sched: Option<Schedule>,
}

/// Resolves `cfg` once, publishes the endpoints to `live` (never an empty list), logs and counts
/// a failure; returns when to look again. `prev` is the schedule of the previous lookup.
pub fn refresh(
    live: &LiveUpstream,
    cfg: &DnsConfig,
    prev: Option<Schedule>,
    metrics: Option<&Metrics>,
) -> Schedule {
    let servers: Vec<SocketAddr> = match cfg.server_addr() {
        Some(Ok(addr)) => vec![addr],
        // Validation refused a bad server; fall back to the system's rather than to none.
        _ => client::system_nameservers(),
    };
    let failures = prev.map_or(0, |p| p.failures);
    match resolve(cfg, &servers) {
        Ok(found) => {
            if failures > 0 {
                tracing::info!(upstream = %live.name, name = %cfg.name, failures, "DNS lookup succeeds again");
            }
            live.update(Source::Dns, &found.endpoints);
            let wait = found.ttl.clamp(cfg.min_ttl.0, cfg.max_ttl.0);
            Schedule { due: Instant::now() + wait, failures: 0 }
        }
        Err(e) => {
            if failures == 0 {
                tracing::warn!(upstream = %live.name, name = %cfg.name, error = %e,
                    "DNS lookup failed; keeping the last endpoints and retrying");
            } else {
                tracing::debug!(upstream = %live.name, name = %cfg.name, error = %e, failures, "DNS lookup failed");
            }
            if let Some(m) = metrics {
                // Two threads may count here (a config load and the resolver thread): an atomic
                // add, not the single-writer `bump` of the shards.
                m.event(0, FAILURE_EVENT, &live.name).fetch_add(1, Ordering::Relaxed);
            }
            let failures = failures.saturating_add(1);
            Schedule { due: Instant::now() + backoff(cfg, failures), failures }
        }
    }
}

/// The wait after the `failures`-th failure in a row: `min_ttl` doubling, at most
/// `min(max_ttl, 30s)`, plus up to 10 % jitter.
fn backoff(cfg: &DnsConfig, failures: u32) -> Duration {
    let cap = cfg.max_ttl.0.min(MAX_BACKOFF).max(cfg.min_ttl.0);
    let base = cfg.min_ttl.0.saturating_mul(1 << failures.saturating_sub(1).min(16)).min(cap);
    base + base.mul_f64(fastrand::f64() * 0.1)
}

/// Handle to the resolver thread (cheap to clone, `Send + Sync`).
#[derive(Clone, Debug)]
pub struct DnsDiscovery {
    tx: Sender<Vec<Target>>,
}

impl DnsDiscovery {
    /// Starts the resolver thread; failures are counted in `metrics` when given.
    pub fn start(metrics: Option<Metrics>) -> std::io::Result<DnsDiscovery> {
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new().name("portcullis-dns".into()).spawn(move || run(rx, metrics))?;
        Ok(DnsDiscovery { tx })
    }

    /// Replaces the set of upstreams the thread keeps resolved (a new config generation).
    pub fn track(&self, targets: Vec<Target>) {
        let _ = self.tx.send(targets);
    }
}

/// The resolver thread: waits for the earliest due lookup or a new target set.
fn run(rx: Receiver<Vec<Target>>, metrics: Option<Metrics>) {
    let mut tracked: Vec<(Target, Schedule)> = Vec::new();
    loop {
        let next = tracked.iter().map(|(_, s)| s.due).min();
        let got = match next {
            Some(due) => rx.recv_timeout(due.saturating_duration_since(Instant::now())),
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match got {
            Ok(targets) => {
                let now = Schedule { due: Instant::now(), failures: 0 };
                tracked = targets
                    .into_iter()
                    .map(|t| {
                        let kept =
                            tracked.iter().find(|(o, _)| Arc::ptr_eq(&o.live, &t.live) && o.cfg == t.cfg);
                        let sched = t.sched.or(kept.map(|(_, s)| *s)).unwrap_or(now);
                        (t, sched)
                    })
                    .collect();
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        for (t, sched) in &mut tracked {
            if sched.due <= Instant::now() {
                *sched = refresh(&t.live, &t.cfg, Some(*sched), metrics.as_ref());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_core::config::{DnsRecordType, Dur};

    #[test]
    fn backoff_doubles_from_min_ttl_up_to_its_cap() {
        let cfg = DnsConfig {
            name: "a.test".into(),
            kind: DnsRecordType::A,
            port: Some(80),
            weight: None,
            min_ttl: Dur::secs(1),
            max_ttl: Dur::secs(300),
            server: None,
            timeout: Dur::secs(1),
        };
        let within = |n: u32, lo: u64| {
            let b = backoff(&cfg, n);
            assert!(b >= Duration::from_secs(lo) && b <= Duration::from_secs(lo).mul_f64(1.1), "{n}: {b:?}");
        };
        within(1, 1);
        within(2, 2);
        within(3, 4);
        within(7, 30);
        within(1000, 30);
        let short = DnsConfig { max_ttl: Dur::secs(3), ..cfg.clone() };
        assert!(backoff(&short, 10) <= Duration::from_millis(3300));
    }
}
