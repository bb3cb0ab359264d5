use bytes::Bytes;
use portcullis_core::config::RequestIdConfig;
use portcullis_core::pipeline::{Filter, Flow};

use super::RequestIdFilter;
use crate::error::BuildError;
use crate::testutil::{block_on, cx, request, response, values};

fn cfg() -> RequestIdConfig {
    RequestIdConfig::default()
}

fn filter(cfg: &RequestIdConfig) -> RequestIdFilter {
    RequestIdFilter::build(cfg).expect("valid config")
}

fn is_generated(id: &[u8]) -> bool {
    id.len() == 32 && id.iter().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
}

#[test]
fn keeps_valid_incoming_id() {
    let f = filter(&cfg());
    let mut req = request("/", None, &[("X-Request-Id", "abc-123_XYZ")]);
    let mut cx = cx("10.0.0.1:5000");
    assert!(matches!(block_on(f.on_request(&mut req, &mut cx)), Flow::Continue));
    assert_eq!(cx.request_id, Bytes::from_static(b"abc-123_XYZ"));
    assert_eq!(values(&req.headers, "x-request-id"), vec!["abc-123_XYZ"]);
}

#[test]
fn generates_when_absent() {
    let f = filter(&cfg());
    let mut req = request("/", None, &[]);
    let mut cx = cx("10.0.0.1:5000");
    block_on(f.on_request(&mut req, &mut cx));
    assert!(is_generated(&cx.request_id), "{:?}", cx.request_id);
    assert_eq!(req.headers.get("x-request-id"), Some(&cx.request_id));
}

#[test]
fn replaces_too_long_id() {
    let mut c = cfg();
    c.max_length = 8;
    let f = filter(&c);
    let mut req = request("/", None, &[("x-request-id", "123456789")]);
    let mut cx = cx("10.0.0.1:5000");
    block_on(f.on_request(&mut req, &mut cx));
    assert!(is_generated(&cx.request_id));
    assert_eq!(values(&req.headers, "x-request-id"), vec![String::from_utf8_lossy(&cx.request_id)]);

    // Exactly max_length is accepted.
    let mut req = request("/", None, &[("x-request-id", "12345678")]);
    let mut cx2 = crate::testutil::cx("10.0.0.1:5000");
    block_on(f.on_request(&mut req, &mut cx2));
    assert_eq!(cx2.request_id, Bytes::from_static(b"12345678"));
}

#[test]
fn replaces_ids_with_invalid_bytes() {
    let f = filter(&cfg());
    for bad in ["has space", "tab\there", "", "caf\u{e9}", "del\u{7f}"] {
        let mut req = request("/", None, &[("x-request-id", bad)]);
        let mut cx = cx("10.0.0.1:5000");
        block_on(f.on_request(&mut req, &mut cx));
        assert!(is_generated(&cx.request_id), "{bad:?} should be replaced");
        assert_eq!(values(&req.headers, "x-request-id").len(), 1);
    }
}

#[test]
fn duplicate_ids_collapse_to_the_first() {
    let f = filter(&cfg());
    let mut req = request("/", None, &[("x-request-id", "first"), ("X-Request-ID", "second")]);
    let mut cx = cx("10.0.0.1:5000");
    block_on(f.on_request(&mut req, &mut cx));
    assert_eq!(cx.request_id, Bytes::from_static(b"first"));
    assert_eq!(values(&req.headers, "x-request-id"), vec!["first"]);
}

#[test]
fn custom_header_name() {
    let mut c = cfg();
    c.header = "X-Correlation-Id".to_owned();
    let f = filter(&c);
    let mut req = request("/", None, &[("x-correlation-id", "corr-1"), ("x-request-id", "ignored")]);
    let mut cx = cx("10.0.0.1:5000");
    block_on(f.on_request(&mut req, &mut cx));
    assert_eq!(cx.request_id, Bytes::from_static(b"corr-1"));
    let mut resp = response();
    f.on_response(&mut resp, &mut cx);
    assert_eq!(values(&resp.headers, "x-correlation-id"), vec!["corr-1"]);
    assert!(!resp.headers.contains("x-request-id"));
}

