//! The proxy engine for one exchange: run the filter chain, route, forward to an upstream
//! endpoint over a pooled connection, stream bodies both ways, and answer locally (one JSON
//! error shape) when anything stops the request short.
//!
//! Owns: the order of phases for one request and the mapping of upstream failures to 502/504,
//! for every client protocol (the client side is a `Downstream`). Must not: know any filter by
//! name (the chain is a type parameter), parse heads itself, or frame responses for a client.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use portcullis_core::LocalReply;
use portcullis_core::pipeline::{Cx, Filter, Flow, Headers, Method, RequestHead, ResponseHead};

use crate::body::{BodyOut, RelayLimits};
use crate::conn::{ClientMeta, ConnBufs};
use crate::downstream::{Downstream, H1Down, Sent, UpBody, UpSource};
use crate::h1::encode::{Framing, encode_request, local_reply_head};
use crate::h1::request::{ParsedRequest, ReqBody};
use crate::h1::response::{ParsedResponse, RespBody, parse_response};
use crate::io::{IoFail, read_more_by, write_all};
use crate::shard::{ShardGen, ShardState};
use crate::upstream::{
    Attempts, ConnectError, Outcome, Pool, TlsFail, UpConn, Upstream, UpstreamTls, secure, stamp_deadline,
};

/// What happens to the client connection after an exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum After {
    /// Read the next request.
    KeepAlive,
    /// Close it.
    Close,
}

/// Why forwarding stopped.
pub(crate) enum Fail {
    /// Nothing was sent to the client yet: answer with this reply.
    Reply(LocalReply),
    /// The response was already started or the client broke: close the connection.
    Abort,
}

/// Largest slice moved at once while streaming bodies.
const RELAY_CHUNK: usize = 16 * 1024;

/// One request as the engine receives it from any client protocol.
pub struct Incoming {
    /// The head (filters may change it).
    pub head: RequestHead,
    /// Body framing.
    pub body: ReqBody,
    /// The client asked for `100 Continue` before sending the body.
    pub expect_continue: bool,
    /// The client connection may stay open after this exchange (HTTP/1.1 keep-alive; always
    /// true for HTTP/2 streams).
    pub keep: bool,
    /// The client sent `TE: trailers` (forwarded to HTTP/2 upstreams; HTTP/1.1 clients get
    /// response trailers only then).
    pub te_trailers: bool,
}

/// Handles one HTTP/1.1 request end to end. Returns what to do with the connection and the
/// header list for reuse by the next request.
pub async fn exchange<F: Filter, S: AsyncReadRent + AsyncWriteRent>(
    state: &ShardState<F>,
    sg: &ShardGen<F>,
    client: &mut S,
    bufs: &mut ConnBufs,
    req: ParsedRequest,
    meta: &ClientMeta,
    last: bool,
) -> (After, Headers) {
    let ParsedRequest { mut head, body, keep_alive, expect_continue, upgrade, te_trailers } = req;
    let mut cx = Cx::new(meta.addr, meta.tls, head.version);
    if let Some(proto) = upgrade {
        // A WebSocket handshake: filters and the upstream see the upgrade headers.
        head.headers.set("connection", "upgrade");
        head.headers.set("upgrade", proto.clone());
        cx.upgrade = Some(proto);
    }
    cx.client_cert.clone_from(&meta.client_cert);
    cx.alt_svc.clone_from(&meta.alt_svc);
    cx.tls_version = meta.tls_version;
    let ConnBufs { rbuf, wbuf, scratch } = bufs;
    let mut down =
        H1Down { stream: client, rbuf, version: head.version, is_head: head.method == Method::Head };
    let keep = keep_alive && !last && !state.draining.get();
    let incoming = Incoming { head, body, expect_continue, keep, te_trailers };
    let (after, mut head) = handle(state, sg, &mut down, wbuf, scratch, incoming, &mut cx).await;
    sg.chain.on_log(&cx);
    (after, std::mem::take(&mut head.headers))
}

/// The context of a reply sent before a request existed (a head or stream the codec refused):
/// method `-`, no route.
pub fn bare_cx(meta: &ClientMeta, version: portcullis_core::pipeline::Version) -> Cx {
    let mut cx = Cx::new(meta.addr, meta.tls, version);
    cx.tls_version = meta.tls_version;
    cx.method = Method::Other(Bytes::from_static(b"-"));
    cx
}

