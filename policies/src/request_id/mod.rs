//! The request-id filter: keeps a well-formed incoming id or generates one, and echoes it back.
//!
//! Owns: id validation, id generation (per-shard RNG) and the id header on request and response.
//! Must not: touch any other header or log anything itself (the access log reads `cx.request_id`).

mod filter;
#[cfg(test)]
mod tests;

pub use filter::RequestIdFilter;
