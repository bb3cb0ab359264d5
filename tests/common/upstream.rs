//! Real upstream servers for the tests: a std `TcpListener` on an ephemeral port, one thread per
//! connection, keep-alive, counters of accepted connections and requests, and a record of every
//! request seen. What each request gets back is decided by a handler returning a [`Reply`].

use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::wire::{Digest, Framing, Pattern, PatternCheck, Wire, framing_of, header, parse_head};

/// Request bodies longer than this are counted and digested but not stored.
pub const STORE_CAP: usize = 1 << 20;

/// One request as the upstream received it.
#[derive(Clone, Debug)]
pub struct Req {
    /// Method token.
    pub method: String,
    /// Request target exactly as sent (path and query).
    pub target: String,
    /// `HTTP/1.1` or `HTTP/1.0`.
    pub version: String,
    /// Fields in order, names with their original casing.
    pub headers: Vec<(String, String)>,
    /// The head bytes exactly as received.
    pub raw_head: Vec<u8>,
    /// The body (first [`STORE_CAP`] bytes).
    pub body: Vec<u8>,
    /// `(length, digest)` of the whole body. When the request carried `X-Pattern-Seed: N` the
    /// body is checked against [`Pattern`] `N` instead and the digest is 0.
    pub body_digest: (u64, u64),
    /// With `X-Pattern-Seed`: offset of the first byte that differed from the pattern, if any.
    pub pattern_mismatch: Option<u64>,
    /// The body arrived chunked.
    pub chunked: bool,
    /// Raw trailer section of a chunked body.
    pub trailers: Vec<u8>,
    /// Index of the upstream connection it came on (accept order, from 0).
    pub conn: usize,
}

impl Req {
    /// First value of a field.
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// Every value of a field.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
    }

    /// The path part of the target.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }
}

/// What the upstream does with a request.
#[derive(Clone, Debug)]
pub enum Reply {
    /// Write these exact bytes (a whole response) and keep the connection for the next request.
    Raw(Vec<u8>),
    /// Write these exact bytes, then close the connection.
    RawThenClose(Vec<u8>),
    /// Close the connection without answering.
    Close,
    /// Wait, then do the inner reply.
    Delay(Duration, Box<Reply>),
    /// 200 with a chunked body: `len` bytes of [`Pattern`] `seed`, chunk sizes varying up to
    /// `max_chunk`.
    Chunked { len: u64, seed: u64, max_chunk: usize },
    /// 200 with `Content-Length: len` and `len` bytes of [`Pattern`] `seed`.
    Sized { len: u64, seed: u64 },
}

/// Decides the reply to each request.
pub type Handler = dyn Fn(&Req) -> Reply + Send + Sync;

struct Shared {
    accepted: AtomicUsize,
    requests: AtomicUsize,
    seen: Mutex<Vec<Req>>,
    stop: AtomicBool,
    /// A handle on every accepted connection, so [`Upstream::kill`] can close them.
    conns: Mutex<Vec<TcpStream>>,
}