/// The log phase of such a bare reply (`body_len` bytes of body sent): the access log and the
/// metrics count it like any other short-circuit.
pub fn log_bare_reply<F: Filter>(sg: &ShardGen<F>, cx: &mut Cx, reply: &LocalReply, body_len: usize) {
    cx.status = reply.status;
    cx.error_code = Some(reply.code);
    cx.bytes_out = body_len as u64;
    sg.chain.on_log(cx);
}

/// The engine, the same for every client protocol: route, run the chain, forward (or answer
/// locally). Returns what to do with the client connection and the head for reuse.
pub async fn handle<F: Filter, D: Downstream>(
    state: &ShardState<F>,
    sg: &ShardGen<F>,
    down: &mut D,
    wbuf: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
    req: Incoming,
    cx: &mut Cx,
) -> (After, RequestHead) {
    let Incoming { mut head, body, expect_continue, keep: client_keep, te_trailers } = req;
    (cx.method, cx.path, cx.query) = (head.method.clone(), head.path.clone(), head.query.clone());
    cx.route = sg.generation.shared.router.find(&head);
    let is_head = head.method == Method::Head;

    let outcome = match sg.chain.on_request(&mut head, cx).await {
        Flow::Respond(reply) => Err(Fail::Reply(reply)),
        Flow::Continue => match cx.route {
            None => Err(Fail::Reply(LocalReply::route_not_found())),
            Some(route) => {
                let mut ex =
                    Exchange { state, sg, down: &mut *down, wbuf, scratch, cx: &mut *cx, te_trailers };
                ex.forward(&mut head, body, expect_continue, route, client_keep).await
            }
        },
    };
    let after = match outcome {
        Ok(after) => after,
        Err(Fail::Abort) => After::Close,
        Err(Fail::Reply(reply)) => {
            // A body the client still has in flight would be parsed as the next request: a
            // fully buffered one is discarded, otherwise the connection closes after the reply.
            let body_pending = match body {
                ReqBody::None => false,
                ReqBody::Length(n) if cx.bytes_in >= n => false,
                b => down.buffered_body(b).is_none(),
            };
            // A drain that began while this request was in flight also closes the connection.
            let keep = client_keep && !reply.close && !body_pending && !state.draining.get();
            respond_local(sg, down, wbuf, &reply, cx, keep, is_head).await
        }
    };
    (after, head)
}

#[allow(clippy::too_many_arguments)]
async fn respond_local<F: Filter, D: Downstream>(
    sg: &ShardGen<F>,
    down: &mut D,
    wbuf: &mut Vec<u8>,
    reply: &LocalReply,
    cx: &mut Cx,
    keep: bool,
    is_head: bool,
) -> After {
    let (mut resp, body) = local_reply_head(reply, &cx.request_id);
    sg.chain.on_response(&mut resp, cx);
    if let Some(v) = &cx.alt_svc {
        resp.headers.set("alt-svc", v.clone());
    }
    cx.status = reply.status;
    cx.error_code = Some(reply.code);
    if !is_head {
        cx.bytes_out = body.len() as u64;
    }
    let ok = down.send_local(&resp, &body, keep, wbuf, sg.config().http.body_timeout.0).await;
    if ok && keep { After::KeepAlive } else { After::Close }
}

fn connect_reply(e: ConnectError) -> Fail {
    match e {
        ConnectError::Timeout(addr) => {
            tracing::debug!(%addr, "upstream connect timeout");
            Fail::Reply(LocalReply::gateway_timeout("upstream connect timed out"))
        }
        ConnectError::Io(addr, err) => {
            tracing::debug!(%addr, error = %err, "upstream connect failed");
            Fail::Reply(LocalReply::bad_gateway("upstream_connect_failed", "upstream refused or unreachable"))
        }
    }
}

/// Opens a new connection to `addr`, with the TLS handshake when the upstream speaks TLS.
pub(crate) async fn open(
    pool: &Pool,
    addr: SocketAddr,
    up: &Upstream,
    tls: Option<&UpstreamTls>,
) -> Result<UpConn, Fail> {
    let conn = pool.connect(addr, up.connect_timeout).await.map_err(connect_reply)?;
    let Some(tls) = tls else { return Ok(conn) };
    secure(conn, tls, up.connect_timeout).await.map_err(|e| {
        tracing::warn!(%addr, upstream = %up.name, error = %e, "upstream TLS failed");
        Fail::Reply(match e {
            TlsFail::Timeout => LocalReply::gateway_timeout("upstream TLS handshake timed out"),
            TlsFail::Certificate(_) => {
                LocalReply::bad_gateway("upstream_tls_failed", "upstream certificate could not be verified")
            }
            TlsFail::Handshake(_) => {
                LocalReply::bad_gateway("upstream_tls_failed", "upstream TLS handshake failed")
            }
        })
    })
}

