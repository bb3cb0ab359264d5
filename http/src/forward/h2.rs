//! The forward path toward HTTP/2 upstreams (`protocol = "h2"` / `"h2c"`): each attempt leases
//! a stream on a multiplexed connection (`upstream::h2`), sends the head converted by
//! `convert::request_of`, the body and the client's trailers, and waits for the response head
//! within the attempt's deadline; the response (and its trailers) goes to the client through
//! the same `Downstream` send path as HTTP/1.1 responses. Endpoint picks, retries, circuit
//! limits and outlier reports are the attempt loop's (`forward::retry`).
//!
//! Owns: one request's steps over an HTTP/2 stream toward an upstream (the `Transport` the
//! attempt loop runs). Must not: manage connections (that is `upstream::h2`), retry, or frame
//! client responses (that is the `Downstream`).

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use h2::SendStream;
use h2::client::ResponseFuture;
use portcullis_core::pipeline::{Filter, RequestHead, Version};

use crate::body::{BodyOut, RelayLimits, ReqBody};
use crate::convert::{request_of, response_head};
use crate::engine::downstream::{DetachedBody, Downstream, UpBody};
use crate::engine::exchange::{After, Exchange};
use crate::forward::connect::open;
use crate::forward::error::{Fail, UpstreamError};
use crate::forward::plan::Plan;
use crate::forward::retry::{Attempt, Transport, Tried, Won};
use crate::h1::response::RespBody;
use crate::h2::body::BodySink;
use crate::slice_io::SliceIo;
use crate::upstream::Pool;
use crate::upstream::h2::body::RespSource;
use crate::upstream::h2::{HandshakeError, Lease};

/// The HTTP/2 transport step of one request.
struct H2 {
    body: ReqBody,
    expect_continue: bool,
    flavor: u64,
    /// Bytes of a request body relayed on its own task (`pump`).
    pumped: Option<Rc<Cell<u64>>>,
}

impl Transport for H2 {
    type Conn = Lease;
    type Resp = http::Response<h2::RecvStream>;

    fn checkout(&mut self, pool: &Pool, addr: SocketAddr, _plan: &Plan<'_>) -> Option<Lease> {
        pool.h2.lease(addr, self.flavor)
    }

    /// Opens a connection to `addr` (TCP, TLS when configured) and makes it an HTTP/2 one.
    async fn open(&mut self, pool: &Pool, addr: SocketAddr, plan: &Plan<'_>) -> Result<Lease, UpstreamError> {
        let up = plan.upstream;
        let conn = open(pool, addr, up, plan.tls).await?;
        pool.h2.connect(conn, up.connect_timeout).await.map_err(|e| {
            tracing::debug!(%addr, upstream = %up.name, error = %e, "upstream HTTP/2 handshake failed");
            match e {
                HandshakeError::Timeout => UpstreamError::H2HandshakeTimeout,
                HandshakeError::Failed(_) => UpstreamError::H2HandshakeFailed,
            }
        })
    }

