//! The configuration model: what a `gateway.toml` may say, with defaults.
//!
//! Owns: the serde shape of every config section and its defaults. Must not: validate across
//! sections (that is `validate.rs`) or touch the network or the file system.
//! Every key here is documented in `docs/config.md`; keep the two in step.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::Deserialize;

use super::model_auth::{AuthConfig, AuthMode, RouteAuthz};
use super::model_h2::Http2Config;
use super::model_obs::{AccessLogConfig, AdminConfig, MetricsConfig, TracingConfig};
use super::model_quic::ListenerHttp3Config;
use super::model_ratelimit::RateLimitConfig;
use super::model_tls::ListenerTlsConfig;
use super::units::{Dur, Size};

/// The whole configuration file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Process-wide runtime settings.
    #[serde(default)]
    pub server: ServerConfig,
    /// Listening sockets (at least one).
    #[serde(default)]
    pub listeners: Vec<ListenerConfig>,
    /// Downstream HTTP limits and timeouts.
    #[serde(default)]
    pub http: HttpConfig,
    /// Downstream HTTP/2 limits and flood defences.
    #[serde(default)]
    pub http2: Http2Config,
    /// Request id filter.
    #[serde(default)]
    pub request_id: RequestIdConfig,
    /// Forwarding headers filter.
    #[serde(default)]
    pub forwarded: ForwardedConfig,
    /// Named upstream services.
    #[serde(default)]
    pub upstreams: Vec<UpstreamConfig>,
    /// Routes, matched by host, path, method and headers.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// Admin API listener; absent = no admin API.
    #[serde(default)]
    pub admin: Option<AdminConfig>,
    /// Request metrics.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// Access log.
    #[serde(default)]
    pub access_log: AccessLogConfig,
    /// W3C trace context.
    #[serde(default)]
    pub tracing: TracingConfig,
    /// Authentication (JWT issuers, API keys) and identity hand-off.
    #[serde(default)]
    pub auth: AuthConfig,
    /// Rate limiting: named limits and Redis reconciliation.
    #[serde(default)]
    pub ratelimit: RateLimitConfig,
    /// CORS for every route (a route's `cors` overrides it).
    #[serde(default)]
    pub cors: Option<super::model_cors::CorsConfig>,
    /// Edits on every response toward the client (internal headers stripped).
    #[serde(default)]
    pub response: super::model_cors::ResponseConfig,
}

/// Which io driver a shard runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriverMode {
    /// io_uring when the kernel allows it, else epoll with a loud warning.
    #[default]
    Auto,
    /// io_uring or refuse to start.
    IoUring,
    /// epoll always.
    Epoll,
}

/// `[server]`: shards, pinning, driver, draining, config watching.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Number of shards (threads); 0 = one per available CPU.
    pub shards: usize,
    /// Pin shard N to the N-th allowed CPU.
    pub pin_cpus: bool,
    /// io driver choice.
    pub driver: DriverMode,
    /// io_uring submission queue entries per shard.
    pub ring_entries: u32,
    /// How long SIGTERM waits for in-flight requests.
    pub drain_timeout: Dur,
    /// Re-read the config file when it changes (SIGHUP always re-reads).
    pub watch_config: bool,
    /// How often the config file is checked for changes.
    pub watch_interval: Dur,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            shards: 0,
            pin_cpus: true,
            driver: DriverMode::Auto,
            ring_entries: 1024,
            drain_timeout: Dur::secs(10),
            watch_config: true,
            watch_interval: Dur::secs(1),
        }
    }
}

/// `[[listeners]]`: one TCP listening address, bound by every shard with SO_REUSEPORT.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// Name used in logs and metrics.
    #[serde(default = "default_listener_name")]
    pub name: String,
    /// Address to bind, e.g. `"0.0.0.0:8080"` (port 0 picks a free port, printed at start).
    pub bind: String,
    /// Listen backlog.
    #[serde(default = "default_backlog")]
    pub backlog: u32,
    /// Terminate TLS on this listener.
    #[serde(default)]
    pub tls: Option<ListenerTlsConfig>,
    /// Serve HTTP/3 over QUIC on the same port (UDP).
    #[serde(default)]
    pub http3: Option<ListenerHttp3Config>,
    /// Accept cleartext HTTP/2 with prior knowledge (besides HTTP/1.1) on a plain listener.
    #[serde(default)]
    pub h2c: bool,
    /// Resolved bind address (filled by validation).
    #[serde(skip)]
    pub addr: Option<SocketAddr>,
}

fn default_listener_name() -> String {
    "default".to_owned()
}

fn default_backlog() -> u32 {
    1024
}

