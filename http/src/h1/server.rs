//! One HTTP/1.1 client connection: the keep-alive loop, request head reading with the idle and
//! header timeouts, pipelined requests answered in order, and local replies for bad input.
//!
//! Owns: the downstream connection's buffers and its lifecycle. Must not: talk to upstreams or
//! run filters (each request goes through `h1::exchange` into the engine).

use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use monoio::io::AsyncReadRent;
use monoio::io::AsyncWriteRent;
use monoio::io::Split;
use portcullis_core::LocalReply;
use portcullis_core::config::RequestIdConfig;
use portcullis_core::pipeline::{Filter, Version};

use crate::engine::client::ClientMeta;
use crate::engine::exchange::After;
use crate::engine::log::{bare_cx, log_bare_reply};
use crate::h1::encode::{ConnHeader, Framing, encode_response, local_reply_head};
use crate::h1::exchange::exchange;
use crate::h1::request::{HeadLimits, ParsedRequest, parse_request};
use crate::io::{IoFail, read_more, write_all};
use crate::shard::state::ShardState;
use crate::spare::Spares;

/// Initial read buffer per client connection; grows up to `max_header_bytes` for large heads.
const CLIENT_READ_BUF: usize = 4096;

/// Buffers one connection reuses for every request on it.
pub struct ConnBufs {
    /// Bytes read from the client and not yet consumed.
    pub rbuf: BytesMut,
    /// Outgoing head (and small body) staging buffer.
    pub wbuf: Vec<u8>,
    /// Chunk-framing scratch buffer.
    pub scratch: Vec<u8>,
}

struct ConnGuard<F>(Rc<ShardState<F>>);

impl<F> Drop for ConnGuard<F> {
    fn drop(&mut self) {
        self.0.connections.set(self.0.connections.get() - 1);
    }
}

/// Outcome of waiting for a request head.
enum HeadWait {
    Request(Box<ParsedRequest>),
    Closed,
    Reply(LocalReply),
}

async fn read_head<S: AsyncReadRent>(
    stream: &mut S,
    rbuf: &mut BytesMut,
    limits: HeadLimits,
    first_wait: Duration,
    header_timeout: Duration,
    spares: &Spares,
) -> HeadWait {
    let mut deadline: Option<Instant> = None;
    loop {
        if !rbuf.is_empty() {
            match parse_request(rbuf, limits, spares.headers()) {
                Ok(Some(p)) => return HeadWait::Request(Box::new(p)),
                Ok(None) => {}
                Err(reply) => return HeadWait::Reply(reply),
            }
            deadline.get_or_insert_with(|| Instant::now() + header_timeout);
        }
        let wait = match deadline {
            None => first_wait,
            Some(d) => d.saturating_duration_since(Instant::now()),
        };
        let room = (limits.max_header_bytes + 1).saturating_sub(rbuf.len()).clamp(512, CLIENT_READ_BUF);
        match read_more(stream, rbuf, room, wait).await {
            Ok(_) => {}
            Err(IoFail::Timeout) if deadline.is_some() => {
                return HeadWait::Reply(LocalReply::request_timeout());
            }
            Err(_) => return HeadWait::Closed,
        }
    }
}

/// Writes a local reply that no filter saw (the request could not be parsed). It still gets a
/// fresh request id (body and `[request_id]` header) so the client's report can be matched to
/// the gateway's log line.
async fn write_bare_reply<S: AsyncWriteRent>(
    stream: &mut S,
    reply: &LocalReply,
    wbuf: &mut Vec<u8>,
    cfg: &RequestIdConfig,
    idle: Duration,
) -> (Bytes, usize) {
    let id = if cfg.generate { Bytes::from(format!("{:032x}", fastrand::u128(..))) } else { Bytes::new() };
    let (mut head, body) = local_reply_head(reply, &id);
    if cfg.echo && !id.is_empty() {
        head.headers.append(Bytes::from(cfg.header.clone()), id.clone());
    }
    let body_len = body.len();
    let mut out = std::mem::take(wbuf);
    out.clear();
    encode_response(&mut out, &head, Framing::AsIs, ConnHeader::Close);
    out.extend_from_slice(&body);
    let (_, out) = write_all(stream, out, idle).await;
    *wbuf = out;
    (id, body_len)
}

