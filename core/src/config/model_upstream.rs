//! Upstream resilience settings: endpoint weights, load-balancing policy, passive outlier
//! detection and circuit breaking of an `[[upstreams]]` entry.
//!
//! Owns: what `[[upstreams]]` may say about how endpoints are chosen and when they are avoided.
//! Must not: resolve addresses or check values (that is `validate/upstream.rs`).

use serde::Deserialize;

use super::units::Dur;

/// One `endpoints` entry: `"host:port"` or `{ address = "host:port", weight = 3 }`.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum Endpoint {
    /// Plain `host:port`, weight 1.
    Plain(String),
    /// Table form with a weight.
    Weighted(WeightedEndpoint),
}

/// The table form of an endpoint.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightedEndpoint {
    /// `host:port`.
    pub address: String,
    /// Relative weight (1 to 1000).
    #[serde(default = "one")]
    pub weight: u32,
}

fn one() -> u32 {
    1
}

impl Endpoint {
    /// The `host:port` text.
    pub fn address(&self) -> &str {
        match self {
            Endpoint::Plain(a) => a,
            Endpoint::Weighted(w) => &w.address,
        }
    }

    /// The weight (1 for the plain form).
    pub fn weight(&self) -> u32 {
        match self {
            Endpoint::Plain(_) => 1,
            Endpoint::Weighted(w) => w.weight,
        }
    }
}

/// `lb`: how a shard picks an endpoint for a request.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LbPolicy {
    /// Each endpoint in turn.
    #[default]
    RoundRobin,
    /// In turn, proportionally to the weights (smooth weighted round robin).
    WeightedRoundRobin,
    /// Power of two choices: the less busy of two random endpoints (per-shard in-flight counts).
    LeastRequest,
    /// Uniformly random (weighted).
    Random,
    /// Ring hash on `hash_on`: the same key goes to the same endpoint.
    ConsistentHash,
}

/// `[upstreams.outlier]`: passive health, per endpoint and per shard.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutlierConfig {
    /// Consecutive failures (5xx, connect failure, reset, timeout) that eject an endpoint; 0 = off.
    pub consecutive_failures: u32,
    /// First ejection time; each further ejection without a success in between adds as much.
    pub base_ejection: Dur,
    /// Longest ejection.
    pub max_ejection: Dur,
    /// At most this share of the endpoints is ejected at once (percent).
    pub max_ejected_percent: u32,
    /// Below this share of healthy endpoints, traffic spreads over all of them (percent).
    pub panic_threshold_percent: u32,
}

impl Default for OutlierConfig {
    fn default() -> Self {
        OutlierConfig {
            consecutive_failures: 5,
            base_ejection: Dur::secs(30),
            max_ejection: Dur::secs(300),
            max_ejected_percent: 50,
            panic_threshold_percent: 50,
        }
    }
}

/// `[upstreams.circuit]`: limits per upstream and per shard; over a limit = immediate 503.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CircuitConfig {
    /// Concurrent requests in flight toward the upstream; 0 = unlimited.
    pub max_requests: u32,
    /// Concurrent new connections being opened toward the upstream; 0 = unlimited.
    pub max_pending: u32,
    /// Open connections (idle and busy) toward the upstream, for the whole process: each shard
    /// gets an equal share (at least 1); 0 = unlimited.
    pub max_connections: u32,
}

/// `[routes.retry]`: retries of a route's requests toward other endpoints.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Retries per request (0 = off).
    pub max: u32,
    /// Response statuses that are retried (besides connect failures and resets).
    pub statuses: Vec<u16>,
    /// Retries allowed as a share of requests, per upstream and shard (percent).
    pub budget_percent: u32,
    /// Retries always allowed regardless of the budget, per upstream and shard.
    pub min_retries: u32,
    /// Backoff before the first retry (doubles per retry, full jitter).
    pub backoff: Dur,
    /// Retry non-idempotent methods too (POST, PATCH).
    pub any_method: bool,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max: 0,
            statuses: vec![502, 503, 504],
            budget_percent: 20,
            min_retries: 3,
            backoff: Dur::millis(25),
            any_method: false,
        }
    }
}