    /// One attempt on a leased stream: the head, the body and its trailers, then the response
    /// head by `try_deadline`.
    async fn attempt<F: Filter, D: Downstream>(
        &mut self,
        ex: &mut Exchange<'_, F, D>,
        plan: &Plan<'_>,
        lease: &mut Lease,
        at: Attempt,
        head: &mut RequestHead,
    ) -> Tried<Self::Resp> {
        let scheme = if plan.tls.is_some() { http::uri::Scheme::HTTPS } else { http::uri::Scheme::HTTP };
        let req = match request_of(head, scheme, at.addr, ex.te_trailers) {
            Ok(req) => req,
            Err(reply) => return Tried::Client(Fail::Reply(reply)),
        };
        let fresh = lease.fresh;
        let left = at.deadline.saturating_duration_since(Instant::now());
        let ready = match monoio::time::timeout(left, lease.sender().ready()).await {
            Ok(Ok(sender)) => sender,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "upstream HTTP/2 connection unusable");
                lease.conn().kill();
                return unusable(fresh);
            }
            Err(_) => return Tried::Failed(UpstreamError::Timeout),
        };
        let end = plan.buffered.as_ref().is_some_and(Bytes::is_empty);
        let mut sender = ready;
        let (response, mut send) = match sender.send_request(req, end) {
            Ok(pair) => pair,
            Err(e) => {
                tracing::debug!(error = %e, "upstream HTTP/2 connection refused a stream");
                lease.conn().kill();
                return unusable(fresh);
            }
        };
        match &plan.buffered {
            Some(b) if b.is_empty() => {}
            // h2 queues what the peer's window cannot take yet; the body is bounded by max_body.
            Some(b) => {
                if let Err(e) = send.send_data(b.clone(), true) {
                    tracing::debug!(error = %e, "upstream HTTP/2 stream failed while sending the body");
                    return unusable(fresh);
                }
            }
            None => {
                if let Some(detached) = ex.down.detach_body() {
                    // An HTTP/2 client's body goes on its own task: the response may start (and
                    // stream) while the client still sends, as bidirectional gRPC calls need.
                    let moved = Rc::new(Cell::new(0));
                    self.pumped = Some(moved.clone());
                    monoio::spawn(pump(detached, send, self.body, plan.limits, moved));
                    return response_by(response, at.deadline, false, fresh).await;
                }
                let mut sink = SliceIo(BodySink { send: &mut send });
                let relayed = ex
                    .down
                    .relay_body(self.body, self.expect_continue, &mut sink, BodyOut::Raw, plan.limits)
                    .await;
                match relayed {
                    Ok(n) => ex.cx.bytes_in = n,
                    Err(e) => return Tried::body_failed(e),
                }
                // A body read to its declared length still waits for the stream's end (and any
                // trailers), no longer than the body's idle timeout.
                let trailers = monoio::time::timeout(plan.limits.idle, ex.down.request_trailers()).await;
                let ended = match trailers {
                    Ok(Some(trailers)) => send.send_trailers(trailers),
                    Ok(None) => send.send_data(Bytes::new(), true),
                    Err(_) => return Tried::Client(Fail::Abort),
                };
                if let Err(e) = ended {
                    tracing::debug!(error = %e, "upstream HTTP/2 stream failed at the end of the body");
                    return Tried::Failed(UpstreamError::BodyEnd);
                }
            }
        }
        response_by(response, at.deadline, plan.buffered.is_some(), fresh).await
    }

    fn status(resp: &Self::Resp) -> u16 {
        resp.status().as_u16()
    }
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
            return Err(UpstreamError::UpgradeNeedsH1.into());
        }
        let state = self.state;
        let flavor = plan.tls.map_or(0, |t| t.flavor);
        let mut transport = H2 { body, expect_continue, flavor, pumped: None };
        let set = plan.set.clone();
        let Won { conn: _lease, resp, ep, tracked } =
            self.run_attempts(&mut transport, &mut plan, &set, head).await?;

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
        if let Some(moved) = transport.pumped {
            self.cx.bytes_in = moved.get();
        }
        state.spares.give_headers(resp_head.headers);
        drop(tracked);
        Ok(if sent?.keep { After::KeepAlive } else { After::Close })
    }
}

/// How an attempt ends on a connection that could not take the stream: a shared one may have
/// gone bad since its last use (the same endpoint again on a fresh one); a `fresh` one refused it.
fn unusable<R>(fresh: bool) -> Tried<R> {
    if fresh { Tried::Failed(UpstreamError::StreamRefused) } else { Tried::Stale }
}

/// Waits for the response head until `deadline`. A refused stream can go again elsewhere when
/// its body is still in hand (`buffered`): then it ends as `unusable`.
async fn response_by(
    response: ResponseFuture,
    deadline: Instant,
    buffered: bool,
    fresh: bool,
) -> Tried<http::Response<h2::RecvStream>> {
    let left = deadline.saturating_duration_since(Instant::now());
    match monoio::time::timeout(left, response).await {
        Ok(Ok(resp)) => Tried::Answered(resp),
        Ok(Err(e))
            if buffered
                && (e.reason() == Some(h2::Reason::REFUSED_STREAM) || e.is_go_away() || e.is_io()) =>
        {
            // Refused (RFC 9113 8.7), past the upstream's GOAWAY, or the connection broke before
            // any answer: like a dead pooled HTTP/1.1 connection, sent again on a fresh one.
            tracing::debug!(error = %e, "upstream HTTP/2 stream refused or its connection lost");
            unusable(fresh)
        }
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "upstream HTTP/2 stream failed before the response");
            Tried::Failed(UpstreamError::StreamClosed)
        }
        Err(_) => Tried::Failed(UpstreamError::Timeout),
    }
}

/// Relays a detached client request body, then its trailers (or the end of the stream), to the
/// upstream stream; `moved` gets the body's length. On a failure the upstream stream is reset,
/// which fails the exchange waiting for (or streaming) the response.
async fn pump<B: DetachedBody>(
    body: B,
    mut send: SendStream<Bytes>,
    declared: ReqBody,
    limits: RelayLimits,
    moved: Rc<Cell<u64>>,
) {
    let declared = match declared {
        ReqBody::Length(n) => Some(n),
        _ => None,
    };
    let relayed = body.relay_to(&mut SliceIo(BodySink { send: &mut send }), declared, limits).await;
    let ended = match relayed {
        Ok((n, trailers)) => {
            moved.set(n);
            match trailers {
                Some(trailers) => send.send_trailers(trailers),
                None => send.send_data(Bytes::new(), true),
            }
        }
        Err(e) => {
            tracing::debug!(error = %e, "request body relay to the HTTP/2 upstream failed");
            send.send_reset(h2::Reason::CANCEL);
            return;
        }
    };
    if let Err(e) = ended {
        tracing::debug!(error = %e, "HTTP/2 upstream stream failed at the end of the body");
    }
}
