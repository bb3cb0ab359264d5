//! QUIC and HTTP/3 termination on the shards' own monoio runtimes (issue 9): quinn runs on a
//! small runtime adapter over the shard's ring, every listener has one `SO_REUSEPORT` UDP
//! socket per shard, connection ids name their shard so stray datagrams (after a client's
//! address changes) are steered to the owner, and HTTP/3 requests go through the same engine,
//! router and filter chain as HTTP/1.1 and HTTP/2 (only through `portcullis_http::engine`'s
//! public API and the shard state).
//!
//! Owns: the quinn runtime adapter (`runtime`, `local`), endpoints and steering (`endpoint`,
//! `cid`, `steer`), HTTP/3 serving (`h3`, `shard`, `crypto`, `drain`) and our own HTTP/3 client
//! (`client`). Must not: start threads of its own or a tokio runtime; every QUIC endpoint lives
//! on the shard that created it.

pub mod cid;
pub mod client;
mod crypto;
mod drain;
pub mod endpoint;
mod h3;
mod local;
mod runtime;
pub mod shard;
pub mod steer;

pub use drain::DrainSignal;
pub use local::Local;
pub use runtime::MonoioRuntime;
