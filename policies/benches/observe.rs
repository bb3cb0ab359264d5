//! The observe filter's log phase (metrics cells, access log line, span hand-off) in on-CPU
//! nanoseconds per request, with each part switched on in turn; and the two pieces of a log line
//! that changed, side by side with what they replaced: the JSON encoding (hand-written vs
//! `serde_json` of the same record) and the timestamp (cached second + coarse clock vs precise
//! clock + full formatting).
//!
//! Owns: the synthetic requests for measuring telemetry. Must not: measure the request phase
//! or chain building (both happen outside the timed loops).

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use portcullis_core::config::load_str;
use portcullis_core::pipeline::{Cx, Filter, Method, Version};
use portcullis_core::telemetry::{
    AccessRecord, ClockText, Telemetry, TraceContext, realtime_coarse, rfc3339_millis,
};
use portcullis_policies::ObserveFilter;

mod common;
use common::cpu_per_call;

/// What one timed call is.
const UNIT: &str = "request";

fn filter(telemetry: &Telemetry, sections: &str) -> ObserveFilter {
    let text = format!(
        "[server]\nshards = 1\n[[listeners]]\nbind = \"127.0.0.1:0\"\n\
         [[upstreams]]\nname = \"up\"\nendpoints = [\"127.0.0.1:9\"]\n\
         [[routes]]\nname = \"users\"\npath = \"/users/{{id}}\"\nupstream = \"up\"\n{sections}"
    );
    let cfg = load_str(&text, "bench.toml").unwrap_or_else(|e| panic!("{e}"));
    ObserveFilter::build(&cfg, Some(telemetry), 0)
}

fn finished_request() -> Cx {
    let peer: SocketAddr = "203.0.113.9:40000".parse().expect("addr");
    let mut cx = Cx::new(peer, false, Version::Http11);
    cx.request_id = Bytes::from_static(b"6f1c0e0a9b4d4f3e8a7b6c5d4e3f2a1b");
    cx.method = Method::Get;
    cx.path = Bytes::from_static(b"/users/12345");
    cx.route = Some(0);
    cx.status = 200;
    cx.bytes_out = 1234;
    cx.upstream_addr = Some("10.1.2.3:8080".parse().expect("addr"));
    cx.upstream_time = Some(Duration::from_micros(180));
    let mut rng = fastrand::Rng::with_seed(1);
    cx.trace = Some(TraceContext::continue_or_start(None, true, &mut rng));
    cx
}

/// The record as `serde_json` encoded it before (same fields, same order).
#[derive(serde::Serialize)]
struct SerdeRecord<'a> {
    time: &'a str,
    request_id: &'a str,
    trace_id: Option<&'a str>,
    client_ip: &'a str,
    method: &'a str,
    route: Option<&'a str>,
    path: &'a str,
    status: u16,
    bytes_in: u64,
    bytes_out: u64,
    duration_us: u64,
    upstream_us: Option<u64>,
    added_us: Option<u64>,
    upstream: Option<&'a str>,
    consumer: Option<&'a str>,
    protocol: &'a str,
    tls: Option<&'a str>,
    error: Option<&'a str>,
}

const TIME: &str = "2026-11-30T05:00:00.123Z";
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

fn record() -> AccessRecord<'static> {
    AccessRecord {
        time: TIME,
        request_id: b"6f1c0e0a9b4d4f3e8a7b6c5d4e3f2a1b",
        trace_id: Some(TRACE),
        client_ip: "203.0.113.9",
        method: "GET",
        route: Some("users"),
        path: b"/users/12345",
        status: 200,
        bytes_in: 0,
        bytes_out: 1234,
        duration_us: 250,
        upstream_us: Some(180),
        added_us: Some(70),
        upstream: Some("10.1.2.3:8080"),
        consumer: None,
        protocol: "HTTP/1.1",
        tls: None,
        error: None,
    }
}

fn serde_record(r: &AccessRecord<'static>) -> SerdeRecord<'static> {
    SerdeRecord {
        time: r.time,
        request_id: std::str::from_utf8(r.request_id).expect("ascii"),
        trace_id: Some(TRACE),
        client_ip: r.client_ip,
        method: r.method,
        route: r.route,
        path: std::str::from_utf8(r.path).expect("ascii"),
        status: r.status,
        bytes_in: r.bytes_in,
        bytes_out: r.bytes_out,
        duration_us: r.duration_us,
        upstream_us: r.upstream_us,
        added_us: r.added_us,
        upstream: r.upstream,
        consumer: None,
        protocol: r.protocol,
        tls: r.tls,
        error: r.error,
    }
}

fn bench(c: &mut Criterion) {
    const N: u64 = 1_000_000;
    // The writer thread discards lines (no destination): only the shard's side is measured.
    let telemetry = Telemetry::start(65536).expect("telemetry");
    let cx = finished_request();
    let off = filter(&telemetry, "[metrics]\nenabled = false\n[tracing]\nenabled = false\n");
    let metrics = filter(&telemetry, "[tracing]\nenabled = false\n");
    let all = filter(&telemetry, "[access_log]\nenabled = true\n");
    telemetry.log.set_destination(None);
    cpu_per_call(UNIT, "log phase, everything off", N, || off.on_log(black_box(&cx)));
    cpu_per_call(UNIT, "log phase, metrics", N, || metrics.on_log(black_box(&cx)));
    cpu_per_call(UNIT, "log phase, metrics + access log line", N, || all.on_log(black_box(&cx)));

    let rec = record();
    let old = serde_record(&rec);
    let (mut a, mut b) = (Vec::with_capacity(512), Vec::with_capacity(512));
    rec.write_to(&mut a);
    serde_json::to_writer(&mut b, &old).expect("serde");
    assert_eq!(a, b, "the hand-written line is byte for byte what serde_json wrote");
    cpu_per_call(UNIT, "line encoding, serde_json (before)", N, || {
        b.clear();
        let _ = serde_json::to_writer(&mut b, black_box(&old));
    });
    cpu_per_call(UNIT, "line encoding, hand-written (after)", N, || {
        a.clear();
        black_box(&rec).write_to(&mut a);
    });
    let mut buf = [0u8; 24];
    cpu_per_call(UNIT, "timestamp, SystemTime::now + full format (before)", N, || {
        black_box(rfc3339_millis(SystemTime::now(), &mut buf));
    });
    let mut clock = ClockText::default();
    cpu_per_call(UNIT, "timestamp, coarse clock + cached second (after)", N, || {
        black_box(clock.format(realtime_coarse()));
    });
    c.bench_function("observe/log phase, metrics + access log line", |bch| {
        bch.iter(|| all.on_log(black_box(&cx)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
