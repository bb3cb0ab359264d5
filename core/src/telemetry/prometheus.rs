//! Prometheus text exposition (format 0.0.4) of the merged metrics and the process status.
//!
//! Owns: metric names, help texts, label escaping and the exported histogram buckets (powers
//! of four from 64 µs; for the added time, four per power of two from 1 µs to 16 ms: all exact
//! bucket boundaries of the internal histogram). Must not: read shard state other than through
//! snapshots.

use std::fmt::Write;

use super::access_log::AccessLogStats;
use super::histogram::HistogramSnapshot;
use super::metrics::{MetricsSnapshot, SeriesSnapshot};
use super::otlp::SpanStats;
use super::series::{CLASSES, METHODS, PROTOCOLS};
use crate::runtime::Status;

/// Exported `le` bounds as powers of two of µs: 64 µs, 256 µs, ... 67 s.
const LE_EXPS: [u32; 11] = [6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26];
/// Exported `le` bounds (µs) of the added-time histogram: every µs to 6, then four per power
/// of two (at most 25 % apart) to 16 ms, then powers of four to about 1 s.
const ADDED_LE_US: [u64; 53] = [
    1, 2, 3, 4, 5, 6, 8, 10, 12, 14, 16, 20, 24, 28, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224,
    256, 320, 384, 448, 512, 640, 768, 896, 1024, 1280, 1536, 1792, 2048, 2560, 3072, 3584, 4096, 5120, 6144,
    7168, 8192, 10240, 12288, 14336, 16384, 65536, 1048576,
];
/// Exported quantiles.
const QUANTILES: [(f64, &str); 3] = [(0.5, "0.5"), (0.95, "0.95"), (0.99, "0.99")];

/// Picks one histogram of a series.
type Pick = fn(&SeriesSnapshot) -> &HistogramSnapshot;

