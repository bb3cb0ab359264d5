//! Thread-per-core runtime: driver probe, ring flags, pinned shard threads, reuse-port
//! listeners, and the supervisor that reloads and drains them.

mod listener;
pub mod notify;
mod port_owner;
mod ring;
mod shard;
pub mod source;
mod status;
mod supervisor;

pub use listener::{
    HANDOVER_ENV, bind_all, bind_reuseport, bind_udp_all, bind_udp_reuseport, ensure_port_unshared,
    handover_from_env, port_holder_note,
};
pub use port_owner::{Holders, Process, Transport, holders};
pub use ring::{Driver, RingFlags, UringUnavailable, block_on, choose_driver};
pub use shard::{Control, Generation, ShardCtx, ShardEvent, allowed_cpus, injected_prepare_fault};
pub use status::{ReloadResult, RunningConfig, ShardGauges, Status, unix_now};
pub use supervisor::{
    Command, CompileFn, SourceJob, SourceTarget, StartError, Supervisor, SupervisorHandle, shard_count,
};
