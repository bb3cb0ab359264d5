//! `ObserveFilter`: built once per shard per config generation with this shard's own metric
//! cells and the access log handle.
//!
//! Owns: the trace header edits and the log-phase recording. Must not: hold a `RefCell` borrow
//! across `.await` (no phase here awaits anything).

use std::cell::RefCell;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use portcullis_core::config::RouteConfig;
use portcullis_core::config::{Config, QueryLogMode};
use portcullis_core::pipeline::{Cx, Filter, Flow, RequestHead};
use portcullis_core::telemetry::{
    AddedTime, ClockText, CodeTable, LineBatch, METHODS, RouteSeries, Sample, SpanExporter, SpanRecord,
    SpanRoute, TRACEPARENT_LEN, Telemetry, TraceContext, UNMATCHED, class_index, method_index,
    parse_http_endpoint, protocol_index, realtime_coarse,
};

use super::line::{AddrText, path_for_log, write_line};

/// `traceparent` values are carved out of one buffer this many at a time.
const TRACEPARENTS_PER_CHUNK: usize = 64;

/// This shard's metric cells for one generation, indexed by route.
#[derive(Debug)]
struct Cells {
    routes: Vec<Arc<RouteSeries>>,
    unmatched: Arc<RouteSeries>,
    codes: Arc<CodeTable>,
    added: Arc<AddedTime>,
}

#[derive(Debug)]
struct Log {
    batch: RefCell<LineBatch>,
    query: QueryLogMode,
    names: Vec<Arc<str>>,
    path: RefCell<Vec<u8>>,
    clock: RefCell<ClockText>,
    /// Boxed: ~180 bytes of text buffers would make every chain filter variant that large.
    addrs: RefCell<Box<AddrText>>,
}

#[derive(Debug)]
struct Tracing {
    sample_ratio: f64,
    rng: RefCell<fastrand::Rng>,
    chunk: RefCell<BytesMut>,
    export: Option<Export>,
}

/// OTLP export of sampled requests (`[tracing] otlp_endpoint`).
#[derive(Debug)]
struct Export {
    spans: SpanExporter,
    routes: Vec<Arc<SpanRoute>>,
}

/// Trace context, metrics and access log (`[tracing]`, `[metrics]`, `[access_log]`).
#[derive(Debug)]
pub struct ObserveFilter {
    tracing: Option<Tracing>,
    cells: Option<Cells>,
    log: Option<Log>,
}

impl ObserveFilter {
    /// Builds the filter for `shard` from `cfg`; without `telemetry` (tests, tools) only the
    /// trace context is handled. Also points the access log at the configured destination.
    pub fn build(cfg: &Config, telemetry: Option<&Telemetry>, shard: usize) -> ObserveFilter {
        let upstream_of = |i: usize| cfg.routes[i].upstream.as_str();
        let names: Vec<Arc<str>> =
            cfg.routes.iter().enumerate().map(|(i, r)| r.display_name(i).into()).collect();
        let endpoint = cfg.tracing.otlp_endpoint.as_deref().and_then(|u| parse_http_endpoint(u).ok());
        let export = telemetry.and_then(|t| {
            t.spans.set_endpoint(endpoint.clone().filter(|_| cfg.tracing.enabled));
            endpoint.filter(|_| cfg.tracing.enabled).map(|_| Export {
                spans: t.spans.clone(),
                routes: cfg
                    .routes
                    .iter()
                    .zip(&names)
                    .map(|(r, name)| Arc::new(span_route(r, name)))
                    .collect(),
            })
        });
        let tracing = cfg.tracing.enabled.then(|| Tracing {
            sample_ratio: cfg.tracing.sample_ratio,
            rng: RefCell::new(fastrand::Rng::new()),
            chunk: RefCell::new(BytesMut::new()),
            export,
        });
        let cells = telemetry.filter(|_| cfg.metrics.enabled).map(|t| Cells {
            routes: names
                .iter()
                .enumerate()
                .map(|(i, n)| t.metrics.series(shard, n, upstream_of(i)))
                .collect(),
            unmatched: t.metrics.series(shard, UNMATCHED, ""),
            codes: t.metrics.codes(shard),
            added: t.metrics.added(shard),
        });
        let log = telemetry.and_then(|t| {
            t.log.set_destination(cfg.access_log.enabled.then_some(cfg.access_log.path.as_str()));
            cfg.access_log.enabled.then(|| Log {
                batch: RefCell::new(LineBatch::new(t.log.clone())),
                query: cfg.access_log.query,
                names,
                path: RefCell::new(Vec::with_capacity(256)),
                clock: RefCell::new(ClockText::default()),
                addrs: RefCell::new(Box::default()),
            })
        });
        ObserveFilter { tracing, cells, log }
    }

