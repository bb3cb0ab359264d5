//! Shared harness for the end-to-end tests: the real `portcullis` binary on ephemeral ports
//! (`gateway`), real upstream servers on std threads (`upstream`), a raw HTTP/1.1 client
//! (`client`), a certificate authority and TLS client (`tls`) and the framing, digest and data generator both sides share (`wire`).
//!
//! Each test file compiles this module separately and uses a different part of it.
#![allow(dead_code, unused_imports)]

pub mod admin;
pub mod client;
pub mod collector;
pub mod dns;
pub mod gateway;
pub mod h2;
pub mod h2_upstream;
pub mod jwks;
pub mod redis;
pub mod redis_cluster;
pub mod tls;
pub mod tls_upstream;
pub mod upstream;
pub mod wire;

pub use admin::{Metrics, admin};
pub use client::{Client, Response, get, request};
pub use gateway::{Gateway, app_gateway, config};
pub use upstream::{Reply, Req, Upstream, closed_port, echo_reply, endpoint_list, response};
pub use wire::{Digest, Framing, Pattern, PatternCheck};

use std::time::Duration;

/// A generous bound for things that normally take milliseconds (a loaded 2-core machine).
pub const LONG: Duration = Duration::from_secs(30);

/// A catch-all route to `upstream` named `name`.
pub fn upstream_toml(name: &str, addr: std::net::SocketAddr) -> String {
    format!("[[upstreams]]\nname = \"{name}\"\nendpoints = [\"{addr}\"]\n")
}
