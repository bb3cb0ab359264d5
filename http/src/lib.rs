//! Portcullis HTTP: the HTTP/1.1 codec, the router, upstream pools and the proxy engine that
//! drives the filter chain. Knows no policy by name: the chain is a type parameter.

pub mod body;
pub mod compiled;
pub mod conn;
pub mod convert;
pub mod downstream;
pub mod fuzz;
pub mod h1;
pub mod h2;
pub mod io;
pub mod proxy;
mod proxy_h2;
mod proxy_plan;
pub mod router;
pub mod shard;
pub mod slice_io;
pub mod spare;
pub mod tls;
pub mod tls_conn;
pub mod tunnel;
pub mod upstream;

pub use compiled::{Compiled, compile, compile_with};
pub use shard::{BuildChain, ShardGen, ShardState, serve_shard, serve_shard_with};