/// Serves one HTTP/1.1 client connection (plain TCP or TLS) until it closes, errs, idles out,
/// or the shard drains.
pub async fn serve_conn<F: Filter, S: AsyncReadRent + AsyncWriteRent + Split>(
    state: Rc<ShardState<F>>,
    stream: S,
    client: ClientMeta,
) {
    serve_conn_with(state, stream, client, BytesMut::with_capacity(CLIENT_READ_BUF)).await;
}

/// Like `serve_conn`, with bytes already read from the client (protocol detection).
pub async fn serve_conn_with<F: Filter, S: AsyncReadRent + AsyncWriteRent + Split>(
    state: Rc<ShardState<F>>,
    mut stream: S,
    client: ClientMeta,
    rbuf: BytesMut,
) {
    state.connections.set(state.connections.get() + 1);
    let _conn = ConnGuard(state.clone());
    // The write buffer is borrowed from the shard's spares for each exchange only, so an idle
    // connection holds just its read buffer.
    let mut bufs = ConnBufs { rbuf, wbuf: Vec::new(), scratch: Vec::new() };
    let mut served: u64 = 0;
    loop {
        // Limits and timeouts for reading the head come from the generation current now; the
        // exchange runs on the generation current once the head is complete, so a kept-alive
        // connection picks up a reload with its next request.
        let waiting = state.current();
        let http = &waiting.config().http;
        let first_wait = if served == 0 { http.header_timeout.0 } else { http.idle_timeout.0 };
        let parsed = match read_head(
            &mut stream,
            &mut bufs.rbuf,
            waiting.head_limits,
            first_wait,
            http.header_timeout.0,
            &state.spares,
        )
        .await
        {
            HeadWait::Request(p) => p,
            HeadWait::Closed => return,
            HeadWait::Reply(reply) => {
                bufs.wbuf = state.spares.wbuf();
                let rid = &waiting.config().request_id;
                let (id, body_len) =
                    write_bare_reply(&mut stream, &reply, &mut bufs.wbuf, rid, http.body_timeout.0).await;
                let mut cx = bare_cx(&client, Version::Http11);
                cx.request_id = id;
                log_bare_reply(&waiting, &mut cx, &reply, body_len);
                return;
            }
        };
        drop(waiting);
        let sg = state.current();
        served += 1;
        let guard = state.begin_request();
        let limit = sg.config().http.max_requests_per_connection;
        let last = limit != 0 && served >= limit;
        // Boxed: the exchange's state machine is several KiB, and inlining it would make every
        // idle keep-alive connection's task that large. One small allocation per request buys
        // ~4 KiB per idle connection (bench/compare.sh --idle).
        bufs.wbuf = state.spares.wbuf();
        let (after, headers) = Box::pin(exchange(
            &state,
            &sg,
            &mut stream,
            &mut bufs.rbuf,
            &mut bufs.wbuf,
            &mut bufs.scratch,
            *parsed,
            &client,
            last,
        ))
        .await;
        drop(guard);
        state.spares.give_headers(headers);
        state.spares.give_wbuf(std::mem::take(&mut bufs.wbuf));
        if bufs.scratch.capacity() != 0 {
            state.spares.give_wbuf(std::mem::take(&mut bufs.scratch));
        }
        // A large body may have grown the read buffer; an idle connection keeps only the usual size.
        if bufs.rbuf.is_empty() && bufs.rbuf.capacity() > 4 * CLIENT_READ_BUF {
            bufs.rbuf = BytesMut::with_capacity(CLIENT_READ_BUF);
        }
        if after == After::Close || state.draining.get() {
            return;
        }
    }
}
