//! The observe filter: W3C trace context on the way in, and on the way out (its log phase,
//! which runs for every request, short-circuits included) the request's metrics and its access
//! log line.
//!
//! Owns: what a finished request contributes to telemetry (labels from the route *name*, never
//! the raw path; no body, no credential, query stripped or redacted). Must not: lock, allocate
//! in the steady state, or block: cells are this shard's own, lines collect in a shard-local
//! batch handed to the writer thread through a bounded queue when full or at the shard's tick
//! (a full queue drops the batch and counts its lines).

mod filter;
mod line;
#[cfg(test)]
mod tests;

pub use filter::ObserveFilter;
