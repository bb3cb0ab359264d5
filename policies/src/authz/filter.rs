//! `AuthzFilter`: each route's `authz` compiled once and checked by route index per request:
//! conditions on the verified mTLS client certificate, then on the authenticated identity.
//!
//! Owns: the checks, the 401/403 replies (`insufficient_scope` with the RFC 6750 challenge,
//! `forbidden`, `client_certificate_required`) and the `auth_denied` metric events. Must not:
//! allocate on the allowed path.

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use portcullis_core::LocalReply;
use portcullis_core::config::{ClientCertMatch, Config, RouteAuthz, ScopeMatch};
use portcullis_core::error::Source;
use portcullis_core::pipeline::{ClientCert, Cx, Filter, Flow, Identity, RequestHead};
use portcullis_core::telemetry::bump;

use crate::chain::ChainEnv;

/// Denial reasons, in counter order (metric `auth_denied` events).
pub const DENIALS: [&str; 7] =
    ["unauthenticated", "issuer", "scope", "role", "claim", "client_cert_missing", "client_cert"];

/// Checks routes' `authz` against `cx.client_cert` and `cx.identity`.
#[derive(Debug)]
pub struct AuthzFilter {
    /// Indexed like `cfg.routes`; `None` for routes without `authz`.
    routes: Vec<Option<RouteAuthz>>,
    realm: String,
    denied: Cell<u64>,
    events: Option<[Arc<AtomicU64>; DENIALS.len()]>,
}

impl AuthzFilter {
    /// The filter when some route has `authz`, else `None`.
    pub fn build(cfg: &Config, env: &ChainEnv) -> Option<AuthzFilter> {
        if cfg.routes.iter().all(|r| r.authz.is_empty()) {
            return None;
        }
        Some(AuthzFilter {
            routes: cfg.routes.iter().map(|r| (!r.authz.is_empty()).then(|| r.authz.clone())).collect(),
            realm: cfg.auth.realm.replace(['"', '\\'], ""),
            denied: Cell::new(0),
            events: env
                .telemetry
                .as_ref()
                .map(|t| DENIALS.map(|d| t.metrics.event(env.shard, "auth_denied", d))),
        })
    }

    /// Requests refused (401 or 403) on this shard.
    pub fn denied(&self) -> u64 {
        self.denied.get()
    }

    fn deny(&self, why: Denial, reply: LocalReply) -> Flow {
        self.denied.set(self.denied.get() + 1);
        if let Some(events) = &self.events {
            bump(&events[why as usize], 1);
        }
        Flow::Respond(reply)
    }

    fn identity_denied(&self, rule: &RouteAuthz, why: Denial) -> Flow {
        if why == Denial::Scope {
            let value = format!(
                "Bearer realm=\"{}\", error=\"insufficient_scope\", scope=\"{}\"",
                self.realm,
                rule.scopes.join(" ")
            );
            let reply = LocalReply::new(
                403,
                "insufficient_scope",
                "the credential lacks a required scope",
                Source::Policy,
            )
            .with_header("www-authenticate", value);
            return self.deny(why, reply);
        }
        let message = match why {
            Denial::Issuer => "this credential is not accepted on this route",
            Denial::Role => "the credential lacks a required role",
            Denial::ClientCert => "the client certificate is not accepted on this route",
            _ => "the credential does not satisfy this route's claim rules",
        };
        self.deny(why, LocalReply::new(403, "forbidden", message, Source::Policy))
    }
}

/// Why a request does not satisfy a route (the discriminant indexes [`DENIALS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Denial {
    Unauthenticated = 0,
    Issuer = 1,
    Scope = 2,
    Role = 3,
    Claim = 4,
    ClientCertMissing = 5,
    ClientCert = 6,
}

/// Checks `id` against `rule`.
pub(crate) fn check(rule: &RouteAuthz, id: &Identity) -> Result<(), Denial> {
    if !rule.issuers.is_empty() && !rule.issuers.iter().any(|i| *i == *id.source) {
        return Err(Denial::Issuer);
    }
    if !rule.scopes.is_empty() {
        let ok = match rule.scopes_match {
            ScopeMatch::All => rule.scopes.iter().all(|s| id.has_scope(s)),
            ScopeMatch::Any => rule.scopes.iter().any(|s| id.has_scope(s)),
        };
        if !ok {
            return Err(Denial::Scope);
        }
    }
    if !rule.roles.is_empty() && !rule.roles.iter().any(|r| id.has_role(r)) {
        return Err(Denial::Role);
    }
    for m in &rule.claims {
        let values = id.claim(&m.claim).unwrap_or_default();
        let ok = values.iter().any(|v| match &m.equals {
            Some(want) => **v == **want,
            None => m.one_of.iter().any(|w| **v == **w),
        });
        if !ok {
            return Err(Denial::Claim);
        }
    }
    Ok(())
}

/// Checks a verified client certificate against `rule`: every non-empty list must hold.
pub(crate) fn check_cert(rule: &ClientCertMatch, cert: &ClientCert) -> bool {
    (rule.subject.is_empty() || rule.subject.contains(&cert.subject))
        && (rule.dns.is_empty() || cert.dns_names.iter().any(|d| rule.dns.contains(d)))
        && (rule.spiffe_id.is_empty() || cert.spiffe_id.as_ref().is_some_and(|s| rule.spiffe_id.contains(s)))
}

impl Filter for AuthzFilter {
    async fn on_request(&self, _req: &mut RequestHead, cx: &mut Cx) -> Flow {
        let Some(Some(rule)) = cx.route.and_then(|i| self.routes.get(i)) else { return Flow::Continue };
        if !rule.client_cert.is_empty() {
            match &cx.client_cert {
                None => {
                    let reply = LocalReply::new(
                        403,
                        "client_certificate_required",
                        "this route requires a client certificate",
                        Source::Policy,
                    );
                    return self.deny(Denial::ClientCertMissing, reply);
                }
                Some(cert) if !check_cert(&rule.client_cert, cert) => {
                    return self.identity_denied(rule, Denial::ClientCert);
                }
                Some(_) => {}
            }
        }
        if !rule.needs_identity() {
            return Flow::Continue;
        }
        let Some(id) = &cx.identity else {
            let reply = LocalReply::new(401, "unauthorized", "credentials required", Source::Policy)
                .with_header("www-authenticate", format!("Bearer realm=\"{}\"", self.realm));
            return self.deny(Denial::Unauthenticated, reply);
        };
        match check(rule, id) {
            Ok(()) => Flow::Continue,
            Err(why) => self.identity_denied(rule, why),
        }
    }
}
