//! What one load run measured and how it is reported: per-thread latency histograms (HDR,
//! nanoseconds, 3 significant digits), error counts by kind, merging across threads, and the
//! JSON report. Owns no I/O and no clock.

use std::time::Duration;

use anyhow::Result;
use hdrhistogram::Histogram;
use serde::Serialize;

use super::errors::{Errors, status_ok};

/// Highest latency the histograms hold (longer ones are clamped to it): one hour.
const MAX_NS: u64 = 3_600_000_000_000;

/// Measurements of one thread (or, after [`Stats::merge`], of the whole run).
pub struct Stats {
    /// Latency of successful measured requests, in nanoseconds.
    pub latency: Histogram<u64>,
    /// Open loop only: how late the generator itself sent a request whose connection was free
    /// at the intended time (timer and scheduling slack), in nanoseconds.
    pub send_lag: Histogram<u64>,
    /// Errors during the measured window.
    pub errors: Errors,
    /// Connections opened after the first one of each connection slot.
    pub reconnects: u64,
    /// Response bytes read during the measured window.
    pub bytes_read: u64,
    /// Successful measured responses that completed before the window ended (throughput).
    pub in_window: u64,
    /// CPU time (user + system) the whole generator process used during the measured window.
    pub generator_cpu: Duration,
}

fn histogram() -> Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, MAX_NS, 3)?)
}

impl Stats {
    /// Empty statistics.
    pub fn new() -> Result<Self> {
        Ok(Self {
            latency: histogram()?,
            send_lag: histogram()?,
            errors: Errors::default(),
            reconnects: 0,
            bytes_read: 0,
            in_window: 0,
            generator_cpu: Duration::ZERO,
        })
    }

    /// Records one successful request's latency.
    pub fn record(&mut self, latency: Duration) {
        self.latency.saturating_record(clamp_ns(latency));
    }

    /// Records one measured response: its status (an error unless a success), and for a success
    /// its latency and whether it ended inside the measured window.
    pub fn answered(&mut self, status: u16, latency: Duration, in_window: bool) {
        if status_ok(&mut self.errors, status) {
            self.record(latency);
            self.in_window += u64::from(in_window);
        }
    }

    /// Records the sender's own lateness for one request.
    pub fn record_lag(&mut self, lag: Duration) {
        self.send_lag.saturating_record(clamp_ns(lag));
    }

    /// Adds another thread's measurements to these.
    pub fn merge(&mut self, other: &Stats) -> Result<()> {
        self.latency.add(&other.latency)?;
        self.send_lag.add(&other.send_lag)?;
        self.errors.add(&other.errors);
        self.reconnects += other.reconnects;
        self.bytes_read += other.bytes_read;
        self.in_window += other.in_window;
        self.generator_cpu += other.generator_cpu;
        Ok(())
    }
}

fn clamp_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(MAX_NS).clamp(1, MAX_NS)
}

/// Latency summary in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Percentiles {
    /// Values recorded.
    pub count: u64,
    /// Smallest value.
    pub min: f64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    #[serde(rename = "p99.9")]
    pub p99_9: f64,
    /// Largest value.
    pub max: f64,
}

impl Percentiles {
    /// Summarises a nanosecond histogram in microseconds (all zero when it is empty).
    pub fn of(h: &Histogram<u64>) -> Self {
        let us = |ns: u64| (ns as f64 / 1000.0 * 100.0).round() / 100.0;
        if h.is_empty() {
            return Self {
                count: 0,
                min: 0.0,
                mean: 0.0,
                p50: 0.0,
                p90: 0.0,
                p99: 0.0,
                p99_9: 0.0,
                max: 0.0,
            };
        }
        Self {
            count: h.len(),
            min: us(h.min()),
            mean: (h.mean() / 10.0).round() / 100.0,
            p50: us(h.value_at_quantile(0.5)),
            p90: us(h.value_at_quantile(0.9)),
            p99: us(h.value_at_quantile(0.99)),
            p99_9: us(h.value_at_quantile(0.999)),
            max: us(h.max()),
        }
    }
}