pub(crate) use crate::proxy_plan::{Plan, body_fail, retry_or_fail};

/// Reads response heads from the upstream until a final (non-1xx) one, by `deadline`.
async fn read_response(
    conn: &mut UpConn,
    deadline: Instant,
    is_head: bool,
    max_bytes: usize,
) -> Result<ParsedResponse, (IoFail, bool)> {
    let mut got_bytes = false;
    loop {
        if !conn.rbuf.is_empty() {
            got_bytes = true;
            match parse_response(&mut conn.rbuf, max_bytes, is_head) {
                Ok(Some(r)) if (100..200).contains(&r.head.status) && r.head.status != 101 => continue,
                Ok(Some(r)) => return Ok(r),
                Ok(None) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "bad upstream response");
                    return Err((IoFail::Io(std::io::Error::other(e.to_string())), true));
                }
            }
        }
        if let Err(e) = read_more_by(&mut conn.stream, &mut conn.rbuf, 4096, deadline).await {
            return Err((e, got_bytes));
        }
    }
}

/// The state one forwarded exchange works on.
pub(crate) struct Exchange<'a, F, D> {
    pub(crate) state: &'a ShardState<F>,
    pub(crate) sg: &'a ShardGen<F>,
    pub(crate) down: &'a mut D,
    pub(crate) wbuf: &'a mut Vec<u8>,
    pub(crate) scratch: &'a mut Vec<u8>,
    pub(crate) cx: &'a mut Cx,
    /// The client sent `TE: trailers`.
    pub(crate) te_trailers: bool,
}

