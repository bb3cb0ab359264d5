//! The forward path toward HTTP/2 upstreams (`protocol = "h2"` / `"h2c"`): each attempt leases
//! a stream on a multiplexed connection (`upstream::h2`), sends the head converted by
//! `convert::request_of`, the body and the client's trailers, and waits for the response head
//! within the attempt's deadline; the response (and its trailers) goes to the client through
//! the same `Downstream` send path as HTTP/1.1 responses. Endpoint picks, retries, circuit
//! limits and outlier reports are the ones the HTTP/1.1 path uses (`Plan`, `Attempts`).
//!
//! Owns: the order of one request's steps over HTTP/2 toward an upstream and the mapping of its
//! failures to 502/504. Must not: manage connections (that is `upstream::h2`) or frame client
//! responses (that is the `Downstream`).

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use h2::SendStream;
use h2::client::ResponseFuture;
use portcullis_core::LocalReply;
use portcullis_core::pipeline::{Filter, RequestHead, Version};

use crate::body::{BodyIn, BodyOut, RelayLimits, relay};
use crate::convert::{request_of, response_head};
use crate::downstream::{Downstream, UpBody};
use crate::h1::request::ReqBody;
use crate::h1::response::RespBody;
use crate::h2::body::{BodySink, BodySource};
use crate::proxy::{After, Exchange, Fail, Plan, body_fail, circuit_open, no_endpoint, open, retry_or_fail};
use crate::slice_io::SliceIo;
use crate::upstream::h2::body::RespSource;
use crate::upstream::h2::{HandshakeError, Lease};
use crate::upstream::{Outcome, stamp_deadline};

fn reset_reply(what: &'static str) -> Fail {
    Fail::Reply(LocalReply::bad_gateway("upstream_reset", what))
}

/// How far one attempt got before it failed.
enum Sent {
    /// The response head arrived.
    Answered(http::Response<h2::RecvStream>),
    /// The connection could not take the request, or lost it before any answer while its body
    /// is still in hand: it may go again on a fresh connection.
    Unusable,
    /// The upstream failed after the request was (maybe) sent.
    Failed(Fail),
    /// The client side failed (its body): not the endpoint's fault, never retried.
    Client(Fail),
}

