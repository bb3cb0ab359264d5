//! Active health checking and endpoint discovery of an `[[upstreams]]` entry: the
//! `[upstreams.health_check]` table and the watched `endpoints_file` format.
//!
//! Owns: what those keys may say and the endpoints file syntax. Must not: probe or watch
//! anything (the HTTP crate's upstream service does), or check values (`validate/health.rs`).

use serde::Deserialize;

use super::units::Dur;

/// How an endpoint is probed.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum HealthCheckKind {
    /// `GET path` over HTTP/1.1; healthy when the status is expected.
    #[default]
    Http,
    /// A TCP connect; healthy when it succeeds.
    Tcp,
}

/// `[upstreams.health_check]`: active probes, run once per process, results shared by all shards.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct HealthCheckConfig {
    /// `http` or `tcp`.
    pub kind: HealthCheckKind,
    /// Path of the HTTP probe.
    pub path: String,
    /// `Host` of the HTTP probe (the endpoint address when unset).
    pub host: Option<String>,
    /// Statuses that count as healthy (empty: 200 to 399).
    pub expected_statuses: Vec<u16>,
    /// Time between probes of one endpoint (each jittered by up to `jitter_percent`).
    pub interval: Dur,
    /// A probe not finished within this fails.
    pub timeout: Dur,
    /// Consecutive successes that bring an unhealthy endpoint back.
    pub healthy_threshold: u32,
    /// Consecutive failures that mark an endpoint unhealthy.
    pub unhealthy_threshold: u32,
    /// Random extra delay added to each interval, as a share of it (percent).
    pub jitter_percent: u32,
}

impl Default for HealthCheckConfig {
    fn default() -> Self {
        HealthCheckConfig {
            kind: HealthCheckKind::Http,
            path: "/healthz".into(),
            host: None,
            expected_statuses: Vec::new(),
            interval: Dur::secs(5),
            timeout: Dur::secs(1),
            healthy_threshold: 2,
            unhealthy_threshold: 3,
            jitter_percent: 10,
        }
    }
}

impl HealthCheckConfig {
    /// Whether an HTTP probe answered with `status` passes.
    pub fn status_ok(&self, status: u16) -> bool {
        if self.expected_statuses.is_empty() {
            (200..400).contains(&status)
        } else {
            self.expected_statuses.contains(&status)
        }
    }
}

/// One endpoint of an endpoints file: line number (from 1), `host:port`, weight.
pub type FileEndpoint = (usize, String, u32);

/// Parses an endpoints file: one `host:port` or `host:port weight=N` per line; `#` starts a
/// comment. Returns the endpoints, or the first bad line's number and reason.
pub fn parse_endpoints_file(text: &str) -> Result<Vec<FileEndpoint>, (usize, String)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let mut words = line.split_whitespace();
        let addr = words.next().unwrap_or_default().to_owned();
        let mut weight = 1;
        for w in words {
            match w.strip_prefix("weight=").and_then(|n| n.parse::<u32>().ok()) {
                Some(n) if (1..=1000).contains(&n) => weight = n,
                _ => return Err((i + 1, format!("{w:?}: expected weight=N with N from 1 to 1000"))),
            }
        }
        out.push((i + 1, addr, weight));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_file_lines_comments_and_weights() {
        let text = "# pool\n127.0.0.1:1\n\n 127.0.0.1:2 weight=3 # big\n";
        let eps = parse_endpoints_file(text).expect("valid");
        assert_eq!(eps, vec![(2, "127.0.0.1:1".into(), 1), (4, "127.0.0.1:2".into(), 3)]);
        assert_eq!(parse_endpoints_file("a:1 heavy").map_err(|e| e.0), Err(1));
    }
}
