//! The proxy engine for one exchange: run the filter chain, route, forward to an upstream
//! endpoint over a pooled connection, stream bodies both ways, and answer locally (one JSON
//! error shape) when anything stops the request short.
//!
//! Owns: the order of phases for one request and the mapping of upstream failures to 502/504.
//! Must not: know any filter by name (the chain is a type parameter) or parse heads itself.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use monoio::net::TcpStream;
use portcullis_core::LocalReply;
use portcullis_core::pipeline::{Cx, Filter, Flow, Headers, Method, Version};

use crate::body::{BodyIn, BodyOut, RelayError, RelayLimits, relay};
use crate::conn::ConnBufs;
use crate::h1::encode::{ConnHeader, Framing, encode_request, encode_response, local_reply_head};
use crate::h1::request::{ParsedRequest, ReqBody};
use crate::h1::response::{ParsedResponse, RespBody, parse_response};
use crate::io::{IoFail, read_more, write_all};
use crate::shard::{ShardGen, ShardState};
use crate::upstream::{ConnectError, UpConn};

/// What happens to the client connection after an exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum After {
    /// Read the next request.
    KeepAlive,
    /// Close it.
    Close,
}

/// Why forwarding stopped.
enum Fail {
    /// Nothing was sent to the client yet: answer with this reply.
    Reply(LocalReply),
    /// The response was already started or the client broke: close the connection.
    Abort,
}

/// Largest slice moved at once while streaming bodies.
const RELAY_CHUNK: usize = 16 * 1024;

/// Handles one request end to end. Returns what to do with the connection and the header
/// list for reuse by the next request.
pub async fn exchange<F: Filter>(
    state: &ShardState<F>,
    sg: &ShardGen<F>,
    client: &mut TcpStream,
    bufs: &mut ConnBufs,
    req: ParsedRequest,
    peer: SocketAddr,
    last: bool,
) -> (After, Headers) {
    let ParsedRequest { mut head, body, keep_alive, expect_continue } = req;
    let mut cx = Cx::new(peer, false, head.version);
    (cx.method, cx.path, cx.query) = (head.method.clone(), head.path.clone(), head.query.clone());
    cx.route = sg.generation.shared.router.find(&head);
    let client_keep = keep_alive && !last && !state.draining.get();
    let is_head = head.method == Method::Head;
    let version = head.version;

    let outcome = match sg.chain.on_request(&mut head, &mut cx).await {
        Flow::Respond(reply) => Err(Fail::Reply(reply)),
        Flow::Continue => match cx.route {
            None => Err(Fail::Reply(LocalReply::route_not_found())),
            Some(route) => {
                forward(
                    state,
                    sg,
                    client,
                    bufs,
                    &mut head,
                    body,
                    expect_continue,
                    route,
                    &mut cx,
                    client_keep,
                )
                .await
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
                ReqBody::Length(n) if bufs.rbuf.len() as u64 >= n => {
                    let _ = bufs.rbuf.split_to(n as usize);
                    false
                }
                ReqBody::Length(_) | ReqBody::Chunked => true,
            };
            // A drain that began while this request was in flight also closes the connection.
            let keep = client_keep && !reply.close && !body_pending && !state.draining.get();
            respond_local(sg, client, bufs, &reply, &mut cx, keep, is_head, version).await
        }
    };
    sg.chain.on_log(&cx);
    (after, std::mem::take(&mut head.headers))
}

#[allow(clippy::too_many_arguments)]
async fn respond_local<F: Filter>(
    sg: &ShardGen<F>,
    client: &mut TcpStream,
    bufs: &mut ConnBufs,
    reply: &LocalReply,
    cx: &mut Cx,
    keep: bool,
    is_head: bool,
    version: Version,
) -> After {
    let (mut resp, body) = local_reply_head(reply, &cx.request_id);
    sg.chain.on_response(&mut resp, cx);
    cx.status = reply.status;
    cx.error_code = Some(reply.code);
    let conn = connection_header(keep, version);
    let mut out = std::mem::take(&mut bufs.wbuf);
    out.clear();
    encode_response(&mut out, &resp, Framing::AsIs, conn);
    if !is_head {
        out.extend_from_slice(&body);
        cx.bytes_out = body.len() as u64;
    }
    let (res, out) = write_all(client, out, sg.config().http.body_timeout.0).await;
    bufs.wbuf = out;
    if res.is_ok() && keep { After::KeepAlive } else { After::Close }
}

