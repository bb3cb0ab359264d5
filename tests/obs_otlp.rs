//! OTLP/HTTP span export through the real binary, to a real HTTP collector endpoint started by
//! the test: sampled requests only, the caller's trace id, and the span id the upstream saw.

mod common;

use common::collector::Collector;
use common::{Gateway, LONG, Metrics, Upstream, config, request};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

fn attr<'a>(span: &'a serde_json::Value, key: &str) -> &'a serde_json::Value {
    let found = span["attributes"].as_array().and_then(|a| a.iter().find(|x| x["key"] == key));
    found.map_or(&serde_json::Value::Null, |x| &x["value"])
}

#[test]
fn sampled_requests_are_exported_as_spans_with_the_callers_trace() {
    let collector = Collector::start();
    let app = Upstream::echo("app");
    let rest = format!(
        "[admin]\nbind = \"127.0.0.1:0\"\n\n[tracing]\notlp_endpoint = \"http://{}\"\n\n\
         [[upstreams]]\nname = \"app\"\nendpoints = [\"{}\"]\n\
         [[routes]]\nname = \"users\"\npath = \"/users/{{id}}\"\nupstream = \"app\"\n",
        collector.addr, app.addr
    );
    let gw = Gateway::start(&config("", &rest));
    // Not sampled by the caller: no span may be exported for this trace.
    let unsampled = "0af7651916cd43dd8448eb211c80319c";
    let r = request(
        gw.addr,
        format!(
            "GET /users/1 HTTP/1.1\r\nHost: t\r\ntraceparent: 00-{unsampled}-b7ad6b7169203331-00\r\n\r\n"
        )
        .as_bytes(),
    );
    assert_eq!(r.status, 200);
    let r = request(
        gw.addr,
        format!("GET /users/2?x=1 HTTP/1.1\r\nHost: t\r\ntraceparent: 00-{TRACE}-{CALLER_SPAN}-01\r\n\r\n")
            .as_bytes(),
    );
    assert_eq!(r.status, 200);
    let upstream_tp = app.last().header("traceparent").expect("traceparent forwarded").to_owned();

    let spans = collector.wait_spans(1, LONG);
    assert!(spans.iter().all(|s| s["traceId"] != unsampled), "an unsampled trace was exported: {spans:?}");
    let span = spans.iter().find(|s| s["traceId"] == TRACE).unwrap_or_else(|| panic!("{spans:?}"));
    assert_eq!(span["parentSpanId"], CALLER_SPAN, "the caller's span is the parent");
    assert_eq!(span["spanId"].as_str(), Some(&upstream_tp[36..52]), "the upstream saw the gateway's span id");
    assert_eq!(span["name"], "GET /users/{id}");
    assert_eq!(span["kind"], 2, "SERVER");
    assert_eq!(attr(span, "http.route")["stringValue"], "/users/{id}", "the template, never the raw path");
    assert_eq!(attr(span, "portcullis.route")["stringValue"], "users");
    assert_eq!(attr(span, "http.response.status_code")["intValue"], "200");
    assert_eq!(attr(span, "portcullis.upstream.address")["stringValue"], app.addr.to_string());
    let up_us: u64 = attr(span, "portcullis.upstream.duration_us")["intValue"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .expect("upstream duration");
    let ns = |k: &str| span[k].as_str().and_then(|v| v.parse::<u64>().ok()).expect("time");
    let (start, end) = (ns("startTimeUnixNano"), ns("endTimeUnixNano"));
    assert!(
        start > 1_600_000_000_000_000_000 && end >= start + up_us * 1000,
        "{start}..{end}, upstream {up_us}"
    );
    assert!(!span.to_string().contains("x=1"), "no query in a span");

    let post = &collector.posts()[0];
    assert_eq!(post.path, "/v1/traces");
    assert_eq!(post.content_type, "application/json");
    assert_eq!(
        post.body["resourceSpans"][0]["resource"]["attributes"][0]["value"]["stringValue"],
        "portcullis"
    );
    let m = Metrics::scrape(gw.admin.expect("admin"), None);
    assert!(m.value("portcullis_otlp_spans_total", &[("result", "exported")]) >= 1.0, "{}", m.text);
    assert_eq!(m.value("portcullis_otlp_spans_total", &[("result", "dropped")]), 0.0);
}
