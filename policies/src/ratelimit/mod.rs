//! Rate limiting: GCRA per key on each shard's own buckets, reconciled by a sync thread beside
//! the shards: through Redis (a server or a cluster) across gateways, or through the thread's own
//! buckets within one process, so every shard converges on one limit.
//!
//! Owns: the algorithm (`gcra`), per-shard key tables (`table`, `shard`), the filter, the
//! process-wide service (`service`), the messages between shards and the sync thread
//! (`messages`), the sync thread (`sync`) and its backends (`local_store`, `redis_store`,
//! `script.lua`; the Redis client is `crate::redis`).
//! Must not: lock, block or open sockets on the request path (only `sync` talks to Redis).

mod filter;
mod gcra;
mod local_store;
mod messages;
mod redis_store;
mod service;
mod shard;
mod sync;
mod table;
#[cfg(test)]
mod tests;

pub use filter::RateLimitFilter;
pub use gcra::{Decision, Gcra};
pub use service::{Health, RateLimitService, RateLimitStats};
