use std::cell::RefCell;
use std::rc::Rc;

use portcullis_core::LocalReply;
use portcullis_core::config::{Config, ForwardedMode, RouteConfig};
use portcullis_core::pipeline::{Cx, Filter, Flow, RequestHead, ResponseHead};

use super::AnyFilter;
use super::filter::{run_log, run_request, run_response};
use crate::error::BuildError;
use crate::testutil::{block_on, cx, request, response, values};
use crate::transform::tests::{ops, route};
use crate::{Chain, ChainEnv};

/// A test filter that records its phases and may answer early.
struct Probe {
    name: &'static str,
    respond: bool,
    log: Rc<RefCell<Vec<String>>>,
}

impl Filter for Probe {
    async fn on_request(&self, _req: &mut RequestHead, cx: &mut Cx) -> Flow {
        self.log.borrow_mut().push(format!("req:{}:{}", self.name, cx.entered));
        if self.respond { Flow::Respond(LocalReply::route_not_found()) } else { Flow::Continue }
    }

    fn on_response(&self, _resp: &mut ResponseHead, _cx: &mut Cx) {
        self.log.borrow_mut().push(format!("resp:{}", self.name));
    }

    fn on_log(&self, _cx: &Cx) {
        self.log.borrow_mut().push(format!("log:{}", self.name));
    }
}

fn probes(respond_at: Option<usize>) -> (Vec<Probe>, Rc<RefCell<Vec<String>>>) {
    let log = Rc::new(RefCell::new(Vec::new()));
    let names = ["a", "b", "c", "d"];
    let list = names
        .iter()
        .enumerate()
        .map(|(i, name)| Probe { name, respond: respond_at == Some(i), log: Rc::clone(&log) })
        .collect();
    (list, log)
}

/// Runs all three phases like the engine does and returns the recorded events.
fn drive(filters: &[Probe], log: &Rc<RefCell<Vec<String>>>) -> (bool, usize, Vec<String>) {
    let mut req = request("/", None, &[]);
    let mut c = cx("10.0.0.1:1");
    let responded = matches!(block_on(run_request(filters, &mut req, &mut c)), Flow::Respond(_));
    let mut resp = response();
    run_response(filters, &mut resp, &mut c);
    run_log(filters, &c);
    (responded, c.entered, log.take())
}

#[test]
fn all_continue_runs_every_phase_in_order() {
    let (filters, log) = probes(None);
    let (responded, entered, events) = drive(&filters, &log);
    assert!(!responded);
    assert_eq!(entered, 4);
    assert_eq!(
        events,
        vec![
            "req:a:1", "req:b:2", "req:c:3", "req:d:4", "resp:d", "resp:c", "resp:b", "resp:a", "log:a",
            "log:b", "log:c", "log:d",
        ]
    );
}

#[test]
fn short_circuit_skips_later_requests_but_unwinds_entered() {
    let (filters, log) = probes(Some(1));
    let (responded, entered, events) = drive(&filters, &log);
    assert!(responded);
    assert_eq!(entered, 2, "the responding filter counts as entered");
    assert_eq!(events, vec!["req:a:1", "req:b:2", "resp:b", "resp:a", "log:a", "log:b", "log:c", "log:d"]);
}

#[test]
fn short_circuit_at_first_filter() {
    let (filters, log) = probes(Some(0));
    let (_, entered, events) = drive(&filters, &log);
    assert_eq!(entered, 1);
    assert_eq!(events, vec!["req:a:1", "resp:a", "log:a", "log:b", "log:c", "log:d"]);
}

#[test]
fn nothing_entered_means_no_response_phase() {
    // A reply the engine made before the chain ran (e.g. 431) still gets logged by every filter.
    let (filters, log) = probes(None);
    let mut c = cx("10.0.0.1:1");
    let mut resp = response();
    run_response(&filters, &mut resp, &mut c);
    run_log(&filters, &c);
    assert_eq!(log.take(), vec!["log:a", "log:b", "log:c", "log:d"]);
}

#[test]
fn entered_beyond_len_is_clamped() {
    let (filters, log) = probes(None);
    let mut c = cx("10.0.0.1:1");
    c.entered = 99;
    run_response(&filters, &mut response(), &mut c);
    assert_eq!(log.take().len(), 4);
}

#[test]
fn build_order_without_transform() {
    let chain = Chain::build(&Config::default(), &ChainEnv::new()).expect("default config builds");
    let kinds: Vec<_> = chain.filters().iter().map(kind).collect();
    assert_eq!(kinds, vec!["observe", "request_id", "forwarded"]);
    let mut cfg = Config::default();
    cfg.routes.push(route(Some("/api"), None));
    assert_eq!(
        Chain::build(&cfg, &ChainEnv::new()).expect("builds").len(),
        3,
        "routes without edits need no transform"
    );
}