/// A running upstream server; stops accepting when dropped.
pub struct Upstream {
    /// Where it listens.
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Upstream {
    /// Starts a server answering each request with `handler`.
    pub fn start(handler: impl Fn(&Req) -> Reply + Send + Sync + 'static) -> Upstream {
        Upstream::start_on(TcpListener::bind("127.0.0.1:0").expect("bind an upstream port"), handler)
    }

    /// Starts a server on an already bound `listener` (a chosen address) answering with `handler`.
    pub fn start_on(
        listener: TcpListener,
        handler: impl Fn(&Req) -> Reply + Send + Sync + 'static,
    ) -> Upstream {
        let addr = listener.local_addr().expect("upstream address");
        let shared = Arc::new(Shared {
            accepted: AtomicUsize::new(0),
            requests: AtomicUsize::new(0),
            seen: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            conns: Mutex::new(Vec::new()),
        });
        let handler: Arc<Handler> = Arc::new(handler);
        let sh = shared.clone();
        std::thread::Builder::new()
            .name(format!("upstream-{addr}"))
            .spawn(move || {
                for stream in listener.incoming() {
                    if sh.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    if let Ok(handle) = stream.try_clone() {
                        sh.conns.lock().expect("conns lock").push(handle);
                    }
                    let idx = sh.accepted.fetch_add(1, Ordering::SeqCst);
                    let (sh, handler) = (sh.clone(), handler.clone());
                    let _ = std::thread::Builder::new()
                        .name(format!("upstream-conn-{idx}"))
                        .spawn(move || serve(stream, idx, &sh, &*handler));
                }
            })
            .expect("spawn the upstream accept thread");
        Upstream { addr, shared }
    }

    /// Echo server: answers 200 with a JSON description of the request (see [`echo_json`]),
    /// and an `X-Upstream: <name>` field.
    pub fn echo(name: &str) -> Upstream {
        let name = name.to_owned();
        Upstream::start(move |req| echo_reply(&name, req))
    }

    /// Answers every request with `status` and a text body.
    pub fn fixed(status: u16, body: &str) -> Upstream {
        let resp = response(status, "Whatever", &[("Content-Type", "text/plain")], body.as_bytes());
        Upstream::start(move |_| Reply::Raw(resp.clone()))
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Complete request heads received so far.
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Every request seen so far (bodies complete).
    pub fn seen(&self) -> Vec<Req> {
        self.shared.seen.lock().expect("seen lock").clone()
    }

    /// The most recent request seen.
    pub fn last(&self) -> Req {
        self.seen().pop().expect("the upstream has seen no request")
    }

    /// Waits until `requests() >= n` (polling, bounded by `timeout`).
    pub fn wait_requests(&self, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.requests() < n {
            assert!(
                Instant::now() < deadline,
                "upstream saw {} requests, expected {n} within {timeout:?}",
                self.requests()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Upstream {
    /// Dies like a crashed process: stops listening (new connects are refused) and resets every
    /// open connection, including those with a request in progress.
    pub fn kill(&self) {
        self.stop();
        for c in self.shared.conns.lock().expect("conns lock").drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }

    fn stop(&self) {
        if !self.shared.stop.swap(true, Ordering::SeqCst) {
            // Wake the accept loop so it sees the flag (it then drops the listener).
            let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Builds a complete response with `Content-Length`.
pub fn response(status: u16, reason: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status} {reason}\r\n").into_bytes();
    for (n, v) in headers {
        out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
    }
    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
    out
}

/// The JSON an echo upstream answers with.
pub fn echo_json(name: &str, req: &Req) -> serde_json::Value {
    serde_json::json!({
        "upstream": name,
        "method": req.method,
        "target": req.target,
        "version": req.version,
        "headers": req.headers.iter().map(|(n, v)| [n.clone(), v.clone()]).collect::<Vec<_>>(),
        "body": String::from_utf8_lossy(&req.body),
        "body_len": req.body_digest.0,
        "body_hash": req.body_digest.1.to_string(),
        "chunked": req.chunked,
    })
}

/// The echo reply for `req`.
pub fn echo_reply(name: &str, req: &Req) -> Reply {
    let body = serde_json::to_vec(&echo_json(name, req)).expect("serialise echo");
    Reply::Raw(response(200, "OK", &[("Content-Type", "application/json"), ("X-Upstream", name)], &body))
}

fn serve(stream: TcpStream, conn: usize, shared: &Shared, handler: &Handler) {
    let _ = stream.set_nodelay(true);
    let Ok(read_half) = stream.try_clone() else { return };
    let mut wire = Wire::new(read_half);
    let mut out = stream;
    loop {
        let raw_head = match wire.read_head() {
            Ok(Some(h)) => h,
            Ok(None) | Err(_) => return,
        };
        let Ok(head) = parse_head(&raw_head) else { return };
        let mut parts = head.start_line.splitn(3, ' ');
        let method = parts.next().unwrap_or_default().to_owned();
        let target = parts.next().unwrap_or_default().to_owned();
        let version = parts.next().unwrap_or_default().to_owned();
        shared.requests.fetch_add(1, Ordering::SeqCst);
        let Ok(framing) = framing_of(&head.headers, Framing::None) else { return };
        let mut body = Vec::new();
        let mut digest = Digest::default();
        let mut check =
            header(&head.headers, "x-pattern-seed").and_then(|s| s.parse().ok()).map(PatternCheck::new);
        let trailers = match wire.read_body(framing, &mut |data| {
            match &mut check {
                Some(c) => c.update(data),
                None => digest.update(data),
            }
            let room = STORE_CAP.saturating_sub(body.len()).min(data.len());
            body.extend_from_slice(&data[..room]);
        }) {
            Ok(t) => t,
            Err(_) => return,
        };
        let req = Req {
            method,
            target,
            version,
            headers: head.headers,
            raw_head,
            body,
            body_digest: match &check {
                Some(c) => (c.len(), 0),
                None => digest.finish(),
            },
            pattern_mismatch: check.as_ref().and_then(PatternCheck::first_mismatch),
            chunked: framing == Framing::Chunked,
            trailers,
            conn,
        };
        let reply = handler(&req);
        shared.seen.lock().expect("seen lock").push(req);
        if !perform(&mut out, reply) {
            let _ = out.shutdown(Shutdown::Both);
            return;
        }
    }
}

/// Carries out a reply; returns whether the connection stays open.
fn perform(out: &mut TcpStream, reply: Reply) -> bool {
    match reply {
        Reply::Raw(bytes) => out.write_all(&bytes).is_ok(),
        Reply::RawThenClose(bytes) => {
            let _ = out.write_all(&bytes);
            false
        }
        Reply::Close => false,
        Reply::Delay(d, inner) => {
            std::thread::sleep(d);
            perform(out, *inner)
        }
        Reply::Sized { len, seed } => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {len}\r\n\r\n"
            );
            if out.write_all(head.as_bytes()).is_err() {
                return false;
            }
            let mut pattern = Pattern::new(seed);
            let mut buf = vec![0u8; 128 * 1024];
            let mut left = len;
            while left > 0 {
                let n = usize::try_from(left.min(buf.len() as u64)).expect("fits");
                pattern.fill(&mut buf[..n]);
                if out.write_all(&buf[..n]).is_err() {
                    return false;
                }
                left -= n as u64;
            }
            true
        }
        Reply::Chunked { len, seed, max_chunk } => {
            let head = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
            if out.write_all(head.as_bytes()).is_err() {
                return false;
            }
            let mut pattern = Pattern::new(seed);
            let mut buf = Vec::with_capacity(max_chunk + 32);
            let mut left = len;
            let mut i: u64 = 0;
            while left > 0 {
                // Sizes cycle through small, odd and maximal chunks.
                let size = match i % 4 {
                    0 => 1,
                    1 => max_chunk / 3 + 7,
                    2 => max_chunk,
                    _ => 4093,
                }
                .min(max_chunk) as u64;
                let n = usize::try_from(size.min(left)).expect("fits");
                buf.clear();
                buf.extend_from_slice(format!("{n:x}\r\n").as_bytes());
                let at = buf.len();
                buf.resize(at + n, 0);
                pattern.fill(&mut buf[at..]);
                buf.extend_from_slice(b"\r\n");
                if out.write_all(&buf).is_err() {
                    return false;
                }
                left -= n as u64;
                i += 1;
            }
            out.write_all(b"0\r\n\r\n").is_ok()
        }
    }
}

/// The `endpoints = [...]` value listing `ups`' addresses.
pub fn endpoint_list(ups: &[&Upstream]) -> String {
    ups.iter().map(|u| format!("\"{}\"", u.addr)).collect::<Vec<_>>().join(", ")
}

/// An address that refuses connections for the rest of the test process: a TCP socket bound
/// to it that never listens (so a connect gets RST) and is kept open, so no other socket (not
/// even an outgoing connection's ephemeral port, which could self-connect) can take the port.
pub fn closed_port() -> SocketAddr {
    // SAFETY: plain socket calls on a fresh descriptor with correctly sized sockaddr_in buffers;
    // the descriptor is deliberately never closed.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket");
        let mut sa: libc::sockaddr_in = std::mem::zeroed();
        sa.sin_family = libc::AF_INET as libc::sa_family_t;
        sa.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        assert_eq!(libc::bind(fd, (&raw const sa).cast(), len), 0, "bind");
        let mut got: libc::sockaddr_in = std::mem::zeroed();
        let mut got_len = len;
        assert_eq!(libc::getsockname(fd, (&raw mut got).cast(), &mut got_len), 0, "getsockname");
        SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, u16::from_be(got.sin_port)))
    }
}
