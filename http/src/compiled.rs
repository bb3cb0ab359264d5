//! What is compiled once per config generation and shared read-only by every shard.
//!
//! Owns: the route table, the route-to-upstream index, the listeners' and upstreams' TLS contexts
//! and the handles of the upstreams' live endpoint lists. Must not: hold shard-local state.

use std::sync::Arc;

use portcullis_core::config::Config;

use portcullis_core::telemetry::Metrics;

use crate::router::Router;
use crate::tls::{self, ListenerTls};
use crate::upstream::{LiveUpstream, UpstreamService, UpstreamTls, build_tls, fixed_endpoints};

/// Immutable, `Send + Sync` data of one generation.
#[derive(Debug)]
pub struct Compiled {
    /// The route table.
    pub router: Router,
    /// For each route (config order), the index of its upstream in `config.upstreams`.
    pub route_upstream: Vec<usize>,
    /// For each listener (config order), its TLS context when it terminates TLS.
    pub tls: Vec<Option<ListenerTls>>,
    /// For each upstream (config order), its endpoints as discovery and health checks publish them.
    pub upstreams: Vec<Arc<LiveUpstream>>,
    /// Where shards register their upstream event counters.
    pub metrics: Option<Metrics>,
    /// For each upstream (config order), its TLS client context when it speaks TLS.
    pub upstream_tls: Vec<Option<UpstreamTls>>,
}

/// Compiles a validated config with static endpoints and no health checks (`check`, tools, tests).
pub fn compile(cfg: &Arc<Config>) -> Result<Compiled, String> {
    let upstreams = cfg
        .upstreams
        .iter()
        .map(|u| Arc::new(LiveUpstream::new(&u.name, &fixed_endpoints(u), &u.file_addrs)))
        .collect();
    compile_parts(cfg, upstreams, None)
}

/// Compiles a validated config whose upstreams the process-wide `service` keeps live.
pub fn compile_with(cfg: &Arc<Config>, service: &UpstreamService) -> Result<Compiled, String> {
    let compiled = compile_parts(cfg, Vec::new(), service.metrics().cloned())?;
    Ok(Compiled { upstreams: service.register(cfg), ..compiled })
}

fn compile_parts(
    cfg: &Arc<Config>,
    upstreams: Vec<Arc<LiveUpstream>>,
    metrics: Option<Metrics>,
) -> Result<Compiled, String> {
    let router = Router::compile(&cfg.routes).map_err(|e| e.to_string())?;
    let mut route_upstream = Vec::with_capacity(cfg.routes.len());
    for (i, r) in cfg.routes.iter().enumerate() {
        let idx = cfg
            .upstreams
            .iter()
            .position(|u| u.name == r.upstream)
            .ok_or_else(|| format!("routes[{i}].upstream: unknown upstream {:?}", r.upstream))?;
        route_upstream.push(idx);
    }
    let mut tls = Vec::with_capacity(cfg.listeners.len());
    for (i, l) in cfg.listeners.iter().enumerate() {
        tls.push(match &l.tls {
            Some(t) => Some(tls::build(t).map_err(|e| format!("listeners[{i}].tls.{e}"))?),
            None => None,
        });
    }
    let mut upstream_tls = Vec::with_capacity(cfg.upstreams.len());
    for (i, u) in cfg.upstreams.iter().enumerate() {
        upstream_tls.push(match &u.tls {
            Some(t) => Some(build_tls(t, u).map_err(|e| format!("upstreams[{i}].tls.{e}"))?),
            None => None,
        });
    }
    Ok(Compiled { router, route_upstream, tls, upstreams, metrics, upstream_tls })
}
