//! The configuration model of observability and operations: `[admin]`, `[metrics]`,
//! `[access_log]` and `[tracing]`.
//!
//! Owns: the serde shape and defaults of these sections. Must not: validate them (that is
//! `validate/obs.rs`) or start anything (the telemetry and admin services read them).

use std::net::SocketAddr;

use serde::Deserialize;

use super::units::Dur;

/// `[admin]`: the admin API listener (health, readiness, metrics, config, routes, drain).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Address of the admin listener; loopback by default.
    #[serde(default = "default_admin_bind")]
    pub bind: String,
    /// Bearer token required on every endpoint except `/healthz` and `/readyz`; required when
    /// `bind` is not a loopback address.
    #[serde(default)]
    pub token: Option<String>,
    /// Longest time one request (head and body) may take to arrive; slower clients get 408.
    #[serde(default = "default_admin_request_timeout")]
    pub request_timeout: Dur,
    /// Resolved bind address (filled by validation).
    #[serde(skip)]
    pub addr: Option<SocketAddr>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            bind: default_admin_bind(),
            token: None,
            request_timeout: default_admin_request_timeout(),
            addr: None,
        }
    }
}

fn default_admin_request_timeout() -> Dur {
    Dur::secs(10)
}

fn default_admin_bind() -> String {
    "127.0.0.1:9901".to_owned()
}

/// `[metrics]`: per-route request metrics (served on the admin listener's `/metrics`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Record per-route request metrics.
    pub enabled: bool,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig { enabled: true }
    }
}

/// What the access log does with a request's query string.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueryLogMode {
    /// Leave the query out.
    #[default]
    Strip,
    /// Keep parameter names, replace every value with `REDACTED`.
    Redact,
    /// Log the query as received.
    Keep,
}

/// `[access_log]`: one JSON line per request, written by a dedicated thread.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccessLogConfig {
    /// Write the access log.
    pub enabled: bool,
    /// `"stdout"` or a file path (appended to; reopened on SIGUSR1 for logrotate).
    pub path: String,
    /// Query string handling.
    pub query: QueryLogMode,
    /// Lines that may wait for the writer; when full, lines are dropped and counted (read at start).
    pub queue: usize,
}

impl Default for AccessLogConfig {
    fn default() -> Self {
        AccessLogConfig {
            enabled: false,
            path: "stdout".to_owned(),
            query: QueryLogMode::Strip,
            queue: 65536,
        }
    }
}

/// `[tracing]`: W3C trace context (`traceparent`/`tracestate`) propagation.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TracingConfig {
    /// Propagate (or start) a trace on every request, with the gateway's own span id.
    pub enabled: bool,
    /// Share of traces started by the gateway that are marked sampled (0.0 to 1.0).
    pub sample_ratio: f64,
    /// OTLP/HTTP collector URL (`http://host:port[/path]`, path `/v1/traces` by default):
    /// sampled requests are exported there as spans (JSON, batched, off the shards).
    pub otlp_endpoint: Option<String>,
}

impl Default for TracingConfig {
    fn default() -> Self {
        TracingConfig { enabled: true, sample_ratio: 1.0, otlp_endpoint: None }
    }
}