impl<F: Filter, D: Downstream> Exchange<'_, F, D> {
    /// The request's forward over HTTP/2 streams.
    pub(crate) async fn forward_h2(
        &mut self,
        head: &mut RequestHead,
        body: ReqBody,
        expect_continue: bool,
        mut plan: Plan<'_>,
        client_keep: bool,
    ) -> Result<After, Fail> {
        if self.cx.upgrade.is_some() {
            return Err(Fail::Reply(LocalReply::bad_gateway(
                "upstream_protocol",
                "WebSocket upgrades need an HTTP/1.1 upstream",
            )));
        }
        let state = self.state;
        let (upstream, set) = (plan.upstream, plan.set.clone());
        let flavor = plan.tls.map_or(0, |t| t.flavor);
        // Set after a shared connection turned out unusable: try the same endpoint on a fresh one.
        let mut stale_on: Option<usize> = None;
        let mut tracked;
        let mut sent_at;
        // Bytes of a request body relayed on its own task (`pump`).
        let mut pumped = None;

        let (resp, ep, _lease) = loop {
            sent_at = Instant::now();
            self.cx.upstream_attempt(sent_at);
            let picked = match stale_on.take() {
                Some(ep) => Some((ep, true)),
                None => plan.attempts.pick(&set, plan.key).map(|ep| (ep, false)),
            };
            let Some((ep, after_stale)) = picked else {
                return Err(Fail::Reply(no_endpoint()));
            };
            let addr = set.eps[ep].addr;
            tracked = Some(set.track(ep));
            self.cx.upstream_addr = Some(addr);
            let leased = if after_stale { None } else { state.pool.h2.lease(addr, flavor) };
            let lease = match leased {
                Some(lease) => lease,
                None => {
                    let Some(_pending) = upstream.begin_connect(&set, &state.pool) else {
                        return Err(Fail::Reply(circuit_open(&upstream.name)));
                    };
                    match self.connect(&plan, addr).await {
                        Ok(lease) => lease,
                        Err(fail) => {
                            upstream.report(&set, ep, Outcome::Failure);
                            retry_or_fail!(plan, ep, fail);
                        }
                    }
                }
            };
            let try_deadline = plan.try_deadline();
            let left = try_deadline.saturating_duration_since(Instant::now());
            stamp_deadline(&mut head.headers, upstream.deadline_header.as_deref(), left);
            let scheme = if plan.tls.is_some() { http::uri::Scheme::HTTPS } else { http::uri::Scheme::HTTP };
            let req = request_of(head, scheme, addr, self.te_trailers).map_err(Fail::Reply)?;
            let outcome =
                self.attempt(&plan, &lease, req, body, expect_continue, try_deadline, &mut pumped).await;
            match outcome {
                Sent::Answered(resp) => {
                    let status = resp.status().as_u16();
                    if plan.attempts.retries_status(status)
                        && let Some(wait) = plan.attempts.retry(ep)
                    {
                        upstream.report(&set, ep, Outcome::Failure);
                        monoio::time::sleep(wait).await;
                        continue;
                    }
                    self.cx.upstream_answered(sent_at);
                    break (resp, ep, lease);
                }
                Sent::Unusable if !lease.fresh => {
                    stale_on = Some(ep);
                    continue;
                }
                Sent::Unusable => {
                    upstream.report(&set, ep, Outcome::Failure);
                    retry_or_fail!(plan, ep, reset_reply("upstream refused the HTTP/2 stream"));
                }
                Sent::Client(fail) => return Err(fail),
                Sent::Failed(fail) => {
                    upstream.report(&set, ep, Outcome::Failure);
                    if Instant::now() >= plan.deadline {
                        return Err(fail);
                    }
                    retry_or_fail!(plan, ep, fail);
                }
            }
        };

        let (parts, recv) = resp.into_parts();
        let mut resp_head = response_head(&parts, state.spares.headers());
        self.response_head(&plan, ep, &mut resp_head);
        let length = parts
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let kind = match length {
            _ if recv.is_end_stream() => RespBody::None,
            Some(n) => RespBody::Length(n),
            None => RespBody::UntilClose,
        };
        // HTTP/2 and HTTP/3 clients always take trailers; HTTP/1.1 ones only after `TE: trailers`.
        let want_trailers = self.te_trailers || !matches!(self.cx.version, Version::Http10 | Version::Http11);
        let mut src = RespSource::new(recv, want_trailers);
        let mut buf = BytesMut::new();
        let keep = client_keep && !state.draining.get();
        let up_body = UpBody { stream: &mut src, buf: &mut buf, kind };
        let sent = self.send_response(&resp_head, up_body, keep, plan.limits).await;
        if let Some(moved) = pumped {
            self.cx.bytes_in = moved.get();
        }
        state.spares.give_headers(resp_head.headers);
        drop(tracked);
        Ok(if sent?.keep { After::KeepAlive } else { After::Close })
    }

    /// Opens a connection to `addr` (TCP, TLS when configured) and makes it an HTTP/2 one.
    async fn connect(&mut self, plan: &Plan<'_>, addr: SocketAddr) -> Result<Lease, Fail> {
        let up = plan.upstream;
        let conn = open(&self.state.pool, addr, up, plan.tls).await?;
        self.state.pool.h2.connect(conn, up.connect_timeout).await.map_err(|e| {
            tracing::debug!(%addr, upstream = %up.name, error = %e, "upstream HTTP/2 handshake failed");
            Fail::Reply(match e {
                HandshakeError::Timeout => LocalReply::gateway_timeout("upstream HTTP/2 handshake timed out"),
                HandshakeError::Failed(_) => {
                    LocalReply::bad_gateway("upstream_connect_failed", "upstream HTTP/2 handshake failed")
                }
            })
        })
    }

    /// One attempt on a leased stream: the head, the body and its trailers, then the response
    /// head by `try_deadline`.
    #[allow(clippy::too_many_arguments)]
    async fn attempt(
        &mut self,
        plan: &Plan<'_>,
        lease: &Lease,
        req: http::Request<()>,
        body: ReqBody,
        expect_continue: bool,
        try_deadline: Instant,
        pumped: &mut Option<Rc<Cell<u64>>>,
    ) -> Sent {
        let left = try_deadline.saturating_duration_since(Instant::now());
        let ready = match monoio::time::timeout(left, lease.sender().ready()).await {
            Ok(Ok(sender)) => sender,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "upstream HTTP/2 connection unusable");
                lease.conn().kill();
                return Sent::Unusable;
            }
            Err(_) => return Sent::Failed(timed_out()),
        };
        let end = plan.buffered.as_ref().is_some_and(Bytes::is_empty);
        let mut sender = ready;
        let (response, mut send) = match sender.send_request(req, end) {
            Ok(pair) => pair,
            Err(e) => {
                tracing::debug!(error = %e, "upstream HTTP/2 connection refused a stream");
                lease.conn().kill();
                return Sent::Unusable;
            }
        };
        match &plan.buffered {
            Some(b) if b.is_empty() => {}
            // h2 queues what the peer's window cannot take yet; the body is bounded by max_body.
            Some(b) => {
                if let Err(e) = send.send_data(b.clone(), true) {
                    tracing::debug!(error = %e, "upstream HTTP/2 stream failed while sending the body");
                    return Sent::Unusable;
                }
            }
            None => {
                if let Some(recv) = self.down.take_h2_body() {
                    // An HTTP/2 client's body goes on its own task: the response may start (and
                    // stream) while the client still sends, as bidirectional gRPC calls need.
                    let moved = Rc::new(Cell::new(0));
                    *pumped = Some(moved.clone());
                    monoio::spawn(pump(recv, send, body, plan.limits, moved));
                    return response_by(response, try_deadline, false).await;
                }
                let mut sink = SliceIo(BodySink { send: &mut send });
                let relayed = self
                    .down
                    .relay_body(body, expect_continue, &mut sink, BodyOut::Raw, plan.limits, self.scratch)
                    .await;
                match relayed {
                    Ok(n) => self.cx.bytes_in = n,
                    Err(e) => {
                        let (fail, upstream_failed) = body_fail(e);
                        return if upstream_failed { Sent::Failed(fail) } else { Sent::Client(fail) };
                    }
                }
                // A body read to its declared length still waits for the stream's end (and any
                // trailers), no longer than the body's idle timeout.
                let trailers = monoio::time::timeout(plan.limits.idle, self.down.request_trailers()).await;
                let ended = match trailers {
                    Ok(Some(trailers)) => send.send_trailers(trailers),
                    Ok(None) => send.send_data(Bytes::new(), true),
                    Err(_) => return Sent::Client(Fail::Abort),
                };
                if let Err(e) = ended {
                    tracing::debug!(error = %e, "upstream HTTP/2 stream failed at the end of the body");
                    return Sent::Failed(reset_reply("upstream failed while receiving the body"));
                }
            }
        }
        response_by(response, try_deadline, plan.buffered.is_some()).await
    }
}

