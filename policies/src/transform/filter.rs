//! `TransformFilter`: every route's edits compiled once, applied by route index per request.
//!
//! Owns: header-op compilation and application (remove, then set, then add). Must not: allocate
//! header names or values per request (they are `Bytes` built here and cloned by refcount).

use bytes::Bytes;
use portcullis_core::config::{HeaderOps, RouteConfig};
use portcullis_core::pipeline::{Cx, Filter, Flow, Headers, RequestHead, ResponseHead};

use super::rewrite::Rewrite;
use crate::error::BuildError;
use crate::header_rules;

/// One side's header edits, ready to apply.
#[derive(Debug, Default)]
struct CompiledOps {
    remove: Vec<String>,
    set: Vec<(Bytes, Bytes)>,
    add: Vec<(Bytes, Bytes)>,
}

impl CompiledOps {
    fn compile(ops: &HeaderOps, at: &str) -> Result<CompiledOps, BuildError> {
        let mut out = CompiledOps::default();
        for (i, name) in ops.remove.iter().enumerate() {
            header_rules::editable_header_name(|| format!("{at}.remove[{i}]"), name)?;
            out.remove.push(name.to_ascii_lowercase());
        }
        for (kind, map, dst) in [("set", &ops.set, &mut out.set), ("add", &ops.add, &mut out.add)] {
            for (name, value) in map {
                let path = || format!("{at}.{kind}.{name}");
                let n = header_rules::editable_header_name(path, name)?;
                let v = header_rules::header_value(path, name, value)?;
                dst.push((n, v));
            }
        }
        Ok(out)
    }

    fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.set.is_empty() && self.add.is_empty()
    }

    fn apply(&self, headers: &mut Headers) {
        if !self.remove.is_empty() {
            headers.retain(|h| !self.remove.iter().any(|r| h.name.eq_ignore_ascii_case(r.as_bytes())));
        }
        for (name, value) in &self.set {
            headers.set(name.clone(), value.clone());
        }
        for (name, value) in &self.add {
            headers.append(name.clone(), value.clone());
        }
    }
}

/// Everything one route changes.
#[derive(Debug)]
struct RouteTransform {
    rewrite: Option<Rewrite>,
    request: CompiledOps,
    response: CompiledOps,
}

/// Applies each route's prefix rewrite and header edits (`[[routes]]`).
#[derive(Debug)]
pub struct TransformFilter {
    /// Indexed like `cfg.routes`; `None` for routes with nothing to do.
    routes: Vec<Option<RouteTransform>>,
}

impl TransformFilter {
    /// True when any route has header edits or a prefix rewrite (else the filter is left out).
    pub fn is_needed(routes: &[RouteConfig]) -> bool {
        routes.iter().any(|r| {
            r.rewrite_prefix.is_some() || !r.request_headers.is_empty() || !r.response_headers.is_empty()
        })
    }

    /// Compiles every route's edits; errors name the route's config path.
    pub fn build(routes: &[RouteConfig]) -> Result<TransformFilter, BuildError> {
        let compiled =
            routes.iter().enumerate().map(|(i, r)| compile_route(i, r)).collect::<Result<_, _>>()?;
        Ok(TransformFilter { routes: compiled })
    }

    fn route(&self, cx: &Cx) -> Option<&RouteTransform> {
        self.routes.get(cx.route?)?.as_ref()
    }
}

fn compile_route(i: usize, r: &RouteConfig) -> Result<Option<RouteTransform>, BuildError> {
    let rewrite = match (&r.rewrite_prefix, &r.prefix) {
        (None, _) => None,
        (Some(to), Some(prefix)) => {
            Some(Rewrite::compile(prefix, to, || format!("routes[{i}].rewrite_prefix"))?)
        }
        (Some(_), None) => {
            return Err(BuildError::Rewrite {
                path: format!("routes[{i}].rewrite_prefix"),
                reason: "rewrite_prefix needs a `prefix` route",
            });
        }
    };
    let request = CompiledOps::compile(&r.request_headers, &format!("routes[{i}].request_headers"))?;
    let response = CompiledOps::compile(&r.response_headers, &format!("routes[{i}].response_headers"))?;
    if rewrite.is_none() && request.is_empty() && response.is_empty() {
        return Ok(None);
    }
    Ok(Some(RouteTransform { rewrite, request, response }))
}

impl Filter for TransformFilter {
    async fn on_request(&self, req: &mut RequestHead, cx: &mut Cx) -> Flow {
        if let Some(t) = self.route(cx) {
            if let Some(path) = t.rewrite.as_ref().and_then(|rw| rw.apply(&req.path)) {
                req.path = path;
            }
            t.request.apply(&mut req.headers);
        }
        Flow::Continue
    }

    fn on_response(&self, resp: &mut ResponseHead, cx: &mut Cx) {
        if let Some(t) = self.route(cx) {
            t.response.apply(&mut resp.headers);
        }
    }
}
