//! One finished request as an OTLP span, and the OTLP/HTTP JSON encoding of a batch of them.
//!
//! Owns: what a span carries (ids, times, route template, status, upstream, durations) and the
//! JSON shape of `ExportTraceServiceRequest`. Must not: queue, send or decide sampling (the
//! exporter and the observe filter do that), or carry request data beyond names and numbers.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use serde_json::{Value, json};

use super::trace::TraceContext;

/// The route labels a span names (built once per route per config generation).
#[derive(Debug)]
pub struct SpanRoute {
    /// Route name.
    pub name: Arc<str>,
    /// Route template (`path`, or `prefix` followed by `*`).
    pub template: Arc<str>,
}

/// A finished, sampled request (no allocation to build: ids, numbers and shared names).
#[derive(Clone, Debug)]
pub struct SpanRecord {
    /// The request's trace ids (the gateway's span, its parent).
    pub trace: TraceContext,
    /// Start, in nanoseconds since the Unix epoch.
    pub start_unix_ns: u64,
    /// End, in nanoseconds since the Unix epoch.
    pub end_unix_ns: u64,
    /// The matched route (none: no route matched).
    pub route: Option<Arc<SpanRoute>>,
    /// Request method (a bounded label value).
    pub method: &'static str,
    /// Status sent (0 = none).
    pub status: u16,
    /// Protocol the client spoke.
    pub protocol: &'static str,
    /// Client address.
    pub client_ip: IpAddr,
    /// Upstream endpoint used.
    pub upstream: Option<SocketAddr>,
    /// Upstream time in µs.
    pub upstream_us: Option<u64>,
    /// Gateway error code, when the gateway answered itself.
    pub error: Option<&'static str>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn text(key: &str, v: impl Into<String>) -> Value {
    json!({"key": key, "value": {"stringValue": v.into()}})
}

fn int(key: &str, v: u64) -> Value {
    json!({"key": key, "value": {"intValue": v.to_string()}})
}

impl SpanRecord {
    fn to_json(&self) -> Value {
        let template = self.route.as_ref().map(|r| &*r.template);
        let mut attrs = vec![
            text("http.request.method", self.method),
            int("http.response.status_code", u64::from(self.status)),
            text("network.protocol.name", "http"),
            text("portcullis.protocol", self.protocol),
            text("client.address", self.client_ip.to_string()),
            int("portcullis.duration_us", self.end_unix_ns.saturating_sub(self.start_unix_ns) / 1000),
        ];
        if let Some(r) = &self.route {
            attrs.push(text("http.route", &*r.template));
            attrs.push(text("portcullis.route", &*r.name));
        }
        if let Some(up) = self.upstream {
            attrs.push(text("portcullis.upstream.address", up.to_string()));
        }
        if let Some(us) = self.upstream_us {
            attrs.push(int("portcullis.upstream.duration_us", us));
        }
        if let Some(code) = self.error {
            attrs.push(text("error.type", code));
        }
        let mut span = json!({
            "traceId": hex(&self.trace.trace_id),
            "spanId": hex(&self.trace.span_id),
            "name": format!("{} {}", self.method, template.unwrap_or("_unmatched")),
            "kind": 2,
            "startTimeUnixNano": self.start_unix_ns.to_string(),
            "endTimeUnixNano": self.end_unix_ns.to_string(),
            "attributes": attrs,
            "flags": u32::from(self.trace.flags),
            // OTLP status: 2 = error (server errors only, per the HTTP semantic conventions).
            "status": {"code": if self.status >= 500 || self.status == 0 { 2 } else { 0 }},
        });
        if let Some(parent) = self.trace.parent_id {
            span["parentSpanId"] = Value::String(hex(&parent));
        }
        span
    }
}

/// The OTLP/HTTP JSON body (`ExportTraceServiceRequest`) of `spans`.
pub fn encode_otlp_json(spans: &[SpanRecord], service: &str) -> Vec<u8> {
    let body = json!({"resourceSpans": [{
        "resource": {"attributes": [text("service.name", service)]},
        "scopeSpans": [{
            "scope": {"name": "portcullis", "version": env!("CARGO_PKG_VERSION")},
            "spans": spans.iter().map(SpanRecord::to_json).collect::<Vec<_>>(),
        }],
    }]});
    serde_json::to_vec(&body).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_an_export_request() {
        let trace = TraceContext {
            trace_id: [0xab; 16],
            span_id: [1, 2, 3, 4, 5, 6, 7, 8],
            parent_id: Some([9; 8]),
            flags: 1,
        };
        let route = Arc::new(SpanRoute { name: "users".into(), template: "/users/{id}".into() });
        let span = SpanRecord {
            trace,
            start_unix_ns: 1_000_000,
            end_unix_ns: 3_500_000,
            route: Some(route),
            method: "GET",
            status: 502,
            protocol: "HTTP/1.1",
            client_ip: "10.0.0.1".parse().expect("ip"),
            upstream: Some("127.0.0.1:9".parse().expect("addr")),
            upstream_us: Some(1200),
            error: Some("upstream_connect_failed"),
        };
        let body: Value = serde_json::from_slice(&encode_otlp_json(&[span], "gw")).expect("JSON");
        let rs = &body["resourceSpans"][0];
        assert_eq!(rs["resource"]["attributes"][0]["value"]["stringValue"], "gw");
        let s = &rs["scopeSpans"][0]["spans"][0];
        assert_eq!(s["traceId"], "ab".repeat(16));
        assert_eq!(s["spanId"], "0102030405060708");
        assert_eq!(s["parentSpanId"], "0909090909090909");
        assert_eq!(s["name"], "GET /users/{id}");
        assert_eq!(s["startTimeUnixNano"], "1000000");
        assert_eq!(s["status"]["code"], 2);
        let attr = |k: &str| {
            s["attributes"]
                .as_array()
                .and_then(|a| a.iter().find(|x| x["key"] == k))
                .map(|x| x["value"].clone())
        };
        assert_eq!(attr("http.route").expect("route")["stringValue"], "/users/{id}");
        assert_eq!(attr("http.response.status_code").expect("status")["intValue"], "502");
        assert_eq!(attr("portcullis.upstream.duration_us").expect("up")["intValue"], "1200");
        assert_eq!(attr("portcullis.duration_us").expect("total")["intValue"], "2500");
        assert_eq!(attr("error.type").expect("error")["stringValue"], "upstream_connect_failed");
    }
}
