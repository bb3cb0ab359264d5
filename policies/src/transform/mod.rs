//! The per-route transform filter: prefix rewrite and header edits on the request toward the
//! upstream and on the response toward the client.
//!
//! Owns: `routes[].rewrite_prefix`, `routes[].request_headers`, `routes[].response_headers`.
//! Must not: match routes (the router sets `cx.route`) or touch framing headers.

mod filter;
mod rewrite;
#[cfg(test)]
pub(crate) mod tests;

pub use filter::TransformFilter;
