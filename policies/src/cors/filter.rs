//! `CorsFilter`: answers CORS preflights itself (204, or 403 JSON for a refused one) without
//! reaching the upstream, adds the `Access-Control-*` headers and `Vary: Origin` uniformly to
//! every response of a CORS route (upstream answers and the gateway's own error replies alike),
//! and strips `[response] strip_headers` from every response.
//!
//! Owns: the per-route choice of policy (route `cors`, else `[cors]`) and the header edits.
//! Must not: authenticate (it runs before authentication: preflights carry no credentials) or
//! allocate header values per request (they are rendered at build time or cloned by refcount).

use std::rc::Rc;

use bytes::Bytes;
use portcullis_core::LocalReply;
use portcullis_core::config::Config;
use portcullis_core::error::Source;
use portcullis_core::pipeline::{Cx, Filter, Flow, Method, RequestHead, ResponseHead};

use super::policy::{CorsPolicy, PreflightDenied};
use super::strip::StripRules;

const ACAO: &str = "access-control-allow-origin";
const ACAC: &str = "access-control-allow-credentials";
const ACEH: &str = "access-control-expose-headers";

/// CORS and response-header stripping for one shard and generation.
#[derive(Debug)]
pub struct CorsFilter {
    /// Indexed like `cfg.routes`: the policy in force on the route.
    routes: Vec<Option<Rc<CorsPolicy>>>,
    /// `[cors]`, for requests that match no route.
    global: Option<Rc<CorsPolicy>>,
    strip: StripRules,
}

impl CorsFilter {
    /// True when `[cors]`, some route's `cors` or `[response] strip_headers` is configured.
    pub fn is_needed(cfg: &Config) -> bool {
        cfg.cors.is_some()
            || cfg.routes.iter().any(|r| r.cors.is_some())
            || !cfg.response.strip_headers.is_empty()
    }

    /// Compiles the global and per-route policies (config already validated).
    pub fn build(cfg: &Config) -> CorsFilter {
        let global = cfg.cors.as_ref().and_then(CorsPolicy::build).map(Rc::new);
        let routes = cfg
            .routes
            .iter()
            .map(|r| match &r.cors {
                Some(own) => CorsPolicy::build(own).map(Rc::new),
                None => global.clone(),
            })
            .collect();
        CorsFilter { routes, global, strip: StripRules::build(&cfg.response.strip_headers) }
    }

    fn policy(&self, cx: &Cx) -> Option<&CorsPolicy> {
        match cx.route {
            Some(i) => self.routes.get(i)?.as_deref(),
            None => self.global.as_deref(),
        }
    }
}

fn preflight_reply(p: &CorsPolicy, asked_headers: Option<&Bytes>) -> LocalReply {
    let mut reply = LocalReply::new(204, "cors_preflight", "preflight accepted", Source::Policy)
        .with_header("access-control-allow-methods", p.allow_methods.clone());
    if let Some(h) = asked_headers.filter(|h| !h.trim_ascii().is_empty()) {
        reply = reply.with_header("access-control-allow-headers", h.clone());
    }
    if let Some(age) = &p.max_age {
        reply = reply.with_header("access-control-max-age", age.clone());
    }
    reply
}

fn refused(why: PreflightDenied) -> LocalReply {
    let message = match why {
        PreflightDenied::Origin => "origin not allowed",
        PreflightDenied::Method => "method not allowed for cross-origin requests",
        PreflightDenied::Header => "request header not allowed for cross-origin requests",
    };
    LocalReply::new(403, "cors_forbidden", message, Source::Policy)
}

impl Filter for CorsFilter {
    async fn on_request(&self, req: &mut RequestHead, cx: &mut Cx) -> Flow {
        let Some(policy) = self.policy(cx) else { return Flow::Continue };
        let Some(origin) = req.headers.get("origin") else { return Flow::Continue };
        if req.method == Method::Options
            && let Some(method) = req.headers.get("access-control-request-method")
        {
            let asked = req.headers.get("access-control-request-headers");
            return match policy.preflight(origin, method, asked.map(|v| &v[..])) {
                Ok(()) => {
                    cx.cors_origin = Some(origin.clone());
                    Flow::Respond(preflight_reply(policy, asked))
                }
                Err(why) => Flow::Respond(refused(why)),
            };
        }
        if policy.allows_origin(origin) {
            cx.cors_origin = Some(origin.clone());
        }
        Flow::Continue
    }

    fn on_response(&self, resp: &mut ResponseHead, cx: &mut Cx) {
        self.strip.apply(&mut resp.headers);
        let Some(policy) = self.policy(cx) else { return };
        // The gateway owns CORS on this route: an upstream's own answer is replaced.
        resp.headers
            .retain(|h| ![ACAO, ACAC, ACEH].iter().any(|n| h.name.eq_ignore_ascii_case(n.as_bytes())));
        if !policy.wildcard {
            resp.headers.append("vary", "Origin");
        }
        let Some(origin) = &cx.cors_origin else { return };
        if policy.wildcard {
            resp.headers.append(ACAO, "*");
        } else {
            resp.headers.append(ACAO, origin.clone());
        }
        if policy.credentials() {
            resp.headers.append(ACAC, "true");
        }
        if let Some(e) = &policy.expose {
            resp.headers.append(ACEH, e.clone());
        }
    }
}
