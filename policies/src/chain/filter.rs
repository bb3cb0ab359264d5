//! `AnyFilter` (match dispatch, no boxing) and `Chain` (ordered phases with local-reply
//! semantics), plus `Chain::build` from a config snapshot.
//!
//! Owns: phase ordering. Must not: inspect requests (that is each filter's job).

use portcullis_core::config::Config;
use portcullis_core::pipeline::{Cx, Filter, Flow, RequestHead, ResponseHead};

use super::env::ChainEnv;
use crate::authn::AuthnFilter;
use crate::authz::AuthzFilter;
use crate::cors::CorsFilter;
use crate::error::BuildError;
use crate::forwarded::ForwardedFilter;
use crate::mtls::MtlsFilter;
use crate::observe::ObserveFilter;
use crate::ratelimit::RateLimitFilter;
use crate::request_id::RequestIdFilter;
use crate::transform::TransformFilter;

/// Every concrete filter, dispatched by `match` so no future is boxed.
#[derive(Debug)]
pub enum AnyFilter {
    /// Trace context, metrics and access log (always first, so every request is observed).
    Observe(ObserveFilter),
    /// `[request_id]`.
    RequestId(RequestIdFilter),
    /// `[forwarded]`.
    Forwarded(ForwardedFilter),
    /// `[cors]` / route `cors` (preflights, `Access-Control-*`) and `[response] strip_headers`.
    Cors(CorsFilter),
    /// `[auth]`: credentials, identity hand-off.
    Authn(Box<AuthnFilter>),
    /// Per-route `authz`.
    Authz(AuthzFilter),
    /// `[ratelimit]` limits of the matched route.
    RateLimit(RateLimitFilter),
    /// Client certificate requirement and identity headers (mTLS).
    Mtls(MtlsFilter),
    /// Per-route rewrite and header edits.
    Transform(TransformFilter),
}

impl AnyFilter {
    /// The filter's name, as logs and tests refer to it.
    pub fn name(&self) -> &'static str {
        match self {
            AnyFilter::Observe(_) => "observe",
            AnyFilter::RequestId(_) => "request_id",
            AnyFilter::Forwarded(_) => "forwarded",
            AnyFilter::Cors(_) => "cors",
            AnyFilter::Mtls(_) => "mtls",
            AnyFilter::Authn(_) => "authn",
            AnyFilter::Authz(_) => "authz",
            AnyFilter::RateLimit(_) => "ratelimit",
            AnyFilter::Transform(_) => "transform",
        }
    }
}

impl Filter for AnyFilter {
    async fn on_request(&self, req: &mut RequestHead, cx: &mut Cx) -> Flow {
        match self {
            AnyFilter::Observe(f) => f.on_request(req, cx).await,
            AnyFilter::RequestId(f) => f.on_request(req, cx).await,
            AnyFilter::Forwarded(f) => f.on_request(req, cx).await,
            AnyFilter::Cors(f) => f.on_request(req, cx).await,
            AnyFilter::Authn(f) => f.on_request(req, cx).await,
            AnyFilter::Authz(f) => f.on_request(req, cx).await,
            AnyFilter::RateLimit(f) => f.on_request(req, cx).await,
            AnyFilter::Mtls(f) => f.on_request(req, cx).await,
            AnyFilter::Transform(f) => f.on_request(req, cx).await,
        }
    }

    fn on_response(&self, resp: &mut ResponseHead, cx: &mut Cx) {
        match self {
            AnyFilter::Observe(f) => f.on_response(resp, cx),
            AnyFilter::RequestId(f) => f.on_response(resp, cx),
            AnyFilter::Forwarded(f) => f.on_response(resp, cx),
            AnyFilter::Cors(f) => f.on_response(resp, cx),
            AnyFilter::Authn(f) => f.on_response(resp, cx),
            AnyFilter::Authz(f) => f.on_response(resp, cx),
            AnyFilter::RateLimit(f) => f.on_response(resp, cx),
            AnyFilter::Mtls(f) => f.on_response(resp, cx),
            AnyFilter::Transform(f) => f.on_response(resp, cx),
        }
    }

    fn on_log(&self, cx: &Cx) {
        match self {
            AnyFilter::Observe(f) => f.on_log(cx),
            AnyFilter::RequestId(f) => f.on_log(cx),
            AnyFilter::Forwarded(f) => f.on_log(cx),
            AnyFilter::Cors(f) => f.on_log(cx),
            AnyFilter::Authn(f) => f.on_log(cx),
            AnyFilter::Authz(f) => f.on_log(cx),
            AnyFilter::RateLimit(f) => f.on_log(cx),
            AnyFilter::Mtls(f) => f.on_log(cx),
            AnyFilter::Transform(f) => f.on_log(cx),
        }
    }

