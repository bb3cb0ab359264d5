//! The mTLS policy: routes that require a verified client certificate, and the verified
//! identity handed to the upstream in headers a client cannot forge.
//!
//! Owns: `require_client_cert` enforcement (403 JSON) and the `x-client-cert-*` headers. Must
//! not: verify certificates (the listener's TLS layer did, against its `client_ca`).

mod filter;
#[cfg(test)]
mod tests;

pub use filter::MtlsFilter;
