//! Process-wide services that filters of every shard and every config generation share: the
//! things that must outlive one generation or exist once per process (a Redis sync thread, a
//! JWKS fetcher, ...). Built once at start-up by the binary and cloned into every shard.
//!
//! Owns: the handles only (each `Send + Sync`, cheap to clone). Must not: be touched on the
//! request path except through shard-local state a filter derived from it at build time.

use crate::authn::AuthService;

/// Shared services handed to [`Chain::build`](super::Chain::build). Each capability adds one
/// field here (an `Arc`-backed handle) and reads it when its filter is built.
#[derive(Clone, Debug, Default)]
pub struct ChainEnv {
    /// Metrics registry and access log; `None` in tests and tools (then only trace context runs).
    pub telemetry: Option<portcullis_core::telemetry::Telemetry>,
    /// The shard this copy of the environment builds chains for (set per shard by the binary).
    pub shard: usize,
    /// JWKS fetching and API key files (one background thread, started on first use).
    pub auth: AuthService,
    /// The rate-limit service (Redis sync thread); the default has none (local limits only).
    pub ratelimit: crate::ratelimit::RateLimitService,
}

impl ChainEnv {
    /// The services for a process that has none configured yet (tests, `check`).
    pub fn new() -> ChainEnv {
        ChainEnv::default()
    }
}
