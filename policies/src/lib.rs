//! Portcullis policies: the request/response filters and the chain that runs them.
//!
//! Owns: one folder per filter (`observe`, `request_id`, `forwarded`, `cors`, `mtls`, `authn`, `authz`,
//! `ratelimit`, `transform`), `redis` (the RESP client background threads share), each compiling its config once per shard per config generation, and `chain`, the
//! closed-enum dispatch over them; `fuzz`, the entry point of its cargo-fuzz target.
//! Must not: open sockets or block on the request path, or speak any wire protocol.

// Nothing here needs `unsafe` (the allocation-counting allocator of `benches/limiter.rs` is a
// separate crate).
#![forbid(unsafe_code)]

pub mod authn;
mod authz;
mod chain;
mod cors;
mod error;
mod forwarded;
pub mod fuzz;
mod header_rules;
mod mtls;
mod observe;
mod ratelimit;
mod redis;
mod request_id;
#[cfg(test)]
mod testutil;
mod transform;

pub use authn::{AuthService, AuthnFilter};
pub use authz::AuthzFilter;
pub use chain::{AnyFilter, Chain, ChainEnv};
pub use cors::CorsFilter;
pub use error::BuildError;
pub use forwarded::ForwardedFilter;
pub use mtls::MtlsFilter;
pub use observe::ObserveFilter;
pub use ratelimit::{Decision, Gcra, Health, RateLimitFilter, RateLimitService, RateLimitStats};
pub use request_id::RequestIdFilter;
pub use transform::TransformFilter;
