//! The reference upstream: one (optionally pinned) monoio thread answering every request with a
//! fixed `200 OK`, as cheaply as it can: HTTP/1.1 (keep-alive and pipelining included) and, when
//! a connection starts with the HTTP/2 preface, HTTP/2 cleartext (`upstream_h2`); with `--h3`,
//! HTTP/3 on the same port number (`upstream_h3`). Owns the TCP accept loop and HTTP/1.1 serving.

use std::{net::SocketAddr, rc::Rc, time::Duration};

use anyhow::{Context, Result};
use monoio::{
    buf::IoBufMut,
    io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt},
    net::{ListenerOpts, TcpListener, TcpStream},
};

use crate::{
    delay::Delay,
    h1::{Canned, Framer, MAX_HEAD},
    ring::{self, RingMode},
    sys, upstream_h2, upstream_h3,
};

/// Receive buffer size a connection starts with; it grows (to fit one head) only when needed.
const INITIAL_BUF: usize = 16 * 1024;

/// Settings of the `upstream` subcommand.
#[derive(Debug, Clone)]
pub struct UpstreamOpts {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Response body size in bytes.
    pub body_size: usize,
    /// CPU to pin the thread to.
    pub cpu: Option<usize>,
    /// io_uring setup flags to ask for.
    pub ring: RingMode,
    /// Listen backlog.
    pub backlog: i32,
    /// Delay before each batch of responses (monoio timer: 1 ms resolution).
    pub delay: Delay,
    /// Also serve HTTP/3 on the same port number (UDP).
    pub h3: bool,
}

/// Runs the upstream until the process is killed.
pub fn run(opts: &UpstreamOpts) -> Result<()> {
    if let Some(cpu) = opts.cpu {
        sys::pin(cpu)?;
    }
    let nofile = sys::raise_nofile()?;
    let (mut rt, flags) = ring::build(opts.ring)?;
    let canned = Rc::new(Canned::new(opts.body_size));
    rt.block_on(async move {
        // No SO_REUSEPORT: a stale upstream on the same port must make this fail, not share.
        let lopts = ListenerOpts::new().reuse_port(false).backlog(opts.backlog);
        let listener = TcpListener::bind_with_config(opts.listen, &lopts)
            .with_context(|| format!("binding {}", opts.listen))?;
        eprintln!(
            "portcullis-bench upstream listening on {} (ring: {flags}, body: {} B, cpu: {}, nofile: {nofile}, delay: {:?}..{:?})",
            opts.listen,
            opts.body_size,
            opts.cpu.map_or_else(|| "any".to_owned(), |c| c.to_string()),
            opts.delay.min,
            opts.delay.max.max(opts.delay.min),
        );
        if opts.h3 {
            let h3 = upstream_h3::bind(opts.listen)?;
            eprintln!("portcullis-bench upstream h3 listening on {} (udp, self-signed)", opts.listen);
            monoio::spawn(upstream_h3::serve(h3, canned.clone(), opts.delay));
        }
        accept_loop(listener, canned, opts.delay).await
    })
}

async fn accept_loop(listener: TcpListener, canned: Rc<Canned>, delay: Delay) -> Result<()> {
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    loop {
        match listener.accept().await {
            Ok((stream, _peer)) => {
                // Responses leave in one write per batch: Nagle would only add delay.
                let _ = stream.set_nodelay(true);
                seed = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
                monoio::spawn(serve(stream, canned.clone(), delay, seed | 1));
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning on the error.
                eprintln!("accept failed: {e}");
                monoio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Reads more bytes into `buf`; `false` when the peer closed or the read failed.
async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    if buf.len() == buf.capacity() {
        buf.reserve(INITIAL_BUF);
    }
    let len = buf.len();
    let (res, slice) = stream.read(std::mem::take(buf).slice_mut(len..)).await;
    *buf = slice.into_inner();
    matches!(res, Ok(n) if n > 0)
}

/// Serves one connection: HTTP/2 if it starts with the preface (prior knowledge), else HTTP/1.1.
async fn serve(mut stream: TcpStream, canned: Rc<Canned>, delay: Delay, rng: u64) {
    let preface = portcullis_http::h2::PREFACE;
    let mut buf: Vec<u8> = Vec::with_capacity(INITIAL_BUF);
    // Read until the bytes either are, or can no longer become, the preface.
    while buf.len() < preface.len() && preface.starts_with(&buf) {
        if !read_more(&mut stream, &mut buf).await {
            return;
        }
    }
    if buf.starts_with(preface) {
        let io = portcullis_http::h2::Prefixed::new(buf[..].into(), stream);
        upstream_h2::serve(io, canned, delay, rng).await;
    } else {
        serve_h1(stream, buf, canned, delay, rng).await;
    }
}

/// Serves HTTP/1.1 (starting with the bytes in `buf`) until the peer closes the connection,
/// sends garbage or asks to close.
async fn serve_h1(mut stream: TcpStream, mut buf: Vec<u8>, canned: Rc<Canned>, delay: Delay, mut rng: u64) {
    let mut out: Vec<u8> = Vec::with_capacity(4096);
    let mut framer = Framer::default();
    // Bytes read while sniffing for the HTTP/2 preface are framed before the first read.
    let mut unread = !buf.is_empty();
    loop {
        if !std::mem::take(&mut unread) {
            if buf.len() == buf.capacity() {
                // Only a partial head fills the buffer (bodies are consumed as they arrive),
                // and the framer refuses heads above MAX_HEAD, so this stays bounded.
                buf.reserve((2 * MAX_HEAD).saturating_sub(buf.len()).max(INITIAL_BUF));
            }
            if !read_more(&mut stream, &mut buf).await {
                return;
            }
        }
        let feed = framer.feed(&buf, &canned, &mut out);
        buf.drain(..feed.consumed);
        if !out.is_empty() {
            if let Some(d) = delay.pick(&mut rng) {
                monoio::time::sleep(d).await; // one delay per batch of pipelined responses
            }
            let (res, sent) = stream.write_all(out).await;
            out = sent;
            if res.is_err() {
                return;
            }
            out.clear();
        }
        if feed.close {
            let _ = stream.shutdown().await;
            return;
        }
    }
}
