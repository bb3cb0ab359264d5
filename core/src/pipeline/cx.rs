//! Per-request context: what the filters and the engine learn about one request as it moves
//! through the chain (identity, route, timings, outcome).
//!
//! Owns: the per-request state record. Must not: hold shard-wide state or anything `Send`-bound.

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::client_cert::ClientCert;
use super::head::{Method, Version};
use super::identity::Identity;
use crate::telemetry::{Timings, TraceContext};

/// The context of one request, created by the engine and passed to every filter phase.
#[derive(Debug)]
pub struct Cx {
    /// Request id (from `X-Request-Id` or generated); empty until the request-id filter runs.
    pub request_id: Bytes,
    /// The peer address of the client connection.
    pub client_addr: SocketAddr,
    /// The original client IP after trusted-proxy processing (defaults to `client_addr`'s IP).
    pub client_ip: std::net::IpAddr,
    /// Whether the client connection is TLS (drives `X-Forwarded-Proto`).
    pub tls: bool,
    /// Protocol the client spoke.
    pub version: Version,
    /// Index of the matched route in the running config, if any.
    pub route: Option<usize>,
    /// When the request head was complete.
    pub started: Instant,
    /// How many filters had their request phase entered (their response phase runs).
    pub entered: usize,
    /// The upstream endpoint used, once chosen.
    pub upstream_addr: Option<SocketAddr>,
    /// Final status sent to the client.
    pub status: u16,
    /// Error code when the gateway answered itself.
    pub error_code: Option<&'static str>,
    /// Request body bytes received from the client.
    pub bytes_in: u64,
    /// Response body bytes sent to the client.
    pub bytes_out: u64,
    /// The authenticated consumer, when an authentication filter set one.
    pub consumer: Option<Bytes>,
    /// The consumer's tier (it picks per-tier rate limits), when authentication set one.
    pub tier: Option<Rc<str>>,
    /// The authenticated identity, when an authentication filter accepted a credential.
    pub identity: Option<Rc<Identity>>,
    /// The tightest rate limit that applied, for the `RateLimit` response headers.
    pub rate_limit: Option<RateLimitInfo>,
    /// The verified client certificate, on mTLS connections that presented one.
    pub client_cert: Option<Rc<ClientCert>>,
    /// `Alt-Svc` the engine sets on the response (the listener advertises HTTP/3).
    pub alt_svc: Option<Bytes>,
    /// Request method as received (set by the engine before the chain runs).
    pub method: Method,
    /// Request path as received, before any rewrite (set by the engine; a cheap `Bytes` clone).
    pub path: Bytes,
    /// Query as received, without the `?` (set by the engine).
    pub query: Option<Bytes>,
    /// How long the upstream took from the request being sent to its response head arriving.
    pub upstream_time: Option<Duration>,
    /// When the first upstream attempt began ([`Cx::upstream_attempt`]).
    pub upstream_began: Option<Instant>,
    /// When the response head used arrived from the upstream ([`Cx::upstream_answered`]).
    pub upstream_answered: Option<Instant>,
    /// When the response head was handed to the client while its body went on after it; `None`
    /// when it went out with the whole response (the log phase's clock read then times it).
    pub head_sent: Option<Instant>,
    /// W3C trace ids, when the tracing filter ran.
    pub trace: Option<TraceContext>,
    /// TLS protocol version of the client connection (e.g. `"TLSv1.3"`), when TLS.
    pub tls_version: Option<&'static str>,
    /// The protocol an HTTP/1.1 client asked to switch to (`Upgrade: websocket`): forwarded to
    /// the upstream, and a `101` answer turns the exchange into a two-way byte tunnel.
    pub upgrade: Option<Bytes>,
    /// The request's `Origin`, when a CORS policy allows it (the CORS filter's response phase
    /// answers it).
    pub cors_origin: Option<Bytes>,
}

/// What the rate-limit filter learned about a request, for its response phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimitInfo {
    /// Index of the limit within the filter that set it.
    pub policy: u32,
    /// Requests still allowed right now.
    pub remaining: u64,
    /// Seconds until the limit is fully replenished.
    pub reset_secs: u64,
}

impl Cx {
    /// A fresh context for a request from `client_addr`.
    pub fn new(client_addr: SocketAddr, tls: bool, version: Version) -> Cx {
        Cx {
            request_id: Bytes::new(),
            client_addr,
            client_ip: client_addr.ip(),
            tls,
            version,
            route: None,
            started: Instant::now(),
            entered: 0,
            upstream_addr: None,
            status: 0,
            error_code: None,
            bytes_in: 0,
            bytes_out: 0,
            consumer: None,
            tier: None,
            method: Method::Get,
            path: Bytes::new(),
            query: None,
            upstream_time: None,
            upstream_began: None,
            upstream_answered: None,
            head_sent: None,
            trace: None,
            tls_version: None,
            identity: None,
            rate_limit: None,
            client_cert: None,
            alt_svc: None,
            upgrade: None,
            cors_origin: None,
        }
    }

    /// Notes an upstream attempt starting at `at` (a clock read the engine already took); only
    /// the first one counts: retries, back-off and reconnects are upstream wait.
    #[inline]
    pub fn upstream_attempt(&mut self, at: Instant) {
        self.upstream_began.get_or_insert(at);
    }

    /// Notes the upstream's response head arriving for the attempt sent at `sent_at`: sets
    /// [`Cx::upstream_time`] from the one clock read this takes.
    #[inline]
    pub fn upstream_answered(&mut self, sent_at: Instant) {
        let now = Instant::now();
        self.upstream_time = Some(now.saturating_duration_since(sent_at));
        self.upstream_answered = Some(now);
    }

    /// The gateway's own added time, `now` being the log phase's clock read right after the
    /// response; `None` for an exchange that became a tunnel (`101`: no head-written time).
    #[inline]
    pub fn added_time(&self, now: Instant) -> Option<Duration> {
        (self.status != 101).then(|| {
            Timings {
                started: self.started,
                upstream_began: self.upstream_began,
                upstream_answered: self.upstream_answered,
                head_sent: self.head_sent,
            }
            .added(now)
        })
    }
}