fn timed_out() -> Fail {
    Fail::Reply(LocalReply::gateway_timeout("upstream did not answer in time"))
}

/// Waits for the response head until `deadline`. A refused stream can go again elsewhere when
/// its body is still in hand (`buffered`).
async fn response_by(response: ResponseFuture, deadline: Instant, buffered: bool) -> Sent {
    let left = deadline.saturating_duration_since(Instant::now());
    match monoio::time::timeout(left, response).await {
        Ok(Ok(resp)) => Sent::Answered(resp),
        Ok(Err(e))
            if buffered
                && (e.reason() == Some(h2::Reason::REFUSED_STREAM) || e.is_go_away() || e.is_io()) =>
        {
            // Refused (RFC 9113 8.7), past the upstream's GOAWAY, or the connection broke before
            // any answer: like a dead pooled HTTP/1.1 connection, sent again on a fresh one.
            tracing::debug!(error = %e, "upstream HTTP/2 stream refused or its connection lost");
            Sent::Unusable
        }
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "upstream HTTP/2 stream failed before the response");
            Sent::Failed(reset_reply("upstream closed the stream"))
        }
        Err(_) => Sent::Failed(timed_out()),
    }
}

/// Relays an HTTP/2 client's request body, then its trailers (or the end of the stream), to the
/// upstream stream; `moved` gets the body's length. On a failure the upstream stream is reset,
/// which fails the exchange waiting for (or streaming) the response.
async fn pump(
    mut recv: h2::RecvStream,
    mut send: SendStream<Bytes>,
    body: ReqBody,
    limits: RelayLimits,
    moved: Rc<Cell<u64>>,
) {
    let kind = match body {
        ReqBody::Length(n) => BodyIn::Length(n),
        _ => BodyIn::UntilClose,
    };
    let mut scratch = Vec::new();
    let relayed = {
        let mut src = SliceIo(BodySource { recv: &mut recv, pending: Bytes::new() });
        let mut sink = SliceIo(BodySink { send: &mut send });
        relay(&mut src, &mut BytesMut::new(), kind, &mut sink, BodyOut::Raw, limits, &mut scratch).await
    };
    match relayed {
        Ok(n) => moved.set(n),
        Err(e) => {
            tracing::debug!(error = %e, "request body relay to the HTTP/2 upstream failed");
            send.send_reset(h2::Reason::CANCEL);
            return;
        }
    }
    let ended = match monoio::time::timeout(limits.idle, recv.trailers()).await {
        Ok(Ok(Some(trailers))) => send.send_trailers(trailers),
        Ok(Ok(None)) => send.send_data(Bytes::new(), true),
        _ => {
            send.send_reset(h2::Reason::CANCEL);
            return;
        }
    };
    if let Err(e) = ended {
        tracing::debug!(error = %e, "HTTP/2 upstream stream failed at the end of the body");
    }
}