/// The JSON document `portcullis-bench load` prints (one object).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Always `portcullis-bench load`.
    pub tool: &'static str,
    /// `http://host:port/path` that was loaded.
    pub url: String,
    /// `h1`, `h2c` (HTTP/2 cleartext), `h2` (HTTP/2 over TLS) or `h3`.
    pub protocol: &'static str,
    /// `closed` (max throughput) or `open` (constant arrival rate).
    pub mode: &'static str,
    /// Connections kept open.
    pub connections: usize,
    /// HTTP/1.1: requests in flight per connection (closed loop; 1 in open loop).
    pub pipeline: usize,
    /// HTTP/2 and HTTP/3: concurrent streams per connection (1 for HTTP/1.1).
    pub streams: usize,
    /// Generator threads (one monoio runtime each).
    pub threads: usize,
    /// Open loop: offered rate in requests per second.
    pub rate: Option<f64>,
    /// Seconds of warm-up excluded from every figure.
    pub warmup_s: f64,
    /// Seconds measured.
    pub duration_s: f64,
    /// Successful responses (2xx/3xx) to requests sent in the measured window.
    pub requests: u64,
    /// Successful responses completed inside the measured window, per second. In an open loop
    /// below the offered rate when the target cannot keep up.
    pub rps: f64,
    /// Latency of those requests in µs: from send (closed loop) or from the intended send
    /// time (open loop, coordinated omission corrected) to the last byte of the response.
    pub latency_us: Percentiles,
    /// Open loop: the generator's own lateness when a connection was free at the intended
    /// time, in µs (not part of the latency; shows the generator's timing quality).
    pub send_lag_us: Option<Percentiles>,
    /// Errors by kind.
    pub errors: Errors,
    /// Sum of `errors`.
    pub errors_total: u64,
    /// Connections reopened after an error or a server close.
    pub reconnects: u64,
    /// Response bytes read in the measured window.
    pub bytes_read: u64,
    /// CPU seconds (user + system, all generator threads) used in the measured window.
    pub generator_cpu_s: f64,
    /// `generator_cpu_s` per successful request, in µs: the generator's own cost.
    pub generator_cpu_us_per_req: f64,
}

/// The run's settings a report echoes.
#[derive(Debug, Clone)]
pub struct RunShape {
    /// `http://host:port/path`.
    pub url: String,
    /// Protocol label (see [`Report::protocol`]).
    pub protocol: &'static str,
    /// Streams per connection.
    pub streams: usize,
    /// Open loop rate, `None` for a closed loop.
    pub rate: Option<f64>,
    /// Connections.
    pub connections: usize,
    /// Pipelining depth.
    pub pipeline: usize,
    /// Threads.
    pub threads: usize,
    /// Warm-up.
    pub warmup: Duration,
    /// Measured window.
    pub duration: Duration,
}

impl Report {
    /// Builds the report of a finished run.
    pub fn new(shape: &RunShape, stats: &Stats) -> Self {
        let secs = shape.duration.as_secs_f64().max(1e-9);
        let requests = stats.latency.len();
        Self {
            tool: "portcullis-bench load",
            url: shape.url.clone(),
            protocol: shape.protocol,
            mode: if shape.rate.is_some() { "open" } else { "closed" },
            connections: shape.connections,
            pipeline: shape.pipeline,
            streams: shape.streams,
            threads: shape.threads,
            rate: shape.rate,
            warmup_s: shape.warmup.as_secs_f64(),
            duration_s: shape.duration.as_secs_f64(),
            requests,
            rps: (stats.in_window as f64 / secs * 10.0).round() / 10.0,
            latency_us: Percentiles::of(&stats.latency),
            send_lag_us: shape.rate.map(|_| Percentiles::of(&stats.send_lag)),
            errors: stats.errors,
            errors_total: stats.errors.total(),
            reconnects: stats.reconnects,
            bytes_read: stats.bytes_read,
            generator_cpu_s: (stats.generator_cpu.as_secs_f64() * 1000.0).round() / 1000.0,
            generator_cpu_us_per_req: if requests == 0 {
                0.0
            } else {
                (stats.generator_cpu.as_secs_f64() * 1e6 / requests as f64 * 100.0).round() / 100.0
            },
        }
    }

