//! The forwarding-headers filter: decides whom to believe about the client's address and writes
//! `X-Forwarded-*` or RFC 7239 `Forwarded` toward the upstream.
//!
//! Owns: the trusted-proxy set, `cx.client_ip`, and the `X-Forwarded-For`/`-Proto`/`-Host`,
//! `X-Real-IP` and `Forwarded` request headers. Must not: touch any other header, or the response.

mod filter;
mod parse;
#[cfg(test)]
mod tests;

pub use filter::ForwardedFilter;