/// `[http]`: downstream HTTP/1.1 limits and timeouts.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Largest request head (request line + headers); larger gets 431.
    pub max_header_bytes: Size,
    /// Most header fields in a request; more gets 431.
    pub max_headers: usize,
    /// Time allowed from the first byte of a request to its complete head; slower gets 408.
    pub header_timeout: Dur,
    /// An idle keep-alive connection is closed after this long.
    pub idle_timeout: Dur,
    /// Default request body limit for routes that set none; larger gets 413.
    pub max_body_bytes: Size,
    /// Longest pause while reading or writing a body before the exchange is aborted.
    pub body_timeout: Dur,
    /// Most requests served on one client connection (0 = unlimited).
    pub max_requests_per_connection: u64,
    /// A WebSocket tunnel with no bytes in either direction for this long is closed.
    pub websocket_idle_timeout: Dur,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_header_bytes: Size(16 * 1024),
            max_headers: 100,
            header_timeout: Dur::secs(10),
            idle_timeout: Dur::secs(60),
            max_body_bytes: Size(100 * 1024 * 1024),
            body_timeout: Dur::secs(60),
            max_requests_per_connection: 0,
            websocket_idle_timeout: Dur::secs(300),
        }
    }
}

/// `[request_id]`: propagate or generate a request id.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RequestIdConfig {
    /// Header carrying the id (to the upstream, and back to the client).
    pub header: String,
    /// Generate an id when the client sent none.
    pub generate: bool,
    /// Longest accepted incoming id; longer ones are replaced by a generated id.
    pub max_length: usize,
    /// Echo the id in the response to the client.
    pub echo: bool,
}

impl Default for RequestIdConfig {
    fn default() -> Self {
        RequestIdConfig { header: "x-request-id".to_owned(), generate: true, max_length: 128, echo: true }
    }
}

/// Which forwarding headers the gateway writes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ForwardedMode {
    /// `X-Forwarded-For`, `X-Forwarded-Proto`, `X-Forwarded-Host`.
    #[default]
    XForwarded,
    /// RFC 7239 `Forwarded`.
    Forwarded,
    /// Neither (incoming ones are still removed unless the peer is trusted).
    None,
}

/// `[forwarded]`: forwarding headers and which peers may set them.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ForwardedConfig {
    /// Header style to write.
    pub mode: ForwardedMode,
    /// Peers (CIDRs or addresses) whose incoming forwarding headers are kept and extended.
    pub trusted_proxies: Vec<String>,
}

/// `[[upstreams]]`: a named service with static endpoints.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Name routes refer to.
    pub name: String,
    /// `host:port` endpoints, optionally weighted (resolved once at load).
    #[serde(default)]
    pub endpoints: Vec<super::model_upstream::Endpoint>,
    /// Load-balancing policy.
    #[serde(default)]
    pub lb: super::model_upstream::LbPolicy,
    /// Consistent-hash key: `"client_ip"` or `"header:<name>"`.
    #[serde(default)]
    pub hash_on: Option<String>,
    /// Passive outlier detection.
    #[serde(default)]
    pub outlier: super::model_upstream::OutlierConfig,
    /// Circuit breaking.
    #[serde(default)]
    pub circuit: super::model_upstream::CircuitConfig,
    /// TCP connect timeout.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: Dur,
    /// Per-shard connection pool.
    #[serde(default)]
    pub pool: PoolConfig,
    /// Active health checks (off when absent).
    #[serde(default)]
    pub health_check: Option<super::model_health::HealthCheckConfig>,
    /// A file listing more endpoints (one `host:port [weight=N]` per line), watched for changes.
    #[serde(default)]
    pub endpoints_file: Option<std::path::PathBuf>,
    /// Request header carrying the remaining deadline in milliseconds to the upstream
    /// (`grpc-timeout` instead for gRPC requests); none when unset.
    #[serde(default)]
    pub deadline_header: Option<String>,
    /// TLS toward the endpoints (absent = plain TCP).
    #[serde(default)]
    pub tls: Option<super::model_edge::UpstreamTlsConfig>,
    /// More endpoints found by DNS, re-resolved on TTL (off when absent).
    #[serde(default)]
    pub dns: Option<super::model_dns::DnsConfig>,
    /// Wire protocol toward the endpoints: HTTP/1.1, HTTP/2 over TLS, or cleartext HTTP/2.
    #[serde(default)]
    pub protocol: super::model_protocol::UpstreamProtocol,
    /// Resolved endpoint addresses (filled by validation).
    #[serde(skip)]
    pub addrs: Vec<SocketAddr>,
    /// Weight of each resolved address, parallel to `addrs` (filled by validation).
    #[serde(skip)]
    pub weights: Vec<u32>,
    /// Resolved `(address, weight)` pairs read from `endpoints_file` at load (filled by validation).
    #[serde(skip)]
    pub file_addrs: Vec<(SocketAddr, u32)>,
}