fn connection_header(keep: bool, version: Version) -> ConnHeader {
    match (keep, version) {
        (false, _) => ConnHeader::Close,
        (true, Version::Http10) => ConnHeader::KeepAlive,
        (true, _) => ConnHeader::None,
    }
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
        let left = deadline.saturating_duration_since(Instant::now());
        if let Err(e) = read_more(&mut conn.stream, &mut conn.rbuf, 4096, left).await {
            return Err((e, got_bytes));
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn forward<F: Filter>(
    state: &ShardState<F>,
    sg: &ShardGen<F>,
    client: &mut TcpStream,
    bufs: &mut ConnBufs,
    head: &mut portcullis_core::pipeline::RequestHead,
    body: ReqBody,
    expect_continue: bool,
    route_idx: usize,
    cx: &mut Cx,
    client_keep: bool,
) -> Result<After, Fail> {
    let cfg = sg.config();
    let route = &cfg.routes[route_idx];
    let upstream = &sg.upstreams[sg.generation.shared.route_upstream[route_idx]];
    let max_body = route.max_body_bytes.unwrap_or(cfg.http.max_body_bytes).0;
    let idle = cfg.http.body_timeout.0;
    let is_head = head.method == Method::Head;
    if let ReqBody::Length(n) = body
        && n > max_body
    {
        return Err(Fail::Reply(LocalReply::payload_too_large(max_body)));
    }
    let deadline = Instant::now() + route.timeout.0;

    // A body that is already fully buffered is sent with the head in one write, and makes the
    // request safe to retry on a fresh connection if a pooled one turns out to be dead.
    let buffered: Option<Bytes> = match body {
        ReqBody::None => Some(Bytes::new()),
        ReqBody::Length(n) if bufs.rbuf.len() as u64 >= n => {
            cx.bytes_in = n;
            Some(bufs.rbuf.split_to(n as usize).freeze())
        }
        _ => None,
    };
    let up_framing = if body == ReqBody::Chunked { Framing::Chunked } else { Framing::AsIs };
    let limits = RelayLimits {
        max_bytes: max_body,
        idle,
        chunk: RELAY_CHUNK,
        max_trailer_bytes: cfg.http.max_header_bytes.0 as usize,
    };

    let mut attempt = 0;
    let sent_at = Instant::now();
    let (mut conn, resp) = loop {
        attempt += 1;
        let Some(addr) = upstream.pick() else {
            return Err(Fail::Reply(LocalReply::unavailable(
                "no_upstream_endpoint",
                "upstream has no endpoints",
            )));
        };
        cx.upstream_addr = Some(addr);
        // A retry (after a pooled connection turned out dead) always uses a fresh connection.
        let pooled = if attempt == 1 { state.pool.checkout(addr, upstream.idle_timeout) } else { None };
        let (mut conn, reused) = match pooled {
            Some(c) => (c, true),
            None => (state.pool.connect(addr, upstream.connect_timeout).await.map_err(connect_reply)?, false),
        };
        let retry_ok = reused && attempt == 1 && buffered.is_some();
        let mut out = std::mem::take(&mut bufs.wbuf);
        out.clear();
        encode_request(&mut out, head, up_framing);
        if let Some(b) = &buffered {
            out.extend_from_slice(b);
        }
        let (res, out) = write_all(&mut conn.stream, out, idle).await;
        bufs.wbuf = out;
        conn.requests += 1;
        if let Err(e) = res {
            if retry_ok {
                continue;
            }
            tracing::debug!(error = %e, "upstream write failed");
            return Err(Fail::Reply(LocalReply::bad_gateway("upstream_reset", "upstream connection failed")));
        }
        if buffered.is_none() {
            if expect_continue {
                let (res, _) = write_all(client, &b"HTTP/1.1 100 Continue\r\n\r\n"[..], idle).await;
                if res.is_err() {
                    return Err(Fail::Abort);
                }
            }
            let kind = match body {
                ReqBody::Length(n) => BodyIn::Length(n),
                _ => BodyIn::Chunked,
            };
            let out = if body == ReqBody::Chunked { BodyOut::Chunked } else { BodyOut::Raw };
            match relay(client, &mut bufs.rbuf, kind, &mut conn.stream, out, limits, &mut bufs.scratch).await
            {
                Ok(n) => cx.bytes_in = n,
                Err(RelayError::TooLarge(limit)) => {
                    return Err(Fail::Reply(LocalReply::payload_too_large(limit)));
                }
                Err(RelayError::Framing(e)) => {
                    return Err(Fail::Reply(LocalReply::bad_request(format!("invalid chunked body: {e}"))));
                }
                Err(RelayError::Source(_)) => return Err(Fail::Abort),
                Err(RelayError::Dest(e)) => {
                    tracing::debug!(error = %e, "upstream failed while receiving the body");
                    return Err(Fail::Reply(
                        LocalReply::bad_gateway("upstream_reset", "upstream failed while receiving the body")
                            .closing(),
                    ));
                }
            }
        }
        match read_response(&mut conn, deadline, is_head, cfg.http.max_header_bytes.0 as usize * 4).await {
            Ok(resp) => {
                cx.upstream_time = Some(sent_at.elapsed());
                break (conn, resp);
            }
            Err((IoFail::Timeout, _)) => {
                return Err(Fail::Reply(LocalReply::gateway_timeout("upstream did not answer in time")));
            }
            Err((_, false)) if retry_ok => continue,
            Err((IoFail::Io(e), true)) => {
                tracing::debug!(error = %e, "upstream sent an invalid response");
                return Err(Fail::Reply(LocalReply::bad_gateway(
                    "upstream_bad_response",
                    "upstream sent an invalid response",
                )));
            }
            Err((e, _)) => {
                tracing::debug!(error = %e, "upstream closed before responding");
                return Err(Fail::Reply(LocalReply::bad_gateway(
                    "upstream_reset",
                    "upstream closed the connection",
                )));
            }
        }
    };

    // Response toward the client.
    let ParsedResponse { head: mut resp_head, body: resp_body, reusable } = resp;
    sg.chain.on_response(&mut resp_head, cx);
    cx.status = resp_head.status;
    let http10 = head.version == Version::Http10;
    let (framing, body_in, body_out, mut keep) = match resp_body {
        RespBody::None => (Framing::AsIs, None, BodyOut::Raw, client_keep),
        RespBody::Length(n) => (Framing::AsIs, Some(BodyIn::Length(n)), BodyOut::Raw, client_keep),
        RespBody::Chunked if http10 => (Framing::Close, Some(BodyIn::Chunked), BodyOut::Raw, false),
        RespBody::Chunked => (Framing::Chunked, Some(BodyIn::Chunked), BodyOut::Chunked, client_keep),
        RespBody::UntilClose if http10 => (Framing::Close, Some(BodyIn::UntilClose), BodyOut::Raw, false),
        RespBody::UntilClose => (Framing::Chunked, Some(BodyIn::UntilClose), BodyOut::Chunked, client_keep),
    };
    // A drain that began while the upstream was answering announces the close on this response.
    keep &= !state.draining.get();
    let mut out = std::mem::take(&mut bufs.wbuf);
    out.clear();
    encode_response(&mut out, &resp_head, framing, connection_header(keep, head.version));
    let small = match body_in {
        None => true,
        Some(BodyIn::Length(n)) => conn.rbuf.len() as u64 >= n,
        _ => false,
    };
    if small {
        if let Some(BodyIn::Length(n)) = body_in {
            out.extend_from_slice(&conn.rbuf[..n as usize]);
            let _ = conn.rbuf.split_to(n as usize);
            cx.bytes_out = n;
        }
        let (res, out) = write_all(client, out, idle).await;
        bufs.wbuf = out;
        if res.is_err() {
            keep = false;
        }
    } else {
        let (res, out) = write_all(client, out, idle).await;
        bufs.wbuf = out;
        if res.is_err() {
            return Err(Fail::Abort);
        }
        let limits = RelayLimits { max_bytes: u64::MAX, ..limits };
        let kind = body_in.unwrap_or(BodyIn::Length(0));
        match relay(&mut conn.stream, &mut conn.rbuf, kind, client, body_out, limits, &mut bufs.scratch).await
        {
            Ok(n) => cx.bytes_out = n,
            Err(e) => {
                tracing::debug!(error = %e, "response body relay failed");
                return Err(Fail::Abort);
            }
        }
    }
    let retire = upstream.max_requests != 0 && conn.requests >= upstream.max_requests;
    if reusable && !retire && conn.rbuf.is_empty() && !matches!(body_in, Some(BodyIn::UntilClose)) {
        state.pool.checkin(conn, upstream.max_idle);
    }
    Ok(if keep { After::KeepAlive } else { After::Close })
}
