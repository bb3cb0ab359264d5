//! Thread-per-core runtime: driver probe, ring flags, pinned shard threads, reuse-port
//! listeners, and the supervisor that reloads and drains them.

mod listener;
mod ring;
mod shard;
mod supervisor;

pub use listener::{bind_all, bind_reuseport, bind_udp_all, bind_udp_reuseport};
pub use ring::{Driver, RingFlags, UringUnavailable, block_on, choose_driver};
pub use shard::{Control, Generation, ShardCtx, ShardEvent, allowed_cpus};
pub use supervisor::{CompileFn, StartError, Supervisor, shard_count};
