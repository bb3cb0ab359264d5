//! Active health checks of one endpoint: an HTTP `GET` (expected statuses) or a TCP connect,
//! every jittered interval, with healthy and unhealthy thresholds; the result is published to
//! every shard through the endpoint's shared atomic and exported as a gauge.
//!
//! Owns: the probe and the threshold state of one endpoint. Must not: run on a shard (it runs on
//! the upstream service thread) or pick endpoints.

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use portcullis_core::config::{HealthCheckConfig, HealthCheckKind};
use portcullis_core::telemetry::Metrics;

use super::live::{LiveUpstream, SharedEndpoint};

/// Most bytes of a probe response read to find its status line.
const PROBE_READ: usize = 1024;

/// One probe: true when the endpoint answered as expected within the timeout.
pub async fn probe(addr: SocketAddr, cfg: &HealthCheckConfig) -> bool {
    match monoio::time::timeout(cfg.timeout.0, probe_inner(addr, cfg)).await {
        Ok(Ok(ok)) => ok,
        Ok(Err(e)) => {
            tracing::debug!(%addr, error = %e, "health probe failed");
            false
        }
        Err(_) => {
            tracing::debug!(%addr, "health probe timed out");
            false
        }
    }
}

async fn probe_inner(addr: SocketAddr, cfg: &HealthCheckConfig) -> std::io::Result<bool> {
    let mut stream = TcpStream::connect_addr(addr).await?;
    if cfg.kind == HealthCheckKind::Tcp {
        return Ok(true);
    }
    let host = cfg.host.clone().unwrap_or_else(|| addr.to_string());
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: portcullis-health\r\nConnection: close\r\n\r\n",
        cfg.path
    );
    let (res, _) = stream.write_all(req.into_bytes()).await;
    res?;
    let mut got: Vec<u8> = Vec::with_capacity(PROBE_READ);
    while got.len() < PROBE_READ && !got.contains(&b'\n') {
        let (res, buf) = stream.read(Vec::with_capacity(PROBE_READ - got.len())).await;
        if res? == 0 {
            break;
        }
        got.extend_from_slice(&buf);
    }
    Ok(status_of(&got).is_some_and(|s| cfg.status_ok(s)))
}

/// The status code of an `HTTP/1.x NNN ...` status line.
fn status_of(head: &[u8]) -> Option<u16> {
    let line = head.split(|&b| b == b'\n').next()?;
    let rest = line.strip_prefix(b"HTTP/1.")?;
    let code = rest.get(2..5)?;
    std::str::from_utf8(code).ok()?.parse().ok()
}

/// Probes `ep` until it leaves the list or `stop` is set, flipping its health after
/// `unhealthy_threshold` failures or `healthy_threshold` successes in a row.
pub async fn run(
    live: Arc<LiveUpstream>,
    ep: Arc<SharedEndpoint>,
    cfg: Rc<HealthCheckConfig>,
    stop: Rc<Cell<bool>>,
    metrics: Option<Metrics>,
) {
    let gauge = metrics.map(|m| {
        m.gauge(
            "portcullis_upstream_endpoint_healthy",
            "1 while active health checks find the endpoint healthy, 0 while they do not.",
            vec![("upstream", live.name.clone()), ("endpoint", ep.addr.to_string())],
        )
    });
    let publish = |healthy: bool| {
        if let Some(g) = &gauge {
            g.store(u64::from(healthy), Ordering::Relaxed);
        }
    };
    publish(ep.healthy());
    let (mut ok_run, mut fail_run) = (0u32, 0u32);
    // The first probe waits a random part of one interval so endpoints are not probed together.
    let mut wait = jitter(cfg.interval.0, 100);
    loop {
        monoio::time::sleep(wait).await;
        if stop.get() || ep.retired() {
            return;
        }
        let ok = probe(ep.addr, &cfg).await;
        if ok {
            (ok_run, fail_run) = (ok_run.saturating_add(1), 0);
        } else {
            (ok_run, fail_run) = (0, fail_run.saturating_add(1));
        }
        let flip =
            if ep.healthy() { fail_run >= cfg.unhealthy_threshold } else { ok_run >= cfg.healthy_threshold };
        if flip && live.set_health(&ep, !ep.healthy()) {
            let healthy = ep.healthy();
            if healthy {
                tracing::info!(upstream = %live.name, endpoint = %ep.addr, "upstream endpoint healthy");
            } else {
                tracing::warn!(upstream = %live.name, endpoint = %ep.addr, "upstream endpoint unhealthy");
            }
        }
        publish(ep.healthy());
        wait = cfg.interval.0 + jitter(cfg.interval.0, cfg.jitter_percent);
    }
}

/// A random duration from zero to `percent` of `d`.
fn jitter(d: Duration, percent: u32) -> Duration {
    let max = d.as_nanos().min(u128::from(u64::MAX)) as u64 / 100 * u64::from(percent.min(100));
    Duration::from_nanos(fastrand::u64(0..=max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_line_parsing() {
        assert_eq!(status_of(b"HTTP/1.1 204 No Content\r\n"), Some(204));
        assert_eq!(status_of(b"HTTP/1.0 503 x\r\n"), Some(503));
        assert_eq!(status_of(b"SSH-2.0\r\n"), None);
        assert_eq!(status_of(b"HTTP/1.1 2"), None);
    }

    #[test]
    fn jitter_stays_within_its_share() {
        for _ in 0..100 {
            assert!(jitter(Duration::from_secs(1), 10) <= Duration::from_millis(100));
        }
        assert_eq!(jitter(Duration::from_secs(1), 0), Duration::ZERO);
    }
}
