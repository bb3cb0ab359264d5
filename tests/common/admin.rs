//! Admin API helpers: requests with an optional bearer token, and `/metrics` scraped through
//! a real Prometheus text-format parser (`prometheus-parse`).

use std::net::SocketAddr;

use super::client::{Client, Response};

/// Sends `method path` with an optional bearer token and body; returns the response.
pub fn admin(addr: SocketAddr, method: &str, path: &str, token: Option<&str>, body: &[u8]) -> Response {
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: admin\r\n{auth}Content-Length: {}\r\n\r\n", body.len())
            .into_bytes();
    req.extend_from_slice(body);
    Client::connect(addr).request(&req)
}

/// A parsed scrape of `/metrics`.
pub struct Metrics {
    /// Every sample.
    pub scrape: prometheus_parse::Scrape,
    /// The raw text.
    pub text: String,
}

impl Metrics {
    /// Scrapes and parses `/metrics`.
    pub fn scrape(addr: SocketAddr, token: Option<&str>) -> Metrics {
        let r = admin(addr, "GET", "/metrics", token, b"");
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(r.header("content-type").is_some_and(|c| c.starts_with("text/plain")));
        let text = r.text();
        let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
            .expect("the Prometheus parser accepts /metrics");
        Metrics { scrape, text }
    }

    /// Samples named `name` whose labels include all of `labels`.
    pub fn find(&self, name: &str, labels: &[(&str, &str)]) -> Vec<&prometheus_parse::Sample> {
        self.scrape
            .samples
            .iter()
            .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .collect()
    }

    /// Sum of the scalar values (counter, gauge, untyped) of the matching samples (0 if none).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.find(name, labels)
            .iter()
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => panic!("{name} is not a scalar"),
            })
            .sum()
    }

    /// The `(le, count)` buckets of one histogram series.
    pub fn histogram(&self, name: &str, labels: &[(&str, &str)]) -> Vec<(f64, f64)> {
        let found = self.find(name, labels);
        assert_eq!(found.len(), 1, "one histogram {name} {labels:?}");
        match &found[0].value {
            prometheus_parse::Value::Histogram(b) => b.iter().map(|h| (h.less_than, h.count)).collect(),
            other => panic!("{name} is not a histogram: {other:?}"),
        }
    }

    /// The quantiles of one summary series.
    pub fn summary(&self, name: &str, labels: &[(&str, &str)]) -> Vec<(f64, f64)> {
        let found = self.find(name, labels);
        assert_eq!(found.len(), 1, "one summary {name} {labels:?}");
        match &found[0].value {
            prometheus_parse::Value::Summary(q) => q.iter().map(|s| (s.quantile, s.count)).collect(),
            other => panic!("{name} is not a summary: {other:?}"),
        }
    }
}
