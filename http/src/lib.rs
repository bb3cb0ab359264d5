//! Portcullis HTTP: the HTTP/1.1 and HTTP/2 servers, the router, upstream pools and the proxy
//! engine that drives the filter chain. Knows no policy by name: the chain is a type parameter.
//!
//! One request's stages, one folder each: `shard` (accept, shard state), `tls::accept` (TLS
//! handshake, ALPN), `h1::server` / `h2` (HTTP/1.1 and HTTP/2 servers), `engine` (filter chain
//! run, local replies, the response stage), `forward` (`h1`, `h2`, the shared plan and retry),
//! `upstream` (endpoint pick, pools, health), `engine::log` (replies before a request existed).

pub(crate) mod body;
pub(crate) mod compiled;
pub(crate) mod convert;
pub mod engine;
mod forward;
pub mod fuzz;
pub mod h1;
pub mod h2;
pub(crate) mod io;
pub mod router;
pub(crate) mod shard;
pub(crate) mod slice_io;
pub(crate) mod spare;
pub mod tls;
pub(crate) mod tunnel;
pub mod upstream;

pub use compiled::{Compiled, compile, compile_with};
pub use shard::state::Inflight;
pub use shard::{BuildChain, ShardGen, ShardState, serve_shard, serve_shard_with};
