//! The verified client certificate of an mTLS connection, as later policies see it.
//!
//! Owns: the identity record (subject, subject alternative names, SPIFFE id). Must not: verify
//! anything (the TLS layer verified the chain before this exists).

/// Identity from a client certificate that the listener verified against its CA.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientCert {
    /// Subject, rendered `CN=...,O=...` (common attributes, certificate order).
    pub subject: String,
    /// DNS names from the subject alternative names.
    pub dns_names: Vec<String>,
    /// URIs from the subject alternative names.
    pub uris: Vec<String>,
    /// The SPIFFE id: the first `spiffe://` URI, if any.
    pub spiffe_id: Option<String>,
}
