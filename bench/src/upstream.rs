//! The reference upstream: one (optionally pinned) monoio thread answering every HTTP/1.1
//! request with a fixed `200 OK`, keep-alive and pipelining included, as cheaply as it can.

use std::{net::SocketAddr, rc::Rc, time::Duration};

use anyhow::{Context, Result};
use monoio::{
    buf::IoBufMut,
    io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt},
    net::{ListenerOpts, TcpListener, TcpStream},
};

use crate::{
    h1::{Canned, Framer, MAX_HEAD},
    ring::{self, RingMode},
    sys,
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
            "portcullis-bench upstream listening on {} (ring: {flags}, body: {} B, cpu: {}, nofile: {nofile})",
            opts.listen,
            opts.body_size,
            opts.cpu.map_or_else(|| "any".to_owned(), |c| c.to_string()),
        );
        accept_loop(listener, canned).await
    })
}

async fn accept_loop(listener: TcpListener, canned: Rc<Canned>) -> Result<()> {
    loop {
        match listener.accept().await {
            Ok((stream, _peer)) => {
                // Responses leave in one write per batch: Nagle would only add delay.
                let _ = stream.set_nodelay(true);
                monoio::spawn(serve(stream, canned.clone()));
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning on the error.
                eprintln!("accept failed: {e}");
                monoio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Serves one connection until the peer closes it, sends garbage or asks to close.
async fn serve(mut stream: TcpStream, canned: Rc<Canned>) {
    let mut buf: Vec<u8> = Vec::with_capacity(INITIAL_BUF);
    let mut out: Vec<u8> = Vec::with_capacity(4096);
    let mut framer = Framer::default();
    loop {
        if buf.len() == buf.capacity() {
            // Only a partial head fills the buffer (bodies are consumed as they arrive), and
            // the framer refuses heads above MAX_HEAD, so this stays bounded.
            buf.reserve((2 * MAX_HEAD).saturating_sub(buf.len()).max(INITIAL_BUF));
        }
        let len = buf.len();
        let (res, slice) = stream.read(buf.slice_mut(len..)).await;
        buf = slice.into_inner();
        match res {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let feed = framer.feed(&buf, &canned, &mut out);
        buf.drain(..feed.consumed);
        if !out.is_empty() {
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
