//! The configuration model of authorisation on the mTLS client-certificate identity:
//! `routes[].authz.client_cert`.
//!
//! Owns: the serde shape of the predicate. Must not: validate (`validate/auth.rs` does) or read
//! certificates (the TLS layer verified them; the authz filter reads `cx.client_cert`).
//! Documented in `docs/config.md` (section "Route keys: `auth` and `authz`").

use serde::Deserialize;

/// `routes[].authz.client_cert`: every non-empty list must hold for the verified certificate.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientCertMatch {
    /// The certificate's subject (as in `x-client-cert-subject`, e.g. `CN=billing,O=Acme`) is one
    /// of these.
    pub subject: Vec<String>,
    /// One of the certificate's DNS names is one of these.
    pub dns: Vec<String>,
    /// The certificate's SPIFFE id (`spiffe://...` URI SAN) is one of these.
    pub spiffe_id: Vec<String>,
}

impl ClientCertMatch {
    /// True when the route puts no condition on the certificate.
    pub fn is_empty(&self) -> bool {
        self.subject.is_empty() && self.dns.is_empty() && self.spiffe_id.is_empty()
    }
}
