//! QUIC and HTTP/3 termination on the shards' own monoio runtimes (issue 9).
//!
//! Owns: the quinn runtime adapter (`runtime`, `local`) and our HTTP/3 client (`client`). Must not: start threads of its own or
//! a tokio runtime; every QUIC endpoint lives on the shard that created it.

pub mod cid;
pub mod client;
pub mod endpoint;
mod local;
mod runtime;
pub mod steer;

pub use local::Local;
pub use runtime::MonoioRuntime;
