use std::time::Duration;

use bytes::Bytes;
use portcullis_core::config::{Config, QueryLogMode, load_str};
use portcullis_core::pipeline::{Filter, Method};
use portcullis_core::telemetry::{Telemetry, parse_traceparent};

use super::ObserveFilter;
use super::line::{AddrText, path_for_log, write_line};
use crate::testutil::{block_on, cx, request, values};

const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn config(extra: &str) -> Config {
    let text = format!(
        "[[listeners]]\nbind = \"127.0.0.1:0\"\n[[upstreams]]\nname = \"app\"\nendpoints = [\"127.0.0.1:9\"]\n\
         [[routes]]\nname = \"users\"\npath = \"/users/{{id}}\"\nupstream = \"app\"\n{extra}"
    );
    load_str(&text, "t.toml").expect("valid config")
}

#[test]
fn continues_an_incoming_trace_with_its_own_span() {
    let f = ObserveFilter::build(&config(""), None, 0);
    let mut req = request("/", None, &[("traceparent", TP), ("tracestate", "congo=t61rcWkgMzE")]);
    let mut cx = cx("10.0.0.1:5000");
    block_on(f.on_request(&mut req, &mut cx));
    let out = values(&req.headers, "traceparent");
    assert_eq!(out.len(), 1);
    let (trace, parent, flags) = parse_traceparent(out[0].as_bytes()).expect("valid traceparent");
    let (in_trace, in_parent, _) = parse_traceparent(TP.as_bytes()).expect("valid");
    assert_eq!(trace, in_trace);
    assert_ne!(parent, in_parent, "the gateway's own span goes upstream");
    assert_eq!(flags, 1);
    assert_eq!(values(&req.headers, "tracestate"), vec!["congo=t61rcWkgMzE"], "tracestate is propagated");
    let t = cx.trace.expect("trace on the context");
    assert_eq!((t.parent_id, t.span_id), (Some(in_parent), parent));
}

#[test]
fn starts_a_trace_when_absent_or_invalid() {
    let f = ObserveFilter::build(&config("[tracing]\nsample_ratio = 0.0\n"), None, 0);
    for headers in [
        &[][..],
        &[("traceparent", "00-zz"), ("tracestate", "a=b")][..],
        &[("traceparent", TP), ("traceparent", TP)],
    ] {
        let mut req = request("/", None, headers);
        let mut cx = cx("10.0.0.1:5000");
        block_on(f.on_request(&mut req, &mut cx));
        let out = values(&req.headers, "traceparent");
        assert_eq!(out.len(), 1, "{headers:?}");
        let (trace, _, flags) = parse_traceparent(out[0].as_bytes()).expect("valid");
        assert_ne!(trace, parse_traceparent(TP.as_bytes()).expect("valid").0);
        assert_eq!(flags, 0, "sample_ratio 0 marks new traces unsampled");
        assert!(values(&req.headers, "tracestate").is_empty(), "no state from an unreadable trace");
    }
    let off = ObserveFilter::build(&config("[tracing]\nenabled = false\n"), None, 0);
    let mut req = request("/", None, &[]);
    let mut cx = cx("10.0.0.1:5000");
    block_on(off.on_request(&mut req, &mut cx));
    assert!(req.headers.get("traceparent").is_none() && cx.trace.is_none());
}

#[test]
fn query_is_stripped_redacted_or_kept() {
    let mut cx = cx("10.0.0.1:5000");
    cx.path = Bytes::from_static(b"/search");
    cx.query = Some(Bytes::from_static(b"q=secret&flag&token=abc"));
    let mut buf = Vec::new();
    assert_eq!(path_for_log(&cx, QueryLogMode::Strip, &mut buf), b"/search");
    assert_eq!(path_for_log(&cx, QueryLogMode::Redact, &mut buf), b"/search?q=REDACTED&flag&token=REDACTED");
    assert_eq!(path_for_log(&cx, QueryLogMode::Keep, &mut buf), b"/search?q=secret&flag&token=abc");
    cx.query = None;
    assert_eq!(path_for_log(&cx, QueryLogMode::Keep, &mut buf), b"/search", "no query, no '?'");
}

