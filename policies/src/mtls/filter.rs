//! `MtlsFilter`: per route, whether a client certificate is required; per request, the check
//! and the identity headers.
//!
//! Owns: the 403 for a missing certificate and the identity headers toward the upstream. Must
//! not: trust incoming `x-client-cert-*` headers (they are always removed first).

use bytes::Bytes;
use portcullis_core::LocalReply;
use portcullis_core::config::Config;
use portcullis_core::error::Source;
use portcullis_core::pipeline::{Cx, Filter, Flow, RequestHead};

/// Header carrying the verified client certificate's subject.
pub const SUBJECT: &str = "x-client-cert-subject";
/// Header carrying the verified client certificate's SPIFFE id.
pub const SPIFFE: &str = "x-client-cert-spiffe-id";
/// Header carrying the verified client certificate's DNS names, comma-separated.
pub const DNS: &str = "x-client-cert-dns";

/// Enforces `require_client_cert` and forwards the verified identity.
#[derive(Debug)]
pub struct MtlsFilter {
    /// For each route (config order), whether it requires a client certificate.
    required: Vec<bool>,
}

impl MtlsFilter {
    /// Needed when a route requires a certificate or a listener asks for one.
    pub fn is_needed(cfg: &Config) -> bool {
        cfg.routes.iter().any(|r| r.require_client_cert)
            || cfg.listeners.iter().filter_map(|l| l.tls.as_ref()).any(|t| t.client_ca.is_some())
    }

    /// Compiles the per-route requirement.
    pub fn build(cfg: &Config) -> MtlsFilter {
        MtlsFilter { required: cfg.routes.iter().map(|r| r.require_client_cert).collect() }
    }
}

impl Filter for MtlsFilter {
    async fn on_request(&self, req: &mut RequestHead, cx: &mut Cx) -> Flow {
        for name in [SUBJECT, SPIFFE, DNS] {
            req.headers.remove(name);
        }
        let Some(cert) = &cx.client_cert else {
            let required = cx.route.and_then(|r| self.required.get(r).copied()).unwrap_or(false);
            if required {
                return Flow::Respond(LocalReply::new(
                    403,
                    "client_certificate_required",
                    "this route requires a client certificate",
                    Source::Policy,
                ));
            }
            return Flow::Continue;
        };
        // Only printable ASCII reaches a header value.
        let clean = |s: &str| Bytes::from(s.chars().filter(|c| (' '..='~').contains(c)).collect::<String>());
        req.headers.append(SUBJECT, clean(&cert.subject));
        if let Some(id) = &cert.spiffe_id {
            req.headers.append(SPIFFE, clean(id));
        }
        if !cert.dns_names.is_empty() {
            req.headers.append(DNS, clean(&cert.dns_names.join(",")));
        }
        Flow::Continue
    }
}