#[test]
fn build_order_with_transform() {
    let mut cfg = Config::default();
    cfg.routes.push(route(Some("/api"), Some("/v1")));
    let chain = Chain::build(&cfg, &ChainEnv::new()).expect("builds");
    let kinds: Vec<_> = chain.filters().iter().map(kind).collect();
    assert_eq!(kinds, vec!["observe", "request_id", "forwarded", "transform"]);
    cfg.routes[0].require_client_cert = true;
    let chain = Chain::build(&cfg, &ChainEnv::new()).expect("builds");
    let kinds: Vec<_> = chain.filters().iter().map(kind).collect();
    assert_eq!(kinds, vec!["observe", "request_id", "forwarded", "mtls", "transform"]);
}

fn kind(f: &AnyFilter) -> &'static str {
    f.name()
}

#[test]
fn build_errors_propagate() {
    let mut cfg = Config::default();
    cfg.forwarded.trusted_proxies.push("not-a-cidr".to_owned());
    assert!(matches!(Chain::build(&cfg, &ChainEnv::new()), Err(BuildError::TrustedProxy { .. })));

    let mut cfg = Config::default();
    cfg.request_id.header = String::new();
    assert!(matches!(Chain::build(&cfg, &ChainEnv::new()), Err(BuildError::HeaderName { .. })));

    let mut cfg = Config::default();
    cfg.routes.push(route(None, Some("/v1")));
    let err = Chain::build(&cfg, &ChainEnv::new()).expect_err("rewrite without prefix");
    assert_eq!(err.to_string(), "routes[0].rewrite_prefix: rewrite_prefix needs a `prefix` route");
}

fn full_config() -> Config {
    let mut cfg = Config::default();
    cfg.forwarded.mode = ForwardedMode::XForwarded;
    cfg.forwarded.trusted_proxies = vec!["10.0.0.0/8".to_owned()];
    let mut r: RouteConfig = route(Some("/api"), Some("/"));
    r.request_headers = ops(&["cookie"], &[("x-gateway", "portcullis")], &[]);
    r.response_headers = ops(&["server"], &[], &[]);
    cfg.routes.push(r);
    cfg
}

#[test]
fn whole_chain_end_to_end() {
    let chain = Chain::build(&full_config(), &ChainEnv::new()).expect("builds");
    let mut req = request(
        "/api/users",
        Some("api.example.com"),
        &[("X-Forwarded-For", "6.6.6.6"), ("Cookie", "s=1"), ("X-Request-Id", "req-42")],
    );
    let mut c = cx("203.0.113.7:1000");
    c.route = Some(0);
    assert!(matches!(block_on(chain.on_request(&mut req, &mut c)), Flow::Continue));
    assert_eq!(c.entered, 4);
    assert_eq!(&c.request_id[..], b"req-42");
    assert_eq!(c.client_ip.to_string(), "203.0.113.7");
    assert_eq!(&req.path[..], b"/users");
    assert_eq!(values(&req.headers, "x-forwarded-for"), vec!["203.0.113.7"]);
    assert_eq!(values(&req.headers, "x-gateway"), vec!["portcullis"]);
    assert!(!req.headers.contains("cookie"));

    let mut resp = response();
    resp.headers.append("Server", "upstream");
    chain.on_response(&mut resp, &mut c);
    assert_eq!(values(&resp.headers, "x-request-id"), vec!["req-42"]);
    assert!(!resp.headers.contains("server"));
    chain.on_log(&c);
}

#[test]
fn local_reply_after_partial_chain_still_echoes_id() {
    // The engine answers (e.g. 404) after the chain set `entered`; the id filter still echoes.
    let chain = Chain::build(&Config::default(), &ChainEnv::new()).expect("builds");
    let mut req = request("/", None, &[]);
    let mut c = cx("203.0.113.7:1000");
    block_on(chain.on_request(&mut req, &mut c));
    c.entered = 2;
    let mut resp = ResponseHead::new(404);
    chain.on_response(&mut resp, &mut c);
    assert_eq!(resp.headers.get("x-request-id"), Some(&c.request_id));
    assert_eq!(c.request_id.len(), 32);
}

#[test]
fn build_order_with_auth() {
    let mut cfg = Config::default();
    cfg.auth.api_keys = Some(portcullis_core::config::ApiKeysConfig {
        from: vec![portcullis_core::config::TokenSource {
            header: Some("x-api-key".to_owned()),
            ..Default::default()
        }],
        keys: vec![portcullis_core::config::ApiKeyEntry {
            sha256: "a".repeat(64),
            consumer: "c".to_owned(),
            tier: None,
            scopes: vec![],
            roles: vec![],
        }],
        keys_file: None,
        watch_interval: portcullis_core::config::Dur::secs(1),
    });
    let mut r = route(Some("/api"), Some("/v1"));
    r.authz.scopes = vec!["read".to_owned()];
    cfg.routes.push(r);
    let chain = Chain::build(&cfg, &ChainEnv::new()).expect("builds");
    let kinds: Vec<_> = chain.filters().iter().map(kind).collect();
    assert_eq!(kinds, vec!["observe", "request_id", "forwarded", "authn", "authz", "transform"]);
}