#[test]
fn a_line_is_one_json_object_with_the_fields() {
    let mut cx = cx("10.0.0.1:5000");
    cx.request_id = Bytes::from_static(b"rid-1");
    cx.method = Method::Post;
    cx.status = 502;
    cx.error_code = Some("upstream_connect_failed");
    cx.consumer = Some(Bytes::from_static(b"alice \"the\" admin"));
    let mut out = Vec::new();
    let time = "2026-11-30T05:00:00.000Z";
    let mut addrs = AddrText::default();
    write_line(
        &cx,
        Some("users"),
        b"/users/7",
        (Duration::from_micros(1500), Some(Duration::from_micros(40))),
        time,
        &mut addrs,
        &mut out,
    );
    let v: serde_json::Value = serde_json::from_slice(&out).expect("JSON");
    assert_eq!(v["request_id"], "rid-1");
    assert_eq!(v["method"], "POST");
    assert_eq!(v["route"], "users");
    assert_eq!(v["status"], 502);
    assert_eq!(v["duration_us"], 1500);
    assert_eq!(v["added_us"], 40);
    assert_eq!(v["error"], "upstream_connect_failed");
    assert_eq!(v["consumer"], "alice \"the\" admin");
    assert_eq!(v["client_ip"], "10.0.0.1");
    assert_eq!(v["time"], time);
    assert!(v["upstream_us"].is_null() && v["trace_id"].is_null());
    assert!(!out.contains(&b'\n'));
    // The address texts are reused only while the addresses stay the same.
    let mut again = crate::testutil::cx("[2001:db8::7]:5000");
    again.upstream_addr = Some("10.0.0.9:8080".parse().expect("addr"));
    for (c, client, upstream) in [(&again, "2001:db8::7", "10.0.0.9:8080"), (&cx, "10.0.0.1", "null")] {
        let mut out = Vec::new();
        write_line(c, None, b"/", (Duration::ZERO, None), time, &mut addrs, &mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).expect("JSON");
        assert_eq!(v["client_ip"], client);
        assert_eq!(v["upstream"].to_string().trim_matches('"'), upstream);
    }
}

#[test]
fn log_phase_records_into_this_shards_cells() {
    let telemetry = Telemetry::start(64).expect("telemetry");
    let cfg = config("");
    let f = ObserveFilter::build(&cfg, Some(&telemetry), 3);
    let mut cx = cx("10.0.0.1:5000");
    cx.route = Some(0);
    cx.status = 200;
    cx.bytes_out = 42;
    cx.upstream_time = Some(Duration::from_micros(10));
    f.on_log(&cx);
    let mut miss = crate::testutil::cx("10.0.0.1:5000");
    miss.status = 404;
    miss.error_code = Some("route_not_found");
    f.on_log(&miss);
    let snap = telemetry.metrics.snapshot();
    let users = snap.series.iter().find(|s| &*s.route == "users").expect("users series");
    assert_eq!(&*users.upstream, "app");
    assert_eq!(users.requests(0, 1, 1), 1, "GET 2xx HTTP/1.1");
    assert_eq!(users.bytes_out, 42);
    assert_eq!(users.upstream_time.count(), 1);
    let unmatched = snap.series.iter().find(|s| &*s.route == "_unmatched").expect("unmatched");
    assert_eq!(unmatched.requests(0, 3, 1), 1);
    assert_eq!(snap.codes, vec![("route_not_found", 1)]);
    // Both requests have an added time: HTTP/1.1 (cell 1) proxied (2) and local (3).
    assert_eq!(snap.added[2].count() + snap.added[3].count(), 2);
    assert_eq!(snap.added[3].count(), 2, "no upstream answer was noted: both count as local");
}
