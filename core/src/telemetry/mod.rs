//! Telemetry primitives: per-shard metric cells merged at scrape, the Prometheus text
//! rendering, the off-shard access log writer, W3C trace context and OTLP span export.
//!
//! Owns: how requests are counted, timed and logged once a filter hands over a finished
//! request. Must not: speak HTTP, hold a lock or allocate on the request path (shards write only
//! their own cells; lines go through a lock-free queue), or decide what a request is.

mod access_log;
mod added;
mod clock;
mod histogram;
mod json_line;
mod metrics;
mod otlp;
mod prometheus;
mod series;
mod span;
mod trace;

pub use access_log::{AccessLog, AccessLogStats, AccessRecord, BATCH_BYTES, LineBatch, StackText};
pub use added::{AddedTime, REPLIES, Timings, added_labels};
pub use clock::{ClockText, civil_from_days, realtime_coarse, rfc3339_millis};
pub use histogram::{BUCKETS, Histogram, HistogramSnapshot, bucket_of, bump, is_boundary};
pub use metrics::{
    GaugeSnapshot, MAX_GAUGES, MAX_SERIES, Metrics, MetricsSnapshot, OVERFLOW, SeriesSnapshot, UNMATCHED,
};
pub use otlp::{HttpEndpoint, SPAN_QUEUE, SpanExporter, SpanStats, parse_http_endpoint};
pub use prometheus::render;
pub use series::{
    CLASSES, CodeTable, METHODS, PROTOCOLS, RouteSeries, Sample, class_index, method_index, protocol_index,
};
pub use span::{SpanRecord, SpanRoute, encode_otlp_json};
pub use trace::{TRACEPARENT_LEN, TraceContext, parse_traceparent};

/// The process-wide telemetry services: created once at start-up, cloned into every shard's
/// chain environment and into the admin API.
#[derive(Clone, Debug)]
pub struct Telemetry {
    /// Metric cells registry.
    pub metrics: Metrics,
    /// Access log queue and writer.
    pub log: AccessLog,
    /// OTLP span queue and exporter.
    pub spans: SpanExporter,
}

impl Telemetry {
    /// Starts the access log writer (queue of `log_queue` lines), the span exporter and an
    /// empty registry.
    pub fn start(log_queue: usize) -> std::io::Result<Telemetry> {
        Ok(Telemetry {
            metrics: Metrics::new(),
            log: AccessLog::start(log_queue)?,
            spans: SpanExporter::start()?,
        })
    }
}
