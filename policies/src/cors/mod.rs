//! The browser-facing response policy: CORS (preflights answered at the gateway, allow-lists of
//! origins, methods and headers, credentials, max-age, exposed headers) and the internal response
//! headers stripped before a client sees them.
//!
//! Owns: `policy` (one compiled CORS policy), `strip` (`[response] strip_headers`) and `filter`
//! (`CorsFilter`, which applies both). Must not: authenticate or route.

mod filter;
mod policy;
mod strip;
#[cfg(test)]
mod tests;

pub use filter::CorsFilter;
