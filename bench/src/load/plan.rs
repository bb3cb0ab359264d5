//! What every connection of one load run shares, read-only: the target, the request (encoded
//! HTTP/1.1 bytes or the HTTP/2 / HTTP/3 template), the shape of the run and its instants.
//! Owns no socket and no clock; depends on no other module of the generator.

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

/// Everything every connection of a run shares (read-only).
#[derive(Debug, Clone)]
pub struct Plan {
    /// Target address.
    pub addr: SocketAddr,
    /// HTTP/1.1: one encoded request.
    pub request: Vec<u8>,
    /// HTTP/2 and HTTP/3: the request every stream sends (absolute URI and extra headers).
    pub template: RequestTemplate,
    /// HTTP/1.1: requests in flight per connection (closed loop).
    pub pipeline: usize,
    /// HTTP/2 and HTTP/3: concurrent streams per connection.
    pub streams: usize,
    /// TLS settings (HTTP/2 over TLS, HTTP/3); `None` = cleartext.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// HTTP/3 client settings (built from `tls`).
    pub quic: Option<Arc<quinn::ClientConfig>>,
    /// Name the server is verified as (host part of the URL).
    pub server_name: String,
    /// Connect timeout and per-response timeout.
    pub timeout: Duration,
    /// Open loop: total offered rate; `None` = closed loop.
    pub rate: Option<f64>,
    /// Connections in the whole run (all threads).
    pub conns: usize,
    /// Sending starts here (after every connection had a chance to connect).
    pub begin: Instant,
    /// End of the warm-up: requests sent (or intended) from here on are measured.
    pub measure_from: Instant,
    /// No request is sent (or intended) from here on.
    pub end: Instant,
}

/// The HTTP/2 and HTTP/3 request: built anew per request (`http::Request` is not `Clone`).
#[derive(Debug, Clone)]
pub struct RequestTemplate {
    /// `scheme://authority/path`.
    pub uri: http::Uri,
    /// Extra header fields.
    pub headers: http::HeaderMap,
}

impl RequestTemplate {
    /// A fresh copy of the request.
    pub fn build(&self) -> http::Request<()> {
        let mut req = http::Request::new(());
        *req.uri_mut() = self.uri.clone();
        *req.headers_mut() = self.headers.clone();
        req
    }
}