    /// Queues the span of a finished sampled request (ending now).
    fn export(e: &Export, cx: &Cx, total: Duration) {
        let Some(trace) = cx.trace.filter(TraceContext::sampled) else { return };
        let end = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos() as u64;
        e.spans.submit(SpanRecord {
            trace,
            start_unix_ns: end.saturating_sub(total.as_nanos() as u64),
            end_unix_ns: end,
            route: cx.route.and_then(|i| e.routes.get(i)).cloned(),
            method: METHODS[method_index(&cx.method)],
            status: cx.status,
            protocol: cx.version.as_str(),
            client_ip: cx.client_ip,
            upstream: cx.upstream_addr,
            upstream_us: cx.upstream_time.map(|d| d.as_micros() as u64),
            error: cx.error_code,
        });
    }

    fn traceparent(t: &Tracing, ctx: &TraceContext) -> Bytes {
        let mut chunk = t.chunk.borrow_mut();
        if chunk.capacity() < TRACEPARENT_LEN {
            *chunk = BytesMut::with_capacity(TRACEPARENT_LEN * TRACEPARENTS_PER_CHUNK);
        }
        chunk.extend_from_slice(&ctx.traceparent());
        chunk.split().freeze()
    }
}

/// A route's span labels: its name and its template (`path`, or `prefix` then `*`).
fn span_route(r: &RouteConfig, name: &Arc<str>) -> SpanRoute {
    let template = match (&r.path, &r.prefix) {
        (Some(p), _) => p.as_str().into(),
        (None, Some(p)) => format!("{}*", p.trim_end_matches('/').to_owned() + "/").into(),
        (None, None) => "/*".into(),
    };
    SpanRoute { name: name.clone(), template }
}

impl Filter for ObserveFilter {
    async fn on_request(&self, req: &mut RequestHead, cx: &mut Cx) -> Flow {
        if let Some(t) = &self.tracing {
            let ctx = {
                let mut all = req.headers.get_all("traceparent");
                // Several `traceparent`s are as unreadable as a malformed one.
                let incoming = all.next().filter(|_| all.next().is_none());
                let mut rng = t.rng.borrow_mut();
                let sampled = t.sample_ratio >= 1.0 || rng.f64() < t.sample_ratio;
                TraceContext::continue_or_start(incoming.map(|v| &v[..]), sampled, &mut rng)
            };
            if ctx.parent_id.is_none() {
                // A restarted trace carries no vendor state from a trace we could not read.
                req.headers.remove("tracestate");
            }
            req.headers.set(Bytes::from_static(b"traceparent"), Self::traceparent(t, &ctx));
            cx.trace = Some(ctx);
        }
        Flow::Continue
    }

    fn on_tick(&self) {
        if let Some(l) = &self.log {
            l.batch.borrow_mut().flush();
        }
    }

    fn on_log(&self, cx: &Cx) {
        // The one clock read of the log phase: the end of the exchange and, when the head went
        // out with the whole response, the moment the head was written.
        let now = Instant::now();
        let total = now.saturating_duration_since(cx.started);
        let added = cx.added_time(now);
        if let Some(c) = &self.cells {
            let series = cx.route.and_then(|i| c.routes.get(i)).unwrap_or(&c.unmatched);
            series.record(&Sample {
                method: method_index(&cx.method),
                class: class_index(cx.status),
                protocol: protocol_index(cx.version),
                bytes_in: cx.bytes_in,
                bytes_out: cx.bytes_out,
                total_us: total.as_micros() as u64,
                upstream_us: cx.upstream_time.map(|d| d.as_micros() as u64),
            });
            if let Some(code) = cx.error_code {
                c.codes.record(code);
            }
            if let Some(a) = added {
                c.added.record(protocol_index(cx.version), cx.upstream_answered.is_none(), a);
            }
        }
        if let Some(l) = &self.log {
            let mut buf = l.path.borrow_mut();
            let path = path_for_log(cx, l.query, &mut buf);
            let route = cx.route.and_then(|i| l.names.get(i)).map(|n| &**n);
            let mut clock = l.clock.borrow_mut();
            // The coarse clock (kernel tick resolution) is enough for a log line's time.
            let time = clock.format(realtime_coarse());
            let mut batch = l.batch.borrow_mut();
            write_line(cx, route, path, (total, added), time, &mut l.addrs.borrow_mut(), batch.line());
            batch.end_line();
        }
        if let Some(e) = self.tracing.as_ref().and_then(|t| t.export.as_ref()) {
            Self::export(e, cx, total);
        }
    }
}