/// Escapes a label value.
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn head(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn histogram(out: &mut String, name: &str, labels: &str, h: &HistogramSnapshot) {
    for exp in LE_EXPS {
        let le = (1u64 << exp) as f64 / 1e6;
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {}", h.count_below_pow2(exp));
    }
    let count = h.count();
    let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {count}");
    let _ = writeln!(out, "{name}_sum{{{labels}}} {}", h.sum_us as f64 / 1e6);
    let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
}

/// Renders the registered gauges, one `# HELP`/`# TYPE` per metric name.
fn gauges(out: &mut String, list: &[super::metrics::GaugeSnapshot]) {
    let mut done: Vec<&str> = Vec::new();
    for (metric, help, _, _) in list {
        if done.contains(metric) {
            continue;
        }
        done.push(metric);
        head(out, metric, "gauge", help);
        for (_, _, labels, v) in list.iter().filter(|g| g.0 == *metric) {
            let l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", esc(v))).collect();
            let _ = writeln!(out, "{metric}{{{}}} {v}", l.join(","));
        }
    }
}

/// Renders every metric.
pub fn render(m: &MetricsSnapshot, status: &Status, log: AccessLogStats, spans: SpanStats) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let labels: Vec<String> = m
        .series
        .iter()
        .map(|s| format!("route=\"{}\",upstream=\"{}\"", esc(&s.route), esc(&s.upstream)))
        .collect();

    head(
        &mut out,
        "portcullis_requests_total",
        "counter",
        "Requests by route, upstream, method, status class and protocol.",
    );
    for (s, l) in m.series.iter().zip(&labels) {
        for (mi, method) in METHODS.iter().enumerate() {
            for (ci, class) in CLASSES.iter().enumerate() {
                for (pi, proto) in PROTOCOLS.iter().enumerate() {
                    let n = s.requests(mi, ci, pi);
                    if n > 0 {
                        let _ = writeln!(
                            out,
                            "portcullis_requests_total{{{l},method=\"{method}\",status_class=\"{class}\",protocol=\"{proto}\"}} {n}"
                        );
                    }
                }
            }
        }
    }
    head(
        &mut out,
        "portcullis_request_body_bytes_total",
        "counter",
        "Request body bytes received from clients.",
    );
    for (s, l) in m.series.iter().zip(&labels) {
        let _ = writeln!(out, "portcullis_request_body_bytes_total{{{l}}} {}", s.bytes_in);
    }
    head(&mut out, "portcullis_response_body_bytes_total", "counter", "Response body bytes sent to clients.");
    for (s, l) in m.series.iter().zip(&labels) {
        let _ = writeln!(out, "portcullis_response_body_bytes_total{{{l}}} {}", s.bytes_out);
    }
    let hists: [(&str, &str, Pick); 3] = [
        ("portcullis_request_duration_seconds", "Whole exchange, head received to response written.", |s| {
            &s.total
        }),
        (
            "portcullis_upstream_duration_seconds",
            "Upstream time: request sent until response head received.",
            |s| &s.upstream_time,
        ),
        (
            "portcullis_gateway_overhead_seconds",
            "Exchange time minus upstream time (exchanges that reached an upstream).",
            |s| &s.overhead,
        ),
    ];
    for (name, help, pick) in hists {
        head(&mut out, name, "histogram", help);
        for (s, l) in m.series.iter().zip(&labels) {
            histogram(&mut out, name, l, pick(s));
        }
    }
    head(
        &mut out,
        "portcullis_gateway_added_seconds",
        "histogram",
        "The gateway's own time per request: request head read to response head written, less the upstream wait.",
    );
    for (i, h) in m.added.iter().enumerate().filter(|(_, h)| h.count() > 0) {
        let (protocol, reply) = super::added::added_labels(i);
        let labels = format!("protocol=\"{protocol}\",reply=\"{reply}\"");
        for le in ADDED_LE_US {
            let _ = writeln!(
                out,
                "portcullis_gateway_added_seconds_bucket{{{labels},le=\"{}\"}} {}",
                le as f64 / 1e6,
                h.count_below(le)
            );
        }
        let count = h.count();
        let _ = writeln!(out, "portcullis_gateway_added_seconds_bucket{{{labels},le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "portcullis_gateway_added_seconds_sum{{{labels}}} {}", h.sum_us as f64 / 1e6);
        let _ = writeln!(out, "portcullis_gateway_added_seconds_count{{{labels}}} {count}");
    }
    head(
        &mut out,
        "portcullis_request_duration_quantile_seconds",
        "summary",
        "Request duration quantiles since start (bucket midpoints, within 6.25 %); use the histogram for rates.",
    );
    for (s, l) in m.series.iter().zip(&labels) {
        for (q, qs) in QUANTILES {
            if let Some(v) = s.total.quantile(q) {
                let _ = writeln!(
                    out,
                    "portcullis_request_duration_quantile_seconds{{{l},quantile=\"{qs}\"}} {}",
                    v / 1e6
                );
            }
        }
        let _ = writeln!(
            out,
            "portcullis_request_duration_quantile_seconds_sum{{{l}}} {}",
            s.total.sum_us as f64 / 1e6
        );
        let _ =
            writeln!(out, "portcullis_request_duration_quantile_seconds_count{{{l}}} {}", s.total.count());
    }
    head(
        &mut out,
        "portcullis_local_replies_total",
        "counter",
        "Responses the gateway made itself, by error code.",
    );
    for (code, n) in &m.codes {
        let _ = writeln!(out, "portcullis_local_replies_total{{code=\"{}\"}} {n}", esc(code));
    }

    head(
        &mut out,
        "portcullis_events_total",
        "counter",
        "Filter events (authentication failures, rate-limit hits, retries, ...) by reason.",
    );
    for (event, reason, n) in &m.events {
        let _ = writeln!(
            out,
            "portcullis_events_total{{event=\"{}\",reason=\"{}\"}} {n}",
            esc(event),
            esc(reason)
        );
    }
    gauges(&mut out, &m.gauges);
    head(
        &mut out,
        "portcullis_connections_active",
        "gauge",
        "Open client connections per shard and protocol.",
    );
    for (i, g) in status.shards().iter().enumerate() {
        for (proto, n) in [("http/1", &g.connections), ("h2", &g.h2_connections), ("h3", &g.h3_connections)] {
            let n = n.load(std::sync::atomic::Ordering::Relaxed);
            let _ = writeln!(out, "portcullis_connections_active{{shard=\"{i}\",protocol=\"{proto}\"}} {n}");
        }
    }
    head(&mut out, "portcullis_requests_inflight", "gauge", "Requests in flight per shard.");
    for (i, g) in status.shards().iter().enumerate() {
        let n = g.inflight.load(std::sync::atomic::Ordering::Relaxed);
        let _ = writeln!(out, "portcullis_requests_inflight{{shard=\"{i}\"}} {n}");
    }
    let running = status.running();
    head(&mut out, "portcullis_config_generation", "gauge", "Config generation running (1 = as started).");
    let _ = writeln!(out, "portcullis_config_generation {}", running.generation);
    let (ok, failed) = status.reload_counts();
    head(&mut out, "portcullis_config_reloads_total", "counter", "Config reload attempts by result.");
    let _ = writeln!(out, "portcullis_config_reloads_total{{result=\"applied\"}} {ok}");
    let _ = writeln!(out, "portcullis_config_reloads_total{{result=\"refused\"}} {failed}");
    let last = status.last_reload();
    head(
        &mut out,
        "portcullis_config_last_reload_success",
        "gauge",
        "1 if the last reload was applied (or none was tried), 0 if refused.",
    );
    let _ = writeln!(
        out,
        "portcullis_config_last_reload_success {}",
        u8::from(last.as_ref().is_none_or(|r| r.ok))
    );
    head(
        &mut out,
        "portcullis_config_last_reload_timestamp_seconds",
        "gauge",
        "When the last reload was tried (0 = never).",
    );
    let _ =
        writeln!(out, "portcullis_config_last_reload_timestamp_seconds {}", last.map_or(0, |r| r.at_unix));
    head(
        &mut out,
        "portcullis_ready",
        "gauge",
        "1 when every shard listens and the gateway is not draining.",
    );
    let _ = writeln!(out, "portcullis_ready {}", u8::from(status.ready()));
    head(&mut out, "portcullis_draining", "gauge", "1 once draining has begun.");
    let _ = writeln!(out, "portcullis_draining {}", u8::from(status.draining()));
    head(&mut out, "portcullis_start_time_seconds", "gauge", "Process start time since the Unix epoch.");
    let _ = writeln!(out, "portcullis_start_time_seconds {}", status.started_unix());
    head(&mut out, "portcullis_access_log_lines_total", "counter", "Access log lines by outcome.");
    let _ = writeln!(out, "portcullis_access_log_lines_total{{result=\"written\"}} {}", log.written);
    let _ = writeln!(out, "portcullis_access_log_lines_total{{result=\"dropped\"}} {}", log.dropped);
    let _ = writeln!(out, "portcullis_access_log_lines_total{{result=\"failed\"}} {}", log.failed);
    head(&mut out, "portcullis_otlp_spans_total", "counter", "OTLP spans by export outcome.");
    let _ = writeln!(out, "portcullis_otlp_spans_total{{result=\"exported\"}} {}", spans.exported);
    let _ = writeln!(out, "portcullis_otlp_spans_total{{result=\"dropped\"}} {}", spans.dropped);
    let _ = writeln!(out, "portcullis_otlp_spans_total{{result=\"failed\"}} {}", spans.failed);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn added_bounds_are_exact_and_ascending() {
        for w in super::ADDED_LE_US.windows(2) {
            assert!(w[0] < w[1], "{w:?}");
        }
        for le in super::ADDED_LE_US {
            assert!(crate::telemetry::is_boundary(le), "{le} µs is not a bucket boundary");
        }
    }

    use std::sync::Arc;

    use super::*;
    use crate::config::Config;
    use crate::runtime::RunningConfig;
    use crate::telemetry::{AccessLogStats, Metrics, bump};

    #[test]
    fn renders_events_codes_and_escaped_labels() {
        let m = Metrics::new();
        bump(&m.event(0, "rate_limited", "per-\"ip\""), 4);
        m.codes(0).record("route_not_found");
        m.series(0, "a\\b", "up");
        m.added(1).record(2, true, std::time::Duration::from_micros(9));
        let healthy = m.gauge("portcullis_up", "Up.", vec![("endpoint", "1.2.3.4:5".into())]);
        healthy.store(1, std::sync::atomic::Ordering::Relaxed);
        let running = RunningConfig {
            generation: 3,
            config: Arc::new(Config::default()),
            text: None,
            source: "t".into(),
        };
        let status = Status::new(2, running);
        let text = render(
            &m.snapshot(),
            &status,
            AccessLogStats { written: 1, dropped: 2, failed: 0 },
            SpanStats { exported: 5, dropped: 0, failed: 1 },
        );
        assert!(
            text.contains("portcullis_events_total{event=\"rate_limited\",reason=\"per-\\\"ip\\\"\"} 4\n"),
            "{text}"
        );
        assert!(text.contains("portcullis_local_replies_total{code=\"route_not_found\"} 1\n"));
        assert!(text.contains("route=\"a\\\\b\""));
        assert!(text.contains("portcullis_config_generation 3\n"));
        // Only used (protocol, reply) cells are exported; le bounds are exact: 9 µs is not below 8.
        assert_eq!(text.matches("portcullis_gateway_added_seconds_count{").count(), 1, "{text}");
        assert!(text.contains(
            "portcullis_gateway_added_seconds_bucket{protocol=\"h2\",reply=\"local\",le=\"0.000008\"} 0\n"
        ));
        assert!(text.contains(
            "portcullis_gateway_added_seconds_bucket{protocol=\"h2\",reply=\"local\",le=\"0.00001\"} 1\n"
        ));
        assert!(
            text.contains("# TYPE portcullis_up gauge\nportcullis_up{endpoint=\"1.2.3.4:5\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("portcullis_access_log_lines_total{result=\"dropped\"} 2\n"));
        assert!(text.contains("portcullis_otlp_spans_total{result=\"exported\"} 5\n"));
        assert_eq!(text.matches("portcullis_connections_active{").count(), 6, "2 shards x 3 protocols");
        // Every sample line belongs to a declared family.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap_or_default();
            let family =
                ["_bucket", "_sum", "_count"].iter().fold(name, |n, s| n.strip_suffix(s).unwrap_or(n));
            assert!(
                text.contains(&format!("# TYPE {family} ")) || text.contains(&format!("# TYPE {name} ")),
                "{line}"
            );
        }
    }
}