    /// One human-readable line per figure, for stderr.
    pub fn summary(&self) -> String {
        let l = &self.latency_us;
        let mut s = format!(
            "{} {} loop {}: {} requests in {:.1} s = {:.0} req/s; latency µs p50 {:.1} p90 {:.1} p99 {:.1} p99.9 {:.1} max {:.1}; errors {}",
            self.protocol,
            self.mode,
            self.url,
            self.requests,
            self.duration_s,
            self.rps,
            l.p50,
            l.p90,
            l.p99,
            l.p99_9,
            l.max,
            self.errors_total
        );
        if let (Some(rate), Some(lag)) = (self.rate, self.send_lag_us) {
            s.push_str(&format!(
                "\noffered {rate:.0} req/s; generator send lag µs p50 {:.1} p99 {:.1} max {:.1}",
                lag.p50, lag.p99, lag.max
            ));
            if self.rps < rate * 0.97 {
                s.push_str("\nwarning: achieved rate is below the offered rate: the target (or the generator) is saturated");
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(rate: Option<f64>) -> RunShape {
        RunShape {
            url: "http://127.0.0.1:1/".into(),
            protocol: "h1",
            streams: 1,
            rate,
            connections: 4,
            pipeline: 1,
            threads: 1,
            warmup: Duration::from_secs(1),
            duration: Duration::from_secs(2),
        }
    }

    #[test]
    fn percentiles_are_in_microseconds_within_hdr_precision() {
        let mut s = Stats::new().expect("stats");
        for us in 1..=1000u64 {
            s.record(Duration::from_micros(us));
        }
        let p = Percentiles::of(&s.latency);
        assert_eq!(p.count, 1000);
        assert!((p.p50 - 500.0).abs() <= 1.0, "{p:?}");
        assert!((p.p99 - 990.0).abs() <= 1.0, "{p:?}");
        assert!((p.p99_9 - 999.0).abs() <= 1.0, "{p:?}");
        assert!((p.max - 1000.0).abs() <= 1.0, "{p:?}");
        assert!((p.min - 1.0).abs() < 0.01, "{p:?}");
    }

    #[test]
    fn merge_adds_counts_and_errors() {
        let mut a = Stats::new().expect("stats");
        let mut b = Stats::new().expect("stats");
        a.record(Duration::from_micros(10));
        b.record(Duration::from_micros(20));
        b.record(Duration::from_secs(7200)); // clamped, not lost
        a.errors.timeout = 1;
        b.errors.status_5xx = 2;
        b.reconnects = 3;
        a.merge(&b).expect("merge");
        assert_eq!(a.latency.len(), 3);
        assert_eq!(a.errors.total(), 3);
        assert_eq!(a.reconnects, 3);
    }

    #[test]
    fn json_shape_is_stable() {
        let mut s = Stats::new().expect("stats");
        for _ in 0..10 {
            s.record(Duration::from_micros(100));
        }
        s.in_window = 10;
        s.errors.connect = 1;
        let closed = serde_json::to_value(Report::new(&shape(None), &s)).expect("json");
        for key in [
            "tool",
            "url",
            "mode",
            "connections",
            "pipeline",
            "threads",
            "rate",
            "warmup_s",
            "duration_s",
            "requests",
            "rps",
            "latency_us",
            "send_lag_us",
            "errors",
            "errors_total",
            "reconnects",
            "bytes_read",
        ] {
            assert!(closed.get(key).is_some(), "missing {key}");
        }
        for key in ["p50", "p90", "p99", "p99.9", "max", "min", "mean", "count"] {
            assert!(closed["latency_us"][key].is_number(), "missing latency_us.{key}");
        }
        assert_eq!(closed["protocol"], "h1");
        assert_eq!(closed["streams"], 1);
        for key in
            ["connect", "write", "read", "closed", "timeout", "parse", "reset", "status_4xx", "status_5xx"]
        {
            assert!(closed["errors"][key].is_u64(), "missing errors.{key}");
        }
        assert_eq!(closed["mode"], "closed");
        assert_eq!(closed["rps"], 5.0);
        assert_eq!(closed["errors_total"], 1);
        assert!(closed["send_lag_us"].is_null());
        let open = serde_json::to_value(Report::new(&shape(Some(100.0)), &s)).expect("json");
        assert_eq!(open["mode"], "open");
        assert_eq!(open["rate"], 100.0);
        assert!(open["send_lag_us"]["p99"].is_number());
    }
}
