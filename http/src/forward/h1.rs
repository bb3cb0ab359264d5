//! The forward path toward HTTP/1.1 upstreams: each attempt checks out a pooled connection (or
//! opens one), writes the head and the body, and reads the response head by the attempt's
//! deadline; the response goes to the client through the `Downstream`, and the connection back
//! to the pool when it is clean. WebSocket upgrades become a tunnel here.
//!
//! Owns: one request's steps over an HTTP/1.1 upstream connection (the `Transport` the attempt
//! loop runs) and the response's way back. Must not: pick endpoints or retry (`forward::retry`)
//! or frame client responses (the `Downstream`).

use std::net::SocketAddr;
use std::time::Instant;

use portcullis_core::pipeline::{Filter, Method, RequestHead};

use crate::body::BodyOut;
use crate::body::ReqBody;
use crate::engine::downstream::{Downstream, UpBody};
use crate::engine::exchange::{After, Exchange};
use crate::forward::connect::open;
use crate::forward::error::{Fail, UpstreamError};
use crate::forward::plan::Plan;
use crate::forward::retry::{Attempt, Transport, Tried, Won};
use crate::h1::encode::{Framing, encode_request};
use crate::h1::response::{ParsedResponse, RespBody, parse_response};
use crate::io::{IoFail, read_more_by, write_all};
use crate::upstream::{Pool, UpConn};

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

/// The HTTP/1.1 transport step of one request.
struct H1 {
    /// The buffer the request head (and a buffered body) is written from.
    wbuf: Vec<u8>,
    body: ReqBody,
    expect_continue: bool,
    framing: Framing,
    flavor: u64,
    is_head: bool,
    max_head: usize,
}

impl Transport for H1 {
    type Conn = UpConn;
    type Resp = ParsedResponse;

    fn checkout(&mut self, pool: &Pool, addr: SocketAddr, plan: &Plan<'_>) -> Option<UpConn> {
        pool.checkout(addr, self.flavor, plan.upstream.idle_timeout)
    }

    async fn open(
        &mut self,
        pool: &Pool,
        addr: SocketAddr,
        plan: &Plan<'_>,
    ) -> Result<UpConn, UpstreamError> {
        open(pool, addr, plan.upstream, plan.tls).await
    }

    async fn attempt<F: Filter, D: Downstream>(
        &mut self,
        ex: &mut Exchange<'_, F, D>,
        plan: &Plan<'_>,
        conn: &mut UpConn,
        at: Attempt,
        head: &mut RequestHead,
    ) -> Tried<ParsedResponse> {
        // A reused connection that fails before any answer gets the request again on a fresh
        // one, when its body is in hand.
        let stale_ok = at.reused && plan.buffered.is_some();
        let mut out = std::mem::take(&mut self.wbuf);
        out.clear();
        encode_request(&mut out, head, self.framing);
        if let Some(b) = &plan.buffered {
            out.extend_from_slice(b);
        }
        let (res, out) = write_all(&mut conn.stream, out, plan.limits.idle).await;
        self.wbuf = out;
        conn.requests += 1;
        if let Err(e) = res {
            if stale_ok {
                return Tried::Stale;
            }
            tracing::debug!(error = %e, "upstream write failed");
            return Tried::Failed(UpstreamError::WriteFailed);
        }
        if plan.buffered.is_none() {
            let out = if self.body == ReqBody::Streamed { BodyOut::Chunked } else { BodyOut::Raw };
            let relayed =
                ex.down.relay_body(self.body, self.expect_continue, &mut conn.stream, out, plan.limits).await;
            match relayed {
                Ok(n) => ex.cx.bytes_in = n,
                Err(e) => return Tried::body_failed(e),
            }
        }
        match read_response(conn, at.deadline, self.is_head, self.max_head).await {
            Ok(resp) => Tried::Answered(resp),
            Err((IoFail::Timeout, _)) => Tried::Failed(UpstreamError::Timeout),
            Err((_, false)) if stale_ok => Tried::Stale,
            Err((IoFail::Io(e), true)) => {
                tracing::debug!(error = %e, "upstream sent an invalid response");
                Tried::Failed(UpstreamError::BadResponse)
            }
            Err((e, partial)) => {
                tracing::debug!(error = %e, "upstream closed before responding");
                Tried::Failed(UpstreamError::Closed { partial })
            }
        }
    }

    fn status(resp: &ParsedResponse) -> u16 {
        resp.head.status
    }
}

impl<F: Filter, D: Downstream> Exchange<'_, F, D> {
    /// The request's forward over HTTP/1.1 connections.
    pub(crate) async fn forward_h1(
        &mut self,
        head: &mut RequestHead,
        body: ReqBody,
        expect_continue: bool,
        mut plan: Plan<'_>,
        client_keep: bool,
    ) -> Result<After, Fail> {
        let (state, sg) = (self.state, self.sg);
        let cfg = sg.config();
        let (upstream, limits) = (plan.upstream, plan.limits);
        let mut transport = H1 {
            wbuf: state.spares.wbuf(),
            body,
            expect_continue,
            framing: if body == ReqBody::Streamed { Framing::Chunked } else { Framing::AsIs },
            flavor: plan.tls.map_or(0, |t| t.flavor),
            is_head: head.method == Method::Head,
            max_head: cfg.http.max_header_bytes.0 as usize * 4,
        };
        let set = plan.set.clone();
        let won = self.run_attempts(&mut transport, &mut plan, &set, head).await;
        state.spares.give_wbuf(transport.wbuf);
        let Won { mut conn, resp, ep, tracked } = won?;

        // Response toward the client.
        let ParsedResponse { head: mut resp_head, body: resp_body, reusable } = resp;
        self.response_head(&plan, ep, &mut resp_head);
        if resp_head.status == 101 {
            let Some(proto) = self.cx.upgrade.clone() else {
                return Err(UpstreamError::UnaskedUpgrade.into());
            };
            resp_head.headers.set("connection", "upgrade");
            resp_head.headers.set("upgrade", proto);
            let idle = cfg.http.websocket_idle_timeout.0;
            let up = &mut conn;
            let moved = self.down.tunnel(&resp_head, &mut up.stream, &mut up.rbuf, idle).await;
            (self.cx.bytes_in, self.cx.bytes_out) = moved.map_err(|_| Fail::Abort)?;
            drop(tracked);
            return Ok(After::Close);
        }
        // A drain that began while the upstream was answering announces the close on this response.
        let keep = client_keep && !state.draining.get();
        let up_body = UpBody { stream: &mut conn.stream, buf: &mut conn.rbuf, kind: resp_body };
        let sent = self.send_response(&resp_head, up_body, keep, limits).await?;
        let retire = upstream.max_requests != 0 && conn.requests >= upstream.max_requests;
        let serves = upstream.still_serves(&set, conn.addr);
        if reusable && !retire && serves && conn.rbuf.is_empty() && resp_body != RespBody::UntilClose {
            state.pool.checkin(conn, upstream.max_idle);
        }
        drop(tracked);
        Ok(if sent.keep { After::KeepAlive } else { After::Close })
    }
}
