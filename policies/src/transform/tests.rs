use portcullis_core::config::{Dur, HeaderOps, RouteConfig};
use portcullis_core::pipeline::{Filter, ResponseHead};

use super::TransformFilter;
use crate::error::BuildError;
use crate::testutil::{block_on, cx, request, response, values};

pub(crate) fn route(prefix: Option<&str>, rewrite: Option<&str>) -> RouteConfig {
    RouteConfig {
        name: None,
        hosts: Vec::new(),
        path: None,
        prefix: prefix.map(str::to_owned),
        methods: Vec::new(),
        headers: Vec::new(),
        priority: 0,
        upstream: "backend".to_owned(),
        timeout: Dur::secs(30),
        try_timeout: None,
        max_body_bytes: None,
        retry: Default::default(),
        rewrite_prefix: rewrite.map(str::to_owned),
        request_headers: HeaderOps::default(),
        response_headers: HeaderOps::default(),
        auth: None,
        authz: Default::default(),
        rate_limits: Vec::new(),
        require_client_cert: false,
        cors: None,
    }
}

pub(crate) fn ops(remove: &[&str], set: &[(&str, &str)], add: &[(&str, &str)]) -> HeaderOps {
    HeaderOps {
        remove: remove.iter().map(|s| (*s).to_owned()).collect(),
        set: set.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        add: add.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
    }
}

fn build(routes: &[RouteConfig]) -> TransformFilter {
    TransformFilter::build(routes).expect("valid routes")
}

#[test]
fn rewrites_path_of_matched_route_only() {
    let f = build(&[route(Some("/api"), Some("/v1")), route(Some("/other"), None)]);
    let mut req = request("/api/users", None, &[]);
    let mut c = cx("10.0.0.1:1");
    c.route = Some(0);
    block_on(f.on_request(&mut req, &mut c));
    assert_eq!(&req.path[..], b"/v1/users");

    let mut req = request("/api/users", None, &[]);
    let mut c = cx("10.0.0.1:1");
    c.route = Some(1);
    block_on(f.on_request(&mut req, &mut c));
    assert_eq!(&req.path[..], b"/api/users", "route 1 has no rewrite");
}

#[test]
fn rewrite_keeps_query() {
    let f = build(&[route(Some("/api"), Some("/"))]);
    let mut req = request("/api", None, &[]);
    req.query = Some(bytes::Bytes::from_static(b"a=1"));
    let mut c = cx("10.0.0.1:1");
    c.route = Some(0);
    block_on(f.on_request(&mut req, &mut c));
    assert_eq!(&req.path[..], b"/");
    assert_eq!(req.query.as_deref(), Some(&b"a=1"[..]));
}

#[test]
fn no_route_does_nothing() {
    let mut r = route(Some("/api"), Some("/v1"));
    r.request_headers = ops(&["accept"], &[("x-a", "1")], &[]);
    r.response_headers = ops(&[], &[("x-b", "1")], &[]);
    let f = build(&[r]);
    let mut req = request("/api/x", None, &[("Accept", "*/*")]);
    let mut c = cx("10.0.0.1:1");
    block_on(f.on_request(&mut req, &mut c));
    assert_eq!(&req.path[..], b"/api/x");
    assert_eq!(req.headers.len(), 1);
    let mut resp = response();
    f.on_response(&mut resp, &mut c);
    assert!(resp.headers.is_empty());

    // An index past the end (a stale config) is ignored too.
    c.route = Some(7);
    block_on(f.on_request(&mut req, &mut c));
    assert_eq!(&req.path[..], b"/api/x");
}

#[test]
fn request_ops_in_order_remove_set_add() {
    let mut r = route(Some("/"), None);
    // `x-env` is removed, then set, then added to: remove runs first so set survives.
    r.request_headers = ops(
        &["X-Env", "Cookie"],
        &[("X-Env", "prod"), ("X-Tenant", "acme")],
        &[("X-Env", "extra"), ("Via", "portcullis")],
    );
    let f = build(&[r]);
    let mut req = request(
        "/",
        None,
        &[("x-env", "dev"), ("cookie", "s=1"), ("COOKIE", "t=2"), ("x-tenant", "old"), ("via", "1.1 lb")],
    );
    let mut c = cx("10.0.0.1:1");
    c.route = Some(0);
    block_on(f.on_request(&mut req, &mut c));
    assert_eq!(values(&req.headers, "x-env"), vec!["prod", "extra"]);
    assert_eq!(values(&req.headers, "x-tenant"), vec!["acme"]);
    assert_eq!(values(&req.headers, "via"), vec!["1.1 lb", "portcullis"]);
    assert!(!req.headers.contains("cookie"));
}

#[test]
fn response_ops_apply_in_response_phase() {
    let mut r = route(Some("/"), None);
    r.response_headers = ops(&["server"], &[("cache-control", "no-store")], &[("x-served-by", "gw")]);
    let f = build(&[r]);
    let mut req = request("/", None, &[]);
    let mut c = cx("10.0.0.1:1");
    c.route = Some(0);
    block_on(f.on_request(&mut req, &mut c));
    assert!(req.headers.is_empty(), "response ops do not touch the request");
    let mut resp = ResponseHead::new(200);
    resp.headers.append("Server", "nginx");
    resp.headers.append("Cache-Control", "max-age=60");
    f.on_response(&mut resp, &mut c);
    assert!(!resp.headers.contains("server"));
    assert_eq!(values(&resp.headers, "cache-control"), vec!["no-store"]);
    assert_eq!(values(&resp.headers, "x-served-by"), vec!["gw"]);
}

#[test]
fn is_needed_only_with_edits() {
    assert!(!TransformFilter::is_needed(&[route(Some("/a"), None), route(None, None)]));
    assert!(TransformFilter::is_needed(&[route(Some("/a"), Some("/b"))]));
    let mut r = route(None, None);
    r.response_headers = ops(&["server"], &[], &[]);
    assert!(TransformFilter::is_needed(&[r]));
}

#[test]
fn build_errors_name_the_route() {
    let mut exact = route(None, Some("/v1"));
    exact.path = Some("/health".to_owned());
    match TransformFilter::build(&[route(None, None), exact]) {
        Err(BuildError::Rewrite { path, .. }) => assert_eq!(path, "routes[1].rewrite_prefix"),
        other => panic!("expected a Rewrite error, got {other:?}"),
    }

    let mut r = route(Some("/"), None);
    r.request_headers = ops(&[], &[("X-Bad", "a\r\nInjected: yes")], &[]);
    match TransformFilter::build(&[r]) {
        Err(BuildError::HeaderValue { path, .. }) => assert_eq!(path, "routes[0].request_headers.set.X-Bad"),
        other => panic!("expected a HeaderValue error, got {other:?}"),
    }

    let mut r = route(Some("/"), None);
    r.response_headers = ops(&[], &[], &[("Transfer-Encoding", "chunked")]);
    assert!(matches!(TransformFilter::build(&[r]), Err(BuildError::ReservedHeader { .. })));

    let mut r = route(Some("/"), None);
    r.request_headers = ops(&["bad name"], &[], &[]);
    assert!(matches!(TransformFilter::build(&[r]), Err(BuildError::HeaderName { .. })));
}
