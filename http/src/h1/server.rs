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
use crate::io::{IoFail, Park, read_more_by, read_or_park_by, wait_parked, write_all};
use crate::shard::state::ShardState;
use crate::spare::{RBUF_CAPACITY, Spares};

/// Read buffer per client connection while a request is read; grows up to `max_header_bytes`
/// for large heads.
const CLIENT_READ_BUF: usize = RBUF_CAPACITY;

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

/// Reads until `rbuf` (which holds the first bytes of a request) has a complete head; the
/// header timeout runs from the first bytes that did not complete it.
async fn read_head<S: AsyncReadRent>(
    stream: &mut S,
    rbuf: &mut BytesMut,
    limits: HeadLimits,
    header_timeout: Duration,
    spares: &Spares,
) -> HeadWait {
    let mut deadline: Option<Instant> = None;
    loop {
        match parse_request(rbuf, limits, spares.headers()) {
            Ok(Some(p)) => return HeadWait::Request(Box::new(p)),
            Ok(None) => {}
            Err(reply) => return HeadWait::Reply(reply),
        }
        let deadline = *deadline.get_or_insert_with(|| Instant::now() + header_timeout);
        let room = (limits.max_header_bytes + 1).saturating_sub(rbuf.len()).clamp(512, CLIENT_READ_BUF);
        match read_more_by(stream, rbuf, room, deadline).await {
            Ok(_) => {}
            Err(IoFail::Timeout) => return HeadWait::Reply(LocalReply::request_timeout()),
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
/// (A plain function: an `async` wrapper would keep a second copy of its arguments in every
/// idle connection's task.)
pub fn serve_conn<F: Filter, S: Park + AsyncWriteRent + Split>(
    state: Rc<ShardState<F>>,
    stream: S,
    client: ClientMeta,
) -> impl Future<Output = ()> {
    serve_conn_with(state, stream, client, BytesMut::new())
}

/// Like `serve_conn`, with bytes already read from the client (protocol detection).
#[allow(clippy::manual_async_fn, reason = "an async fn stores its arguments twice in the task")]
pub fn serve_conn_with<F: Filter, S: Park + AsyncWriteRent + Split>(
    state: Rc<ShardState<F>>,
    mut stream: S,
    client: ClientMeta,
    rbuf: BytesMut,
) -> impl Future<Output = ()> {
    // An `async` block rather than an `async fn`: the function's arguments would be stored twice
    // in the state machine (as arguments and as the locals they are rebound to), the stream
    // included, in every idle connection's task.
    async move {
        state.connections.set(state.connections.get() + 1);
        let _conn = ConnGuard(state.clone());
        // The write buffer is borrowed from the shard's spares for each exchange only, and the
        // read buffer goes back to them while the connection is parked, so an idle connection
        // holds no buffer.
        let mut bufs = ConnBufs { rbuf, wbuf: Vec::new(), scratch: Vec::new() };
        let mut served: u64 = 0;
        let mut parked: Option<Instant> = None;
        loop {
            // Boxed: reading a request and the exchange make a state machine of several KiB (a
            // runtime timer alone is 640 bytes), and inlined it would make every idle
            // connection's task that large. One allocation per request, as the exchange alone
            // had before; only the parked wait below lives in the task itself.
            match Box::pin(serve_one(&state, &mut stream, &mut bufs, &client, &mut served, parked)).await {
                Step::Done(After::KeepAlive) if !state.draining.get() => parked = None,
                Step::Done(_) => return,
                Step::Parked(deadline) => {
                    if wait_parked(&mut stream, deadline).await.is_err() {
                        return;
                    }
                    parked = Some(deadline);
                }
            }
        }
    }
}

/// How one turn of a connection ended.
enum Step {
    /// A request was served (or the connection must close).
    Done(After),
    /// No request came within `io::PARK_AFTER`; wait for one until this deadline.
    Parked(Instant),
}

/// One request: its first bytes (unless `rbuf` has them; parking when none come), the rest of
/// the head (bounded by the header timeout), then the exchange, or a local reply to a bad head.
/// `parked`: the connection was parked and is now readable; its deadline still holds.
async fn serve_one<F: Filter, S: Park + AsyncWriteRent + Split>(
    state: &Rc<ShardState<F>>,
    stream: &mut S,
    bufs: &mut ConnBufs,
    client: &ClientMeta,
    served: &mut u64,
    parked: Option<Instant>,
) -> Step {
    if bufs.rbuf.is_empty() {
        let spares = &state.spares;
        let res = match parked {
            Some(deadline) => {
                bufs.rbuf = spares.rbuf();
                read_more_by(stream, &mut bufs.rbuf, CLIENT_READ_BUF, deadline).await.map(Some)
            }
            None => {
                let wait = {
                    let sg = state.current();
                    let http = &sg.config().http;
                    if *served == 0 { http.header_timeout.0 } else { http.idle_timeout.0 }
                };
                let deadline = Instant::now() + wait;
                match read_or_park_by(stream, &mut bufs.rbuf, CLIENT_READ_BUF, deadline, spares).await {
                    Ok(None) => return Step::Parked(deadline),
                    res => res,
                }
            }
        };
        if res.is_err() {
            return Step::Done(After::Close);
        }
    }
    // Limits and timeouts for reading the head come from the generation current now; the
    // exchange runs on the generation current once the head is complete, so a kept-alive
    // connection picks up a reload with its next request.
    let waiting = state.current();
    let http = &waiting.config().http;
    let parsed =
        match read_head(stream, &mut bufs.rbuf, waiting.head_limits, http.header_timeout.0, &state.spares)
            .await
        {
            HeadWait::Request(p) => p,
            HeadWait::Closed => return Step::Done(After::Close),
            HeadWait::Reply(reply) => {
                bufs.wbuf = state.spares.wbuf();
                let rid = &waiting.config().request_id;
                let (id, body_len) =
                    write_bare_reply(stream, &reply, &mut bufs.wbuf, rid, http.body_timeout.0).await;
                let mut cx = bare_cx(client, Version::Http11);
                cx.request_id = id;
                log_bare_reply(&waiting, &mut cx, &reply, body_len);
                return Step::Done(After::Close);
            }
        };
    drop(waiting);
    let sg = state.current();
    *served += 1;
    let guard = state.begin_request();
    let limit = sg.config().http.max_requests_per_connection;
    let last = limit != 0 && *served >= limit;
    bufs.wbuf = state.spares.wbuf();
    let (after, headers) = exchange(
        state,
        &sg,
        stream,
        &mut bufs.rbuf,
        &mut bufs.wbuf,
        &mut bufs.scratch,
        *parsed,
        client,
        last,
    )
    .await;
    drop(guard);
    state.spares.give_headers(headers);
    state.spares.give_wbuf(std::mem::take(&mut bufs.wbuf));
    if bufs.scratch.capacity() != 0 {
        state.spares.give_wbuf(std::mem::take(&mut bufs.scratch));
    }
    // A large body may have grown the read buffer; the next read takes a usual-sized one.
    if bufs.rbuf.is_empty() && bufs.rbuf.capacity() > 4 * CLIENT_READ_BUF {
        bufs.rbuf = BytesMut::new();
    }
    Step::Done(after)
}

#[cfg(test)]
mod tests {
    use monoio::net::TcpStream;
    use portcullis_core::pipeline::NoFilters;

    use super::*;
    use crate::tls::TlsStream;

    /// The size of what `f` returns (a future's state machine), without calling it.
    fn returned_size<A, R>(_: &impl Fn(A) -> R) -> usize {
        std::mem::size_of::<R>()
    }

    /// An idle connection's task is the `serve_conn` future: a runtime timer (640 bytes), the
    /// request's state machine (KiB) or a second copy of the stream inlined into it would
    /// multiply the memory of every idle keep-alive connection.
    #[test]
    fn idle_connection_tasks_stay_small() {
        type St = Rc<ShardState<NoFilters>>;
        let plain = returned_size(&|(s, t, c): (St, TcpStream, ClientMeta)| serve_conn(s, t, c));
        let tls = returned_size(&|(s, t, c): (St, TlsStream<TcpStream>, ClientMeta)| serve_conn(s, t, c));
        let stream = std::mem::size_of::<TlsStream<TcpStream>>();
        assert!(plain <= 640, "plain HTTP/1.1 connection future is {plain} bytes");
        assert!(tls <= stream + 640, "TLS HTTP/1.1 connection future is {tls} bytes (stream {stream})");
    }
}