#[test]
fn no_generation_leaves_id_empty() {
    let mut c = cfg();
    c.generate = false;
    let f = filter(&c);
    let mut req = request("/", None, &[]);
    let mut cx = cx("10.0.0.1:5000");
    block_on(f.on_request(&mut req, &mut cx));
    assert!(cx.request_id.is_empty());
    assert!(!req.headers.contains("x-request-id"));
    let mut resp = response();
    f.on_response(&mut resp, &mut cx);
    assert!(!resp.headers.contains("x-request-id"), "nothing to echo");
}

#[test]
fn no_generation_drops_invalid_incoming_id() {
    let mut c = cfg();
    c.generate = false;
    let f = filter(&c);
    let mut req = request("/", None, &[("x-request-id", "bad id")]);
    let mut cx = cx("10.0.0.1:5000");
    block_on(f.on_request(&mut req, &mut cx));
    assert!(cx.request_id.is_empty());
    assert!(!req.headers.contains("x-request-id"));
}

#[test]
fn no_generation_still_keeps_valid_incoming_id() {
    let mut c = cfg();
    c.generate = false;
    let f = filter(&c);
    let mut req = request("/", None, &[("x-request-id", "ok")]);
    let mut cx = cx("10.0.0.1:5000");
    block_on(f.on_request(&mut req, &mut cx));
    assert_eq!(cx.request_id, Bytes::from_static(b"ok"));
}

#[test]
fn echoes_on_response_and_overrides_upstream_value() {
    let f = filter(&cfg());
    let mut req = request("/", None, &[("x-request-id", "abc")]);
    let mut cx = cx("10.0.0.1:5000");
    block_on(f.on_request(&mut req, &mut cx));
    let mut resp = response();
    resp.headers.append("X-Request-Id", "from-upstream");
    f.on_response(&mut resp, &mut cx);
    assert_eq!(values(&resp.headers, "x-request-id"), vec!["abc"]);
}

#[test]
fn echoes_on_local_replies() {
    // A local reply's head goes through the same response phase.
    let f = filter(&cfg());
    let mut req = request("/", None, &[]);
    let mut cx = cx("10.0.0.1:5000");
    block_on(f.on_request(&mut req, &mut cx));
    let mut resp = portcullis_core::pipeline::ResponseHead::new(404);
    f.on_response(&mut resp, &mut cx);
    assert_eq!(resp.headers.get("x-request-id"), Some(&cx.request_id));
}

#[test]
fn echo_off_writes_nothing() {
    let mut c = cfg();
    c.echo = false;
    let f = filter(&c);
    let mut req = request("/", None, &[("x-request-id", "abc")]);
    let mut cx = cx("10.0.0.1:5000");
    block_on(f.on_request(&mut req, &mut cx));
    let mut resp = response();
    f.on_response(&mut resp, &mut cx);
    assert!(!resp.headers.contains("x-request-id"));
}

#[test]
fn generated_ids_are_distinct_and_deterministic_per_seed() {
    let a = RequestIdFilter::with_rng(&cfg(), fastrand::Rng::with_seed(7)).expect("valid");
    let b = RequestIdFilter::with_rng(&cfg(), fastrand::Rng::with_seed(7)).expect("valid");
    let mut seen = std::collections::HashSet::new();
    // More than one chunk's worth, so chunk refills are exercised.
    for _ in 0..200 {
        let (mut ra, mut rb) = (request("/", None, &[]), request("/", None, &[]));
        let (mut ca, mut cb) = (cx("10.0.0.1:1"), cx("10.0.0.1:1"));
        block_on(a.on_request(&mut ra, &mut ca));
        block_on(b.on_request(&mut rb, &mut cb));
        assert!(is_generated(&ca.request_id));
        assert_eq!(ca.request_id, cb.request_id);
        assert!(seen.insert(ca.request_id.clone()), "duplicate id");
    }
}

#[test]
fn rejects_invalid_header_name() {
    let mut c = cfg();
    c.header = "x request id".to_owned();
    assert!(matches!(RequestIdFilter::build(&c), Err(BuildError::HeaderName { .. })));
}
