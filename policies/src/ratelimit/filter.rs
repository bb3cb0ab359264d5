//! The rate-limit filter: per request, the limits of the matched route, each keyed by its scopes
//! and checked on this shard's buckets; 429 with `Retry-After` when one refuses, and the IETF
//! `RateLimit` / `RateLimit-Policy` headers on every response of a limited route.
//!
//! Owns: key building, tier selection, the fail mode, the 429 reply and the headers. Must not:
//! block, lock or allocate for a known key (keys are built in a reused buffer), or talk to Redis.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use bytes::Bytes;
use portcullis_core::config::{Config, FailMode, LimitConfig};
use portcullis_core::pipeline::{Cx, Filter, Flow, RateLimitInfo, RequestHead, ResponseHead};
use portcullis_core::runtime::allowed_cpus;
use portcullis_core::telemetry::bump;
use portcullis_core::{LocalReply, Source};

use super::gcra::{Decision, Gcra};
use super::messages::clock_ns;
use super::service::Health;
use super::shard::{LimitState, ShardLimiter};
use crate::chain::ChainEnv;

const NS_PER_SEC: u64 = 1_000_000_000;

/// One component of a limit's key.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Scope {
    ClientIp,
    Consumer,
    Route,
    Header(String),
}

/// A named limit compiled for this generation.
#[derive(Debug)]
struct Limit {
    state: Rc<LimitState>,
    scopes: Vec<Scope>,
    default: Gcra,
    tiers: Vec<(Box<str>, Gcra, u64)>,
    rate: u64,
    per_secs: u64,
    /// `portcullis_events_total{event="rate_limited", reason=<limit>}` on this shard.
    hits: Option<Arc<AtomicU64>>,
}

/// The limits of one route.
#[derive(Debug, Default)]
struct RouteLimits {
    name: Option<Rc<str>>,
    limits: Vec<usize>,
    policy: Bytes,
}

/// Per-shard, per-generation rate limiting.
#[derive(Debug)]
pub struct RateLimitFilter {
    shard: Rc<ShardLimiter>,
    limits: Vec<Limit>,
    routes: Vec<RouteLimits>,
    fail_mode: FailMode,
    default_share: f64,
    /// `portcullis_events_total{event="ratelimit_unavailable", reason="fail_closed"}`.
    refused: Option<Arc<AtomicU64>>,
}

fn scope(s: &str) -> Scope {
    match s {
        "client_ip" => Scope::ClientIp,
        "consumer" => Scope::Consumer,
        "route" => Scope::Route,
        other => Scope::Header(other.strip_prefix("header:").unwrap_or(other).to_ascii_lowercase()),
    }
}

fn per_ns(l: &LimitConfig) -> u64 {
    u64::try_from(l.per.0.as_nanos()).unwrap_or(u64::MAX).max(1)
}

impl RateLimitFilter {
    /// True when some route has limits.
    pub fn is_needed(cfg: &Config) -> bool {
        cfg.routes.iter().any(|r| !r.rate_limits.is_empty())
    }