    fn on_tick(&self) {
        // Only the observe filter keeps anything to hand over.
        if let AnyFilter::Observe(f) = self {
            f.on_tick();
        }
    }
}

/// The ordered filters of one shard for one config generation.
#[derive(Debug, Default)]
pub struct Chain {
    filters: Vec<AnyFilter>,
}

impl Chain {
    /// Builds the chain for `cfg`: observe (trace context, metrics, access log), request id,
    /// forwarding headers, CORS and response-header stripping (when configured; before
    /// authentication, so preflights need no credential and error replies get CORS headers), mTLS (when a listener asks for
    /// client certificates or a route requires one), authentication (when `[auth]` configures
    /// credentials), authorisation (when some route has `authz`), rate limits (when some route
    /// has limits; after authentication, so they can key on the consumer), then transform (when
    /// some route has a rewrite or header edits). Process-wide services come from `env`.
    pub fn build(cfg: &Config, env: &ChainEnv) -> Result<Chain, BuildError> {
        let mut filters = Vec::with_capacity(6);
        filters.push(AnyFilter::Observe(ObserveFilter::build(cfg, env.telemetry.as_ref(), env.shard)));
        filters.push(AnyFilter::RequestId(RequestIdFilter::build(&cfg.request_id)?));
        filters.push(AnyFilter::Forwarded(ForwardedFilter::build(&cfg.forwarded)?));
        if CorsFilter::is_needed(cfg) {
            filters.push(AnyFilter::Cors(CorsFilter::build(cfg)));
        }
        if MtlsFilter::is_needed(cfg) {
            filters.push(AnyFilter::Mtls(MtlsFilter::build(cfg)));
        }
        if let Some(f) = AuthnFilter::build(cfg, env)? {
            filters.push(AnyFilter::Authn(Box::new(f)));
        }
        if let Some(f) = AuthzFilter::build(cfg, env) {
            filters.push(AnyFilter::Authz(f));
        }
        if RateLimitFilter::is_needed(cfg) {
            filters.push(AnyFilter::RateLimit(RateLimitFilter::build(cfg, env)));
        }
        if TransformFilter::is_needed(&cfg.routes) {
            filters.push(AnyFilter::Transform(TransformFilter::build(&cfg.routes)?));
        }
        Ok(Chain { filters })
    }

    /// A chain of exactly these filters, in this order.
    pub fn new(filters: Vec<AnyFilter>) -> Chain {
        Chain { filters }
    }

    /// The filters in request order.
    pub fn filters(&self) -> &[AnyFilter] {
        &self.filters
    }

    /// Number of filters.
    pub fn len(&self) -> usize {
        self.filters.len()
    }

    /// True for the empty chain.
    pub fn is_empty(&self) -> bool {
        self.filters.is_empty()
    }
}

impl Filter for Chain {
    async fn on_request(&self, req: &mut RequestHead, cx: &mut Cx) -> Flow {
        run_request(&self.filters, req, cx).await
    }

    fn on_response(&self, resp: &mut ResponseHead, cx: &mut Cx) {
        run_response(&self.filters, resp, cx);
    }

    fn on_log(&self, cx: &Cx) {
        run_log(&self.filters, cx);
    }

    fn on_tick(&self) {
        for f in &self.filters {
            f.on_tick();
        }
    }
}

/// Request phases in order; `cx.entered` is set to `i + 1` before filter `i` runs, and the first
/// `Flow::Respond` ends the walk.
pub(crate) async fn run_request<F: Filter>(filters: &[F], req: &mut RequestHead, cx: &mut Cx) -> Flow {
    for (i, f) in filters.iter().enumerate() {
        cx.entered = i + 1;
        if let Flow::Respond(reply) = f.on_request(req, cx).await {
            return Flow::Respond(reply);
        }
    }
    Flow::Continue
}

/// Response phases of the entered filters, last entered first.
pub(crate) fn run_response<F: Filter>(filters: &[F], resp: &mut ResponseHead, cx: &mut Cx) {
    let entered = cx.entered.min(filters.len());
    for f in filters[..entered].iter().rev() {
        f.on_response(resp, cx);
    }
}

/// Log phases of every filter, in order.
pub(crate) fn run_log<F: Filter>(filters: &[F], cx: &Cx) {
    for f in filters {
        f.on_log(cx);
    }
}
