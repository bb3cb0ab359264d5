//! What each admin endpoint does.
//!
//! Owns: the endpoint table, bearer-token checks, and the JSON shapes of the answers. Must not:
//! apply or drain anything itself (it asks the supervisor through its handle).

use std::time::Duration;

use portcullis_core::config::redacted_json;
use portcullis_core::runtime::SupervisorHandle;
use portcullis_core::telemetry::{Telemetry, render};
use serde_json::json;

use super::http::{Request, Response};

/// What the handlers need.
pub struct Ctx {
    /// The control loop and shared status.
    pub handle: SupervisorHandle,
    /// Metrics and access log counters.
    pub telemetry: Telemetry,
}

/// Constant-time comparison (the token must not leak through timing).
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn authorized(ctx: &Ctx, req: &Request) -> bool {
    let running = ctx.handle.status.running();
    let Some(token) = running.config.admin.as_ref().and_then(|a| a.token.as_deref()) else {
        return true;
    };
    let given = req.authorization.as_deref().and_then(|v| v.strip_prefix("Bearer ")).unwrap_or("");
    same(given.trim().as_bytes(), token.as_bytes())
}

/// Answers one request.
pub fn handle(ctx: &Ctx, req: &Request) -> Response {
    let open = matches!(req.path.as_str(), "/healthz" | "/readyz");
    if !open && !authorized(ctx, req) {
        let mut r = Response::error(401, "unauthorized", "a valid bearer token is required");
        r.headers.push("WWW-Authenticate: Bearer realm=\"portcullis-admin\"".to_owned());
        return r;
    }
    match (req.method.as_str(), req.path.as_str()) {
        ("GET" | "HEAD", "/healthz") => Response::json(200, &json!({"status": "ok"})),
        ("GET" | "HEAD", "/readyz") => readyz(ctx),
        ("GET", "/metrics") => {
            let status = &ctx.handle.status;
            let t = &ctx.telemetry;
            let text = render(&t.metrics.snapshot(), status, t.log.stats(), t.spans.stats());
            Response {
                status: 200,
                content_type: "text/plain; version=0.0.4",
                headers: Vec::new(),
                body: text.into_bytes(),
            }
        }
        ("GET", "/config") => get_config(ctx),
        ("POST" | "PUT", "/config") => post_config(ctx, req),
        ("GET", "/routes") => routes(ctx),
        ("POST", "/drain") => {
            if ctx.handle.drain() {
                Response::json(202, &json!({"draining": true}))
            } else {
                Response::error(503, "stopping", "the gateway is already stopping")
            }
        }
        (_, "/healthz" | "/readyz" | "/metrics" | "/config" | "/routes" | "/drain") => {
            Response::error(405, "method_not_allowed", "method not allowed on this endpoint")
        }
        _ => Response::error(404, "not_found", "no such admin endpoint"),
    }
}

fn readyz(ctx: &Ctx) -> Response {
    let s = &ctx.handle.status;
    let generation = s.running().generation;
    let shards_ready =
        s.shards().iter().filter(|g| g.ready.load(std::sync::atomic::Ordering::Relaxed)).count();
    let body = json!({
        "ready": s.ready(),
        "draining": s.draining(),
        "generation": generation,
        "shards": s.shards().len(),
        "shards_ready": shards_ready,
    });
    Response::json(if s.ready() { 200 } else { 503 }, &body)
}

fn get_config(ctx: &Ctx) -> Response {
    let running = ctx.handle.status.running();
    let config = running.text.as_deref().and_then(redacted_json);
    let last = ctx.handle.status.last_reload();
    Response::json(
        200,
        &json!({
            "generation": running.generation,
            "source": &*running.source,
            "config": config,
            "last_reload": last.map(|r| json!({"ok": r.ok, "at": r.at_unix, "errors": r.errors})),
        }),
    )
}

fn post_config(ctx: &Ctx, req: &Request) -> Response {
    let Ok(text) = String::from_utf8(req.body.clone()) else {
        return Response::error(400, "bad_request", "the config must be UTF-8 TOML");
    };
    match ctx.handle.apply(text, Duration::from_secs(60)) {
        Ok(Ok(generation)) => Response::json(200, &json!({"applied": true, "generation": generation})),
        Ok(Err(errors)) => {
            let list: Vec<_> = errors
                .0
                .iter()
                .map(|e| json!({"path": e.path, "line": e.line, "message": e.message, "text": e.to_string()}))
                .collect();
            Response::json(422, &json!({"applied": false, "errors": list}))
        }
        Err(why) => Response::error(503, "unavailable", &why),
    }
}

fn routes(ctx: &Ctx) -> Response {
    let running = ctx.handle.status.running();
    let cfg = &running.config;
    let list: Vec<_> = cfg
        .routes
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let up = cfg.upstreams.iter().find(|u| u.name == r.upstream);
            let endpoints: Vec<&str> =
                up.map(|u| u.endpoints.iter().map(|e| e.address()).collect()).unwrap_or_default();
            let weights: Vec<u32> =
                up.map(|u| u.endpoints.iter().map(|e| e.weight()).collect()).unwrap_or_default();
            json!({
                "name": r.display_name(i),
                "hosts": r.hosts,
                "path": r.path,
                "prefix": r.prefix,
                "methods": r.methods,
                "priority": r.priority,
                "upstream": r.upstream,
                "endpoints": endpoints,
                "weights": weights,
                "timeout_ms": r.timeout.0.as_millis() as u64,
            })
        })
        .collect();
    Response::json(200, &json!({"generation": running.generation, "routes": list}))
}