    /// Compiles the limits of `cfg` on this shard, reusing the buckets of unchanged limits.
    /// Limit names were validated; an unknown one is skipped here.
    pub fn build(cfg: &Config, env: &ChainEnv) -> RateLimitFilter {
        let rl = &cfg.ratelimit;
        let shard = ShardLimiter::for_thread(&env.ratelimit);
        let metrics = env.telemetry.as_ref().map(|t| &t.metrics);
        let event = |event: &str, reason: &str| metrics.map(|m| m.event(env.shard, event, reason));
        let mut used: Vec<&str> =
            cfg.routes.iter().flat_map(|r| r.rate_limits.iter().map(String::as_str)).collect();
        used.sort_unstable();
        used.dedup();
        let wanted: Vec<(&str, &LimitConfig)> =
            used.iter().filter_map(|n| rl.limits.get_key_value(*n)).map(|(n, l)| (n.as_str(), l)).collect();
        let states = shard.adopt(&wanted, rl.max_keys);
        let limits: Vec<Limit> = wanted
            .iter()
            .zip(states)
            .map(|((name, l), state)| Limit {
                hits: event("rate_limited", name),
                state,
                scopes: l.key.iter().map(|s| scope(s)).collect(),
                default: Gcra::new(l.rate, per_ns(l), l.burst_or_rate()),
                tiers: l
                    .tiers
                    .iter()
                    .map(|(t, tl)| {
                        (t.as_str().into(), Gcra::new(tl.rate, per_ns(l), tl.burst_or_rate()), tl.rate)
                    })
                    .collect(),
                rate: l.rate,
                per_secs: l.per.0.as_secs().max(1),
            })
            .collect();
        let routes = cfg
            .routes
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let idx: Vec<usize> =
                    r.rate_limits.iter().filter_map(|n| wanted.iter().position(|(w, _)| w == n)).collect();
                let policy = policy_header(
                    idx.iter().map(|&i| (&*limits[i].state.name, limits[i].rate, limits[i].per_secs)),
                );
                RouteLimits {
                    name: Some(Rc::from(r.display_name(i))),
                    limits: idx,
                    policy: Bytes::from(policy),
                }
            })
            .collect();
        let shards = match cfg.server.shards {
            0 => allowed_cpus().len().max(1),
            n => n,
        };
        let split = shards as f64 * f64::from(rl.gateways.max(1));
        RateLimitFilter {
            shard,
            limits,
            routes,
            fail_mode: rl.fail_mode,
            default_share: 1.0 / split,
            refused: event("ratelimit_unavailable", "fail_closed"),
        }
    }

    /// Builds `limit`'s key for this request into `buf`; false when a scope has no value (the
    /// limit does not apply to this request).
    fn key(limit: &Limit, route: &RouteLimits, req: &RequestHead, cx: &Cx, buf: &mut Vec<u8>) -> bool {
        buf.clear();
        for s in &limit.scopes {
            let (tag, part): (u8, &[u8]) = match s {
                Scope::ClientIp => match &cx.client_ip {
                    IpAddr::V4(v4) => {
                        buf.push(b'i');
                        buf.extend_from_slice(&v4.octets());
                        continue;
                    }
                    IpAddr::V6(v6) => {
                        buf.push(b'I');
                        buf.extend_from_slice(&v6.octets());
                        continue;
                    }
                },
                Scope::Consumer => match &cx.consumer {
                    Some(c) => (b'c', c),
                    None => return false,
                },
                Scope::Route => (b'r', route.name.as_deref().map_or(&b""[..], str::as_bytes)),
                Scope::Header(h) => match req.headers.get(h) {
                    Some(v) => (b'h', v),
                    None => return false,
                },
            };
            buf.push(tag);
            buf.extend_from_slice(&u32::try_from(part.len()).unwrap_or(u32::MAX).to_be_bytes());
            buf.extend_from_slice(part);
        }
        true
    }

    fn params(limit: &Limit, cx: &Cx) -> Gcra {
        if let Some(tier) = &cx.tier
            && let Some((_, g, _)) = limit.tiers.iter().find(|(t, _, _)| **t == **tier)
        {
            return *g;
        }
        limit.default
    }
}

/// `RateLimit-Policy` for a route: `"name";q=<rate>;w=<seconds>` per limit.
fn policy_header<'a>(limits: impl Iterator<Item = (&'a str, u64, u64)>) -> String {
    let mut out = String::new();
    for (name, rate, per) in limits {
        if !out.is_empty() {
            out.push_str(", ");
        }
        let _ = write!(out, "\"{name}\";q={rate};w={per}");
    }
    out
}

fn ceil_secs(ns: u64) -> u64 {
    ns.div_ceil(NS_PER_SEC)
}

