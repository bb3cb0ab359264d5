//! The observe filter: W3C trace context on the way in, and on the way out (its log phase,
//! which runs for every request, short-circuits included) the request's metrics and its access
//! log line.
//!
//! Owns: what a finished request contributes to telemetry (labels from the route *name*, never
//! the raw path; no body, no credential, query stripped or redacted). Must not: lock, allocate
//! in the steady state, or block: cells are this shard's own, lines go to the writer thread
//! through a bounded queue (a full queue drops the line and counts it).

mod filter;
mod line;
#[cfg(test)]
mod tests;

pub use filter::ObserveFilter;
