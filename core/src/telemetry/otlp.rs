//! OTLP/HTTP span export: shards push finished sampled spans into a bounded lock-free queue
//! (full = dropped and counted, never waited for); one exporter thread batches them and POSTs
//! OTLP JSON to the configured collector over plain HTTP/1.1.
//!
//! Owns: the queue, the exporter thread, the endpoint (set per config generation) and the
//! export counters. Must not: block a shard, or retry without bound (a failed batch is counted
//! and dropped: spans are best effort).

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crossbeam_queue::ArrayQueue;

use super::span::{SpanRecord, encode_otlp_json};

/// Spans that may wait for the exporter.
pub const SPAN_QUEUE: usize = 8192;
/// Most spans in one POST.
const BATCH: usize = 512;
/// How long the exporter waits between batches that did not fill [`BATCH`].
const IDLE: Duration = Duration::from_millis(200);
/// Connect, write and read timeout toward the collector.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// A parsed `http://host:port/path` collector address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpEndpoint {
    /// `host:port` (port 80 when absent).
    pub authority: String,
    /// Request path; `/v1/traces` when the URL has none.
    pub path: String,
}

/// Parses an OTLP/HTTP endpoint URL (plain `http://` only).
pub fn parse_http_endpoint(url: &str) -> Result<HttpEndpoint, String> {
    let rest = url.strip_prefix("http://").ok_or("must start with http:// (TLS is not supported)")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if authority.is_empty() || authority.contains(['@', ' ', '?', '#']) {
        return Err("needs a host such as http://127.0.0.1:4318".into());
    }
    let port = match authority.strip_prefix('[') {
        Some(v6) => v6.split_once(']').map(|(_, rest)| rest.strip_prefix(':')),
        None => Some(authority.rsplit_once(':').map(|(_, p)| p)),
    };
    let authority = match port {
        None => return Err("an IPv6 host needs its closing ']'".into()),
        Some(None) => format!("{authority}:80"),
        Some(Some(p)) if p.parse::<u16>().is_ok() => authority.to_owned(),
        Some(Some(p)) => return Err(format!("port {p:?} is not a number from 0 to 65535")),
    };
    let path = if path.is_empty() || path == "/" { "/v1/traces".to_owned() } else { path.to_owned() };
    Ok(HttpEndpoint { authority, path })
}

#[derive(Debug)]
struct Inner {
    queue: ArrayQueue<SpanRecord>,
    dropped: AtomicU64,
    exported: AtomicU64,
    failed: AtomicU64,
    /// Desired endpoint (control plane only).
    endpoint: Mutex<Option<HttpEndpoint>>,
}

/// Handle to the span exporter (cheap to clone, `Send + Sync`).
#[derive(Clone, Debug)]
pub struct SpanExporter {
    inner: Arc<Inner>,
}

/// Counters for `/metrics`.
#[derive(Clone, Copy, Debug, Default)]
pub struct SpanStats {
    /// Spans the collector accepted.
    pub exported: u64,
    /// Spans dropped because the queue was full.
    pub dropped: u64,
    /// Spans lost because the collector could not be reached or refused them.
    pub failed: u64,
}

impl SpanExporter {
    /// Creates the queue and starts the exporter thread (idle until an endpoint is set).
    pub fn start() -> io::Result<SpanExporter> {
        let inner = Arc::new(Inner {
            queue: ArrayQueue::new(SPAN_QUEUE),
            dropped: AtomicU64::new(0),
            exported: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            endpoint: Mutex::new(None),
        });
        let worker = inner.clone();
        std::thread::Builder::new().name("otlp-export".into()).spawn(move || run(&worker))?;
        Ok(SpanExporter { inner })
    }

    /// Sets (or clears) the collector endpoint; spans queued meanwhile go to the new one.
    pub fn set_endpoint(&self, endpoint: Option<HttpEndpoint>) {
        *self.inner.endpoint.lock().unwrap_or_else(PoisonError::into_inner) = endpoint;
    }

    /// Queues a finished span; drops and counts it when the queue is full.
    pub fn submit(&self, span: SpanRecord) {
        if self.inner.queue.push(span).is_err() {
            self.inner.dropped.fetch_add(1, Relaxed);
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> SpanStats {
        SpanStats {
            exported: self.inner.exported.load(Relaxed),
            dropped: self.inner.dropped.load(Relaxed),
            failed: self.inner.failed.load(Relaxed),
        }
    }
}

fn run(inner: &Inner) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        while batch.len() < BATCH {
            match inner.queue.pop() {
                Some(s) => batch.push(s),
                None => break,
            }
        }
        if !batch.is_empty() {
            let endpoint = inner.endpoint.lock().unwrap_or_else(PoisonError::into_inner).clone();
            let n = batch.len() as u64;
            match endpoint {
                // Tracing export was switched off while these waited: they are simply discarded.
                None => {}
                Some(ep) => match post(&ep, &encode_otlp_json(&batch, "portcullis")) {
                    Ok(()) => {
                        inner.exported.fetch_add(n, Relaxed);
                    }
                    Err(e) => {
                        inner.failed.fetch_add(n, Relaxed);
                        tracing::warn!(endpoint = %ep.authority, error = %e, spans = n, "OTLP export failed; spans dropped");
                    }
                },
            }
            batch.clear();
        }
        if inner.queue.len() < BATCH {
            std::thread::sleep(IDLE);
        }
    }
}

/// POSTs `body` as JSON and requires a 2xx answer.
fn post(ep: &HttpEndpoint, body: &[u8]) -> io::Result<()> {
    let addr = ep
        .authority
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"))?;
    let mut s = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\nUser-Agent: portcullis\r\n\r\n",
        ep.path,
        ep.authority,
        body.len()
    );
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    let mut status = [0u8; 12];
    s.read_exact(&mut status)?;
    // "HTTP/1.1 200": the status code's first digit.
    match status.get(9) {
        Some(b'2') => Ok(()),
        _ => Err(io::Error::other(format!(
            "collector answered {:?}",
            String::from_utf8_lossy(&status[9..]).trim()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_endpoints() {
        let ep = parse_http_endpoint("http://127.0.0.1:4318").expect("valid");
        assert_eq!((ep.authority.as_str(), ep.path.as_str()), ("127.0.0.1:4318", "/v1/traces"));
        let ep = parse_http_endpoint("http://collector/otlp/v1/traces").expect("valid");
        assert_eq!((ep.authority.as_str(), ep.path.as_str()), ("collector:80", "/otlp/v1/traces"));
        let ep = parse_http_endpoint("http://[::1]:4318/").expect("valid");
        assert_eq!(ep.authority, "[::1]:4318");
        assert_eq!(parse_http_endpoint("http://[::1]").expect("valid").authority, "[::1]:80");
        for bad in ["https://x:4318", "127.0.0.1:4318", "http://", "http://h:port", "http://u@h:1"] {
            assert!(parse_http_endpoint(bad).is_err(), "{bad}");
        }
    }
}