impl Filter for RateLimitFilter {
    async fn on_request(&self, req: &mut RequestHead, cx: &mut Cx) -> Flow {
        let Some(route) = cx.route.and_then(|r| self.routes.get(r)) else { return Flow::Continue };
        if route.limits.is_empty() {
            return Flow::Continue;
        }
        let now = clock_ns(cx.started);
        self.shard.apply_replies(now);
        let health = self.shard.health();
        if health == Health::Down && self.fail_mode == FailMode::Closed {
            self.shard.count_fail_closed();
            if let Some(c) = &self.refused {
                bump(c, 1);
            }
            tracing::warn!(
                route = route.name.as_deref().unwrap_or(""),
                client = %cx.client_ip,
                request_id = %String::from_utf8_lossy(&cx.request_id),
                "rate limit: redis unavailable and fail_mode is closed; request refused"
            );
            return Flow::Respond(
                LocalReply::new(
                    503,
                    "ratelimit_unavailable",
                    "rate limits cannot be checked right now",
                    Source::Policy,
                )
                .with_header("Retry-After", "1"),
            );
        }
        let stale_ns = self.shard.stale_ns();
        let mut tightest: Option<RateLimitInfo> = None;
        let mut scratch = self.shard.scratch.borrow_mut();
        for &li in &route.limits {
            let limit = &self.limits[li];
            if !Self::key(limit, route, req, cx, &mut scratch) {
                continue;
            }
            let params = Self::params(limit, cx);
            let decision =
                limit.state.table.borrow_mut().check(&scratch, params, self.default_share, stale_ns, now);
            match decision {
                Decision::Allow { remaining, reset } => {
                    if tightest.is_none_or(|t| remaining < t.remaining) {
                        tightest = Some(RateLimitInfo {
                            policy: li as u32,
                            remaining,
                            reset_secs: ceil_secs(reset),
                        });
                    }
                }
                Decision::Deny { retry_after, reset } => {
                    drop(scratch);
                    cx.rate_limit =
                        Some(RateLimitInfo { policy: li as u32, remaining: 0, reset_secs: ceil_secs(reset) });
                    let route_name = route.name.clone().unwrap_or_else(|| Rc::from(""));
                    self.shard.count_hit(&route_name, &limit.state.name);
                    if let Some(c) = &limit.hits {
                        bump(c, 1);
                    }
                    tracing::info!(
                        route = &*route_name,
                        limit = &*limit.state.name,
                        client = %cx.client_ip,
                        request_id = %String::from_utf8_lossy(&cx.request_id),
                        retry_after_ms = retry_after / 1_000_000,
                        "rate limited"
                    );
                    let msg = format!("rate limit {:?} exceeded", &*limit.state.name);
                    // Report after the check, so this request's usage leaves with this batch.
                    self.shard.report_if_due(now);
                    return Flow::Respond(
                        LocalReply::new(429, "rate_limited", msg, Source::Policy)
                            .with_header("Retry-After", ceil_secs(retry_after).max(1).to_string()),
                    );
                }
            }
        }
        cx.rate_limit = tightest;
        drop(scratch);
        self.shard.report_if_due(now);
        Flow::Continue
    }

    fn on_response(&self, resp: &mut ResponseHead, cx: &mut Cx) {
        let Some(route) = cx.route.and_then(|r| self.routes.get(r)) else { return };
        if route.limits.is_empty() {
            return;
        }
        let tiered = cx.tier.is_some() && route.limits.iter().any(|&l| !self.limits[l].tiers.is_empty());
        let policy = if tiered {
            Bytes::from(policy_header(route.limits.iter().map(|&l| {
                let lim = &self.limits[l];
                let rate = cx
                    .tier
                    .as_deref()
                    .and_then(|t| lim.tiers.iter().find(|(n, _, _)| &**n == t))
                    .map_or(lim.rate, |(_, _, r)| *r);
                (&*lim.state.name, rate, lim.per_secs)
            })))
        } else {
            route.policy.clone()
        };
        resp.headers.set("RateLimit-Policy", policy);
        if let Some(info) = cx.rate_limit
            && let Some(lim) = self.limits.get(info.policy as usize)
        {
            let v = format!("\"{}\";r={};t={}", lim.state.name, info.remaining, info.reset_secs);
            resp.headers.set("RateLimit", v);
        }
    }
}
