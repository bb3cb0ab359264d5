//! Rate limiting: GCRA per key on each shard's own buckets, reconciled to a shared Redis by a
//! sync thread beside the shards, so every shard of every gateway converges on one limit.
//!
//! Owns: the algorithm (`gcra`), per-shard key tables (`table`, `shard`), the filter, the
//! process-wide service and its sync thread (`service`, `sync`, `script.lua`; the Redis client is `crate::redis`).
//! Must not: lock, block or open sockets on the request path (only `sync` talks to Redis).

mod filter;
mod gcra;
mod service;
mod shard;
mod sync;
mod table;
#[cfg(test)]
mod tests;

pub use filter::RateLimitFilter;
pub use gcra::{Decision, Gcra};
pub use service::{Health, RateLimitService, RateLimitStats};