fn default_connect_timeout() -> Dur {
    Dur::secs(2)
}

/// `[upstreams.pool]`: keep-alive connection pool, per shard and endpoint.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PoolConfig {
    /// Idle connections kept per endpoint per shard.
    pub max_idle_per_endpoint: usize,
    /// Idle connections older than this are closed.
    pub idle_timeout: Dur,
    /// Requests after which an upstream connection is retired (0 = unlimited).
    pub max_requests_per_connection: u64,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            max_idle_per_endpoint: 1024,
            idle_timeout: Dur::secs(60),
            max_requests_per_connection: 0,
        }
    }
}

/// A header condition on a route.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderMatch {
    /// Header name (case-insensitive).
    pub name: String,
    /// Required exact value; absent = the header must merely be present.
    #[serde(default)]
    pub value: Option<String>,
}

/// Header edits, applied in the order remove, set, add.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HeaderOps {
    /// Names to remove.
    pub remove: Vec<String>,
    /// Names to set, replacing any existing value.
    pub set: BTreeMap<String, String>,
    /// Names to append, keeping existing values.
    pub add: BTreeMap<String, String>,
}

impl HeaderOps {
    /// True when there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.set.is_empty() && self.add.is_empty()
    }
}

/// `[[routes]]`: a match and where matching requests go.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Name used in logs and metrics (defaults to `route-N`).
    #[serde(default)]
    pub name: Option<String>,
    /// Hosts: exact (`api.example.com`) or wildcard (`*.example.com`); empty = any host.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Exact path (`/health`) or template (`/users/{id}`); exclusive with `prefix`.
    #[serde(default)]
    pub path: Option<String>,
    /// Path prefix on segment boundaries (`/api` matches `/api` and `/api/x`, not `/apix`).
    #[serde(default)]
    pub prefix: Option<String>,
    /// Allowed methods; empty = any.
    #[serde(default)]
    pub methods: Vec<String>,
    /// Header conditions; all must hold.
    #[serde(default)]
    pub headers: Vec<HeaderMatch>,
    /// Higher wins over any more specific match; equal priorities fall back to specificity.
    #[serde(default)]
    pub priority: i32,
    /// Upstream service name.
    pub upstream: String,
    /// Total time for the upstream to answer (response head).
    #[serde(default = "default_route_timeout")]
    pub timeout: Dur,
    /// Time for one attempt to answer; a timed-out attempt is retried when retries allow
    /// (`timeout` still bounds the whole request). Unset: one attempt may use all of `timeout`.
    #[serde(default)]
    pub try_timeout: Option<Dur>,
    /// Retries toward other endpoints.
    #[serde(default)]
    pub retry: super::model_upstream::RetryConfig,
    /// Request body limit; absent = `http.max_body_bytes`.
    #[serde(default)]
    pub max_body_bytes: Option<Size>,
    /// Replace the matched `prefix` with this before forwarding (prefix routes only).
    #[serde(default)]
    pub rewrite_prefix: Option<String>,
    /// Header edits on the request toward the upstream.
    #[serde(default)]
    pub request_headers: HeaderOps,
    /// Header edits on the response toward the client.
    #[serde(default)]
    pub response_headers: HeaderOps,
    /// Whether a credential is needed; absent = `required` when `[auth]` configures any.
    #[serde(default)]
    pub auth: Option<AuthMode>,
    /// What the authenticated identity needs (scopes, roles, claims).
    #[serde(default)]
    pub authz: RouteAuthz,
    /// Names of `[ratelimit.limits]` applied to this route (all must pass).
    #[serde(default)]
    pub rate_limits: Vec<String>,
    /// Answer 403 unless the client presented a verified certificate (mTLS listener).
    #[serde(default)]
    pub require_client_cert: bool,
    /// This route's CORS policy, replacing `[cors]` (`{ enabled = false }` turns it off).
    #[serde(default)]
    pub cors: Option<super::model_cors::CorsConfig>,
}

fn default_route_timeout() -> Dur {
    Dur::secs(30)
}

impl RouteConfig {
    /// The route's display name: `name`, or `route-<index>`.
    pub fn display_name(&self, index: usize) -> String {
        self.name.clone().unwrap_or_else(|| format!("route-{index}"))
    }
}

impl Config {
    /// Files besides the config file whose change triggers a reload (certificates, keys).
    pub fn watched_files(&self) -> Vec<std::path::PathBuf> {
        let tls = self.listeners.iter().filter_map(|l| l.tls.as_ref());
        tls.flat_map(|t| t.files().map(std::path::PathBuf::from)).collect()
    }
}
