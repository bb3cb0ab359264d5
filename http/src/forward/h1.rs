//! The forward path toward HTTP/1.1 upstreams: each attempt checks out a pooled connection (or
//! opens one), writes the head and the body, and reads the response head by the attempt's
//! deadline; the response goes to the client through the `Downstream`, and the connection back
//! to the pool when it is clean. WebSocket upgrades become a tunnel here.
//!
//! Owns: one request's steps over an HTTP/1.1 upstream connection. Must not: pick endpoints
//! (`Attempts`) or frame client responses (the `Downstream`).

use std::time::Instant;

use portcullis_core::LocalReply;
use portcullis_core::pipeline::{Filter, Method, RequestHead};

use crate::body::BodyOut;
use crate::engine::downstream::{Downstream, UpBody};
use crate::engine::exchange::{After, Exchange};
use crate::forward::connect::open;
use crate::forward::error::{Fail, circuit_open, no_endpoint};
use crate::forward::plan::{Plan, body_fail, retry_or_fail};
use crate::h1::encode::{Framing, encode_request};
use crate::h1::request::ReqBody;
use crate::h1::response::{ParsedResponse, RespBody, parse_response};
use crate::io::{IoFail, read_more_by, write_all};
use crate::upstream::{Outcome, UpConn, stamp_deadline};

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
                    self.cx.upstream_time = Some(sent_at.elapsed());
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
}
