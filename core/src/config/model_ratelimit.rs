//! The configuration model of rate limiting: `[ratelimit]` (Redis reconciliation, fail mode) and
//! its named limits `[ratelimit.limits.<name>]` with per-tier overrides; routes attach limits by
//! name (`rate_limits = [...]` in `[[routes]]`).
//!
//! Owns: the serde shape and defaults of these sections. Must not: validate across sections
//! (`validate/ratelimit.rs` does) or build limiters (the policies crate does).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::units::Dur;

/// What a limited route does while Redis is unreachable or too slow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailMode {
    /// Keep serving with local limits only: the shards of each process reconcile among
    /// themselves, each process enforcing `1 / gateways` of the limit.
    #[default]
    Open,
    /// Refuse limited requests (503) until Redis answers again.
    Closed,
}

/// `[ratelimit]`: shared settings and the named limits.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Redis address `host:port`; absent (and no `redis_cluster`) = local limits only.
    pub redis: Option<String>,
    /// Seed nodes (`host:port`) of a Redis Cluster, instead of `redis`.
    pub redis_cluster: Vec<String>,
    /// ACL user for `AUTH` (with a password); absent = the default user.
    pub redis_username: Option<String>,
    /// Environment variable holding the Redis password (never the password itself).
    pub redis_password_env: Option<String>,
    /// File holding the Redis password (read at each connect).
    pub redis_password_file: Option<String>,
    /// TLS to Redis, trusting the CA certificates (PEM) in this file; absent = plain TCP.
    pub redis_tls_ca_file: Option<String>,
    /// How often each gateway reconciles its usage with Redis.
    pub sync_interval: Dur,
    /// Longest wait for a Redis reply before the fail mode applies.
    pub redis_timeout: Dur,
    /// Behaviour while Redis is unreachable.
    pub fail_mode: FailMode,
    /// Gateway processes sharing the limits (divides local limits without Redis).
    pub gateways: u32,
    /// Prefix of every Redis key.
    pub key_prefix: String,
    /// Most tracked keys per limit per shard; idle keys are evicted first.
    pub max_keys: usize,
    /// Known consumer tiers; when non-empty, limits may only override these.
    pub tiers: Vec<String>,
    /// Named limits, attached to routes by name.
    pub limits: BTreeMap<String, LimitConfig>,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            redis: None,
            redis_cluster: Vec::new(),
            redis_username: None,
            redis_password_env: None,
            redis_password_file: None,
            redis_tls_ca_file: None,
            sync_interval: Dur::millis(5),
            redis_timeout: Dur::millis(100),
            fail_mode: FailMode::Open,
            gateways: 1,
            key_prefix: "portcullis".to_owned(),
            max_keys: 100_000,
            tiers: Vec::new(),
            limits: BTreeMap::new(),
        }
    }
}

/// `[ratelimit.limits.<name>]`: a GCRA limit of `rate` requests per `per`, with `burst`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LimitConfig {
    /// What identifies a client of this limit: `"client_ip"`, `"consumer"`, `"route"`,
    /// `"header:<name>"`; several combine (one bucket per combination).
    pub key: Vec<String>,
    /// Requests allowed per `per` (sustained).
    pub rate: u64,
    /// The period `rate` is counted over.
    #[serde(default = "default_per")]
    pub per: Dur,
    /// Requests allowed at once after an idle period; absent = `rate`.
    #[serde(default)]
    pub burst: Option<u64>,
    /// Per-tier overrides (the consumer's tier picks them).
    #[serde(default)]
    pub tiers: BTreeMap<String, TierLimit>,
}

fn default_per() -> Dur {
    Dur::secs(1)
}

impl RateLimitConfig {
    /// True when limits are reconciled through Redis (a server or a cluster).
    pub fn has_redis(&self) -> bool {
        self.redis.is_some() || !self.redis_cluster.is_empty()
    }
}

impl LimitConfig {
    /// The effective burst (`burst`, or `rate` when absent).
    pub fn burst_or_rate(&self) -> u64 {
        self.burst.unwrap_or(self.rate)
    }
}

/// `[ratelimit.limits.<name>.tiers.<tier>]`: rate and burst for consumers of one tier.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TierLimit {
    /// Requests allowed per the limit's `per`.
    pub rate: u64,
    /// Requests allowed at once; absent = `rate`.
    #[serde(default)]
    pub burst: Option<u64>,
}

impl TierLimit {
    /// The effective burst (`burst`, or `rate` when absent).
    pub fn burst_or_rate(&self) -> u64 {
        self.burst.unwrap_or(self.rate)
    }
}
