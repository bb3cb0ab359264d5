//! `AuthzFilter`: each route's `authz` compiled once and checked by route index per request.
//!
//! Owns: the checks and the 403 reply (`insufficient_scope` with the RFC 6750 challenge, or
//! `forbidden`). Must not: allocate on the allowed path.

use std::cell::Cell;

use portcullis_core::LocalReply;
use portcullis_core::config::{Config, RouteAuthz, ScopeMatch};
use portcullis_core::error::Source;
use portcullis_core::pipeline::{Cx, Filter, Flow, Identity, RequestHead};

/// Checks routes' `authz` against `cx.identity`.
#[derive(Debug)]
pub struct AuthzFilter {
    /// Indexed like `cfg.routes`; `None` for routes without `authz`.
    routes: Vec<Option<RouteAuthz>>,
    realm: String,
    denied: Cell<u64>,
}

impl AuthzFilter {
    /// The filter when some route has `authz` (and authentication is on), else `None`.
    pub fn build(cfg: &Config) -> Option<AuthzFilter> {
        if !cfg.auth.is_enabled() || cfg.routes.iter().all(|r| r.authz.is_empty()) {
            return None;
        }
        Some(AuthzFilter {
            routes: cfg.routes.iter().map(|r| (!r.authz.is_empty()).then(|| r.authz.clone())).collect(),
            realm: cfg.auth.realm.replace(['"', '\\'], ""),
            denied: Cell::new(0),
        })
    }

    /// Requests refused (401 or 403) on this shard.
    pub fn denied(&self) -> u64 {
        self.denied.get()
    }

    fn deny(&self, reply: LocalReply) -> Flow {
        self.denied.set(self.denied.get() + 1);
        Flow::Respond(reply)
    }
}

/// Why an identity does not satisfy a route.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Denial {
    Issuer,
    Scope,
    Role,
    Claim,
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

impl Filter for AuthzFilter {
    async fn on_request(&self, _req: &mut RequestHead, cx: &mut Cx) -> Flow {
        let Some(Some(rule)) = cx.route.and_then(|i| self.routes.get(i)) else { return Flow::Continue };
        let Some(id) = &cx.identity else {
            let reply = LocalReply::new(401, "unauthorized", "credentials required", Source::Policy)
                .with_header("www-authenticate", format!("Bearer realm=\"{}\"", self.realm));
            return self.deny(reply);
        };
        match check(rule, id) {
            Ok(()) => Flow::Continue,
            Err(Denial::Scope) => {
                let value = format!(
                    "Bearer realm=\"{}\", error=\"insufficient_scope\", scope=\"{}\"",
                    self.realm,
                    rule.scopes.join(" ")
                );
                self.deny(
                    LocalReply::new(
                        403,
                        "insufficient_scope",
                        "the credential lacks a required scope",
                        Source::Policy,
                    )
                    .with_header("www-authenticate", value),
                )
            }
            Err(d) => {
                let message = match d {
                    Denial::Issuer => "this credential is not accepted on this route",
                    Denial::Role => "the credential lacks a required role",
                    _ => "the credential does not satisfy this route's claim rules",
                };
                self.deny(LocalReply::new(403, "forbidden", message, Source::Policy))
            }
        }
    }
}