impl<F: Filter, D: Downstream> Exchange<'_, F, D> {
    async fn forward(
        &mut self,
        head: &mut RequestHead,
        body: ReqBody,
        expect_continue: bool,
        route_idx: usize,
        client_keep: bool,
    ) -> Result<After, Fail> {
        let (state, sg) = (self.state, self.sg);
        let cfg = sg.config();
        let route = &cfg.routes[route_idx];
        let up_idx = sg.generation.shared.route_upstream[route_idx];
        let upstream = &sg.upstreams[up_idx];
        let max_body = route.max_body_bytes.unwrap_or(cfg.http.max_body_bytes).0;
        if let ReqBody::Length(n) = body
            && n > max_body
        {
            return Err(Fail::Reply(LocalReply::payload_too_large(max_body)));
        }
        let deadline = Instant::now() + route.timeout.0;

        // A body that is already fully buffered is sent with the head in one write, and makes the
        // request safe to retry on a fresh connection if a pooled one turns out to be dead.
        let buffered: Option<Bytes> = self.down.buffered_body(body);
        if let Some(b) = &buffered {
            self.cx.bytes_in = b.len() as u64;
        }
        let limits = RelayLimits {
            max_bytes: max_body,
            idle: cfg.http.body_timeout.0,
            chunk: RELAY_CHUNK,
            max_trailer_bytes: cfg.http.max_header_bytes.0 as usize,
        };

        let Some(_flight) = upstream.begin() else {
            return Err(Fail::Reply(circuit_open(&upstream.name)));
        };
        let key = upstream.hash_key(&head.headers, self.cx.client_ip);
        upstream.note_request();
        let retry = &route.retry;
        // Retries need the whole body in hand (to send it again) and a method safe to repeat.
        let replayable = buffered.is_some() && (retry.any_method || head.method.is_idempotent());
        let plan = Plan {
            upstream,
            tls: sg.generation.shared.upstream_tls[up_idx].as_ref(),
            set: upstream.endpoints(&state.pool),
            key,
            buffered,
            limits,
            deadline,
            try_timeout: route.try_timeout.map(|t| t.0),
            attempts: Attempts::new(upstream, retry, replayable, deadline),
        };
        if upstream.protocol.is_h2() {
            return self.forward_h2(head, body, expect_continue, plan, client_keep).await;
        }
        self.forward_h1(head, body, expect_continue, plan, client_keep).await
    }

    /// The request's forward over HTTP/1.1 connections.
    async fn forward_h1(
        &mut self,
        head: &mut RequestHead,
        body: ReqBody,
        expect_continue: bool,
        mut plan: Plan<'_>,
        client_keep: bool,
    ) -> Result<After, Fail> {
        let (state, sg) = (self.state, self.sg);
        let cfg = sg.config();
        let (upstream, set, buffered, limits) = (plan.upstream, &plan.set, &plan.buffered, plan.limits);
        let flavor = plan.tls.map_or(0, |t| t.flavor);
        let (idle, is_head) = (limits.idle, head.method == Method::Head);
        let up_framing = if body == ReqBody::Chunked { Framing::Chunked } else { Framing::AsIs };
        // Set after a pooled connection turned out dead: try the same endpoint on a fresh one.
        let mut stale_on: Option<usize> = None;
        let mut tracked;

        // Upstream time: request sent until response head, per attempt.
        let mut sent_at;
        let (mut conn, resp, ep) = loop {
            sent_at = Instant::now();
            self.cx.upstream_attempt(sent_at);
            let picked = match stale_on.take() {
                Some(ep) => Some((ep, true)),
                None => plan.attempts.pick(set, plan.key).map(|ep| (ep, false)),
            };
            let Some((ep, after_stale)) = picked else {
                return Err(Fail::Reply(no_endpoint()));
            };
            let addr = set.eps[ep].addr;
            tracked = Some(set.track(ep));
            self.cx.upstream_addr = Some(addr);
            let pooled =
                if after_stale { None } else { state.pool.checkout(addr, flavor, upstream.idle_timeout) };
            let (mut conn, reused) = match pooled {
                Some(c) => (c, true),
                None => {
                    let Some(_pending) = upstream.begin_connect(set, &state.pool) else {
                        return Err(Fail::Reply(circuit_open(&upstream.name)));
                    };
                    match open(&state.pool, addr, upstream, plan.tls).await {
                        Ok(c) => (c, false),
                        Err(fail) => {
                            upstream.report(set, ep, Outcome::Failure);
                            retry_or_fail!(plan, ep, fail);
                        }
                    }
                }
            };
            let retry_ok = reused && buffered.is_some();
            // This attempt's deadline; the upstream is told what is left of it.
            let try_deadline = plan.try_deadline();
            if let Some(name) = upstream.deadline_header.as_deref() {
                let left = try_deadline.saturating_duration_since(Instant::now());
                stamp_deadline(&mut head.headers, Some(name), left);
            }
            let mut out = std::mem::take(self.wbuf);
            out.clear();
            encode_request(&mut out, head, up_framing);
            if let Some(b) = buffered {
                out.extend_from_slice(b);
            }
            let (res, out) = write_all(&mut conn.stream, out, idle).await;
            *self.wbuf = out;
            conn.requests += 1;
            if let Err(e) = res {
                if retry_ok {
                    stale_on = Some(ep);
                    continue;
                }
                tracing::debug!(error = %e, "upstream write failed");
                upstream.report(set, ep, Outcome::Failure);
                retry_or_fail!(
                    plan,
                    ep,
                    Fail::Reply(LocalReply::bad_gateway("upstream_reset", "upstream connection failed"))
                );
            }
            if buffered.is_none() {
                let out = if body == ReqBody::Chunked { BodyOut::Chunked } else { BodyOut::Raw };
                let relayed = self
                    .down
                    .relay_body(body, expect_continue, &mut conn.stream, out, limits, self.scratch)
                    .await;
                match relayed {
                    Ok(n) => self.cx.bytes_in = n,
                    Err(e) => {
                        let (fail, upstream_failed) = body_fail(e);
                        if upstream_failed {
                            upstream.report(set, ep, Outcome::Failure);
                        }
                        return Err(fail);
                    }
                }
            }
            let max_head = cfg.http.max_header_bytes.0 as usize * 4;
            match read_response(&mut conn, try_deadline, is_head, max_head).await {
                Ok(resp) => {
                    if plan.attempts.retries_status(resp.head.status)
                        && let Some(wait) = plan.attempts.retry(ep)
                    {
                        upstream.report(set, ep, Outcome::Failure);
                        monoio::time::sleep(wait).await;
                        continue;
                    }
                    self.cx.upstream_answered(sent_at);
                    break (conn, resp, ep);
                }
                Err((IoFail::Timeout, _)) => {
                    upstream.report(set, ep, Outcome::Failure);
                    let fail = Fail::Reply(LocalReply::gateway_timeout("upstream did not answer in time"));
                    // Only an attempt cut short by `try_timeout` leaves time for another.
                    if try_deadline >= plan.deadline {
                        return Err(fail);
                    }
                    retry_or_fail!(plan, ep, fail);
                }
                Err((_, false)) if retry_ok => {
                    stale_on = Some(ep);
                    continue;
                }
                Err((IoFail::Io(e), true)) => {
                    tracing::debug!(error = %e, "upstream sent an invalid response");
                    upstream.report(set, ep, Outcome::Failure);
                    return Err(Fail::Reply(LocalReply::bad_gateway(
                        "upstream_bad_response",
                        "upstream sent an invalid response",
                    )));
                }
                Err((e, got)) => {
                    tracing::debug!(error = %e, "upstream closed before responding");
                    upstream.report(set, ep, Outcome::Failure);
                    let fail = Fail::Reply(LocalReply::bad_gateway(
                        "upstream_reset",
                        "upstream closed the connection",
                    ));
                    if got {
                        return Err(fail);
                    }
                    retry_or_fail!(plan, ep, fail);
                }
            }
        };

        // Response toward the client.
        let ParsedResponse { head: mut resp_head, body: resp_body, reusable } = resp;
        self.response_head(&plan, ep, &mut resp_head);
        if resp_head.status == 101 {
            let Some(proto) = self.cx.upgrade.clone() else {
                return Err(Fail::Reply(LocalReply::bad_gateway(
                    "upstream_bad_response",
                    "upstream switched protocols unasked",
                )));
            };
            resp_head.headers.set("connection", "upgrade");
            resp_head.headers.set("upgrade", proto);
            let idle = cfg.http.websocket_idle_timeout.0;
            let up = &mut conn;
            let moved = self.down.tunnel(&resp_head, &mut up.stream, &mut up.rbuf, idle, self.wbuf).await;
            (self.cx.bytes_in, self.cx.bytes_out) = moved.map_err(|_| Fail::Abort)?;
            drop(tracked);
            return Ok(After::Close);
        }
        // A drain that began while the upstream was answering announces the close on this response.
        let keep = client_keep && !state.draining.get();
        let up_body = UpBody { stream: &mut conn.stream, buf: &mut conn.rbuf, kind: resp_body };
        let sent = self.send_response(&resp_head, up_body, keep, limits).await?;
        let retire = upstream.max_requests != 0 && conn.requests >= upstream.max_requests;
        let serves = upstream.still_serves(set, conn.addr);
        if reusable && !retire && serves && conn.rbuf.is_empty() && resp_body != RespBody::UntilClose {
            state.pool.checkin(conn, upstream.max_idle);
        }
        drop(tracked);
        Ok(if sent.keep { After::KeepAlive } else { After::Close })
    }

    /// Takes a final response head from endpoint `ep`: reports the outcome, runs the response
    /// phase of the chain, and records the status.
    pub(crate) fn response_head(&mut self, plan: &Plan<'_>, ep: usize, resp_head: &mut ResponseHead) {
        let outcome = if resp_head.status >= 500 { Outcome::Failure } else { Outcome::Success };
        plan.upstream.report(&plan.set, ep, outcome);
        self.sg.chain.on_response(resp_head, self.cx);
        if let Some(v) = &self.cx.alt_svc {
            // The edge advertises its own HTTP/3 endpoint, never an upstream's.
            resp_head.headers.set("alt-svc", v.clone());
        }
        self.cx.status = resp_head.status;
    }

    /// Sends a proxied response to the client and records the bytes sent.
    pub(crate) async fn send_response<R: UpSource>(
        &mut self,
        resp_head: &ResponseHead,
        body: UpBody<'_, R>,
        keep: bool,
        limits: RelayLimits,
    ) -> Result<Sent, Fail> {
        let limits = RelayLimits { max_bytes: u64::MAX, ..limits };
        match self.down.send_response(resp_head, body, keep, limits, self.wbuf, self.scratch).await {
            Ok(sent) => {
                (self.cx.bytes_out, self.cx.head_sent) = (sent.bytes, sent.head_at);
                Ok(sent)
            }
            Err(e) => {
                tracing::debug!(error = %e, "response body relay failed");
                Err(Fail::Abort)
            }
        }
    }
}

/// The reply when the upstream has no endpoint to send to.
pub(crate) fn no_endpoint() -> LocalReply {
    LocalReply::unavailable("no_upstream_endpoint", "upstream has no endpoints")
}

/// The circuit breaker's refusal: 503 with its own code.
pub(crate) fn circuit_open(upstream: &str) -> LocalReply {
    tracing::debug!(upstream, "upstream circuit open");
    LocalReply::unavailable("upstream_circuit_open", "upstream is at its concurrency limit")
}
