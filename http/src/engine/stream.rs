//! One request stream of a multiplexed client protocol (HTTP/2, HTTP/3) into the engine, the
//! same for both: the head converted from the `http` request parts (header limits), the body's
//! framing, the context, the in-flight count, the run through the engine and the log phase.
//! The stream's end decides the body: a stream the client already ended has none; otherwise a
//! declared length is kept, and a body without one is relayed to the stream's end.
//!
//! Owns: opening and running a request stream. Must not: frame anything (the protocol's
//! `Downstream` does) or accept streams (the protocol's connection does).

use std::future::{Future, poll_fn};
use std::rc::Rc;
use std::task::{Context, Poll};

use bytes::Bytes;
use portcullis_core::LocalReply;
use portcullis_core::pipeline::{Cx, Filter, Method, RequestHead, Version};

use crate::body::ReqBody;
use crate::convert::request_head;
use crate::engine::client::ClientMeta;
use crate::engine::downstream::Downstream;
use crate::engine::log::log_bare_reply;
use crate::engine::{Incoming, handle};
use crate::h1::encode::local_reply_head;
use crate::shard::state::{Inflight, ShardGen, ShardState};

/// A request stream, opened: its head is valid and it is counted in flight.
pub struct StreamRequest<'s, F> {
    state: &'s ShardState<F>,
    sg: Rc<ShardGen<F>>,
    cx: Cx,
    incoming: Incoming,
    _inflight: Inflight<'s>,
}

/// A request stream refused before it reached the engine (a head the codec refused, a 0-RTT
/// request not safe to replay): answer it with `answer`.
pub struct RefusedStream<'s, F> {
    sg: Rc<ShardGen<F>>,
    cx: Cx,
    reply: LocalReply,
    _inflight: Inflight<'s>,
}

/// Opens a request stream of `version` from its request `parts`; `ended` says the client
/// already ended the stream (so the request has no body). A refused head is the rare case: boxed.
pub fn open_stream<'s, F: Filter>(
    state: &'s ShardState<F>,
    client: &ClientMeta,
    parts: http::request::Parts,
    version: Version,
    ended: bool,
) -> Result<StreamRequest<'s, F>, Box<RefusedStream<'s, F>>> {
    let inflight = state.begin_request();
    let sg = state.current();
    let content_length = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let te_trailers = parts.headers.get(http::header::TE).is_some_and(|v| v == "trailers");
    let mut cx = Cx::new(client.addr, client.tls, version);
    cx.client_cert.clone_from(&client.client_cert);
    cx.alt_svc.clone_from(&client.alt_svc);
    cx.tls_version = client.tls_version;
    let head = match request_head(parts, sg.head_limits.max_headers, state.spares.headers(), version) {
        Ok(h) => h,
        Err(reply) => {
            cx.method = Method::Other(Bytes::from_static(b"-"));
            return Err(Box::new(RefusedStream { sg, cx, reply, _inflight: inflight }));
        }
    };
    let body = match content_length {
        _ if ended => ReqBody::None,
        Some(n) => ReqBody::Length(n),
        None => ReqBody::Streamed,
    };
    let incoming = Incoming { head, body, expect_continue: false, keep: true, te_trailers };
    Ok(StreamRequest { state, sg, cx, incoming, _inflight: inflight })
}

impl<'s, F: Filter> StreamRequest<'s, F> {
    /// The generation the request runs on.
    pub fn generation(&self) -> &Rc<ShardGen<F>> {
        &self.sg
    }

    /// The request head (filters have not run yet).
    pub fn head(&self) -> &RequestHead {
        &self.incoming.head
    }

    /// The request head, to mark it before the engine sees it.
    pub fn head_mut(&mut self) -> &mut RequestHead {
        &mut self.incoming.head
    }

    /// Whether the request is HEAD (its response carries no body).
    pub fn is_head(&self) -> bool {
        self.incoming.head.method == Method::Head
    }

    /// Refuses the request before the engine sees it, with `reply`.
    pub fn refuse(self, reply: LocalReply) -> RefusedStream<'s, F> {
        let StreamRequest { state, sg, mut cx, incoming, _inflight } = self;
        (cx.method, cx.path) = (incoming.head.method.clone(), incoming.head.path.clone());
        state.spares.give_headers(incoming.head.headers);
        RefusedStream { sg, cx, reply, _inflight }
    }

    /// Runs the request through the engine with `down` as its client side, then its log phase.
    pub async fn run<D: Downstream>(self, down: &mut D) {
        self.run_until(down, |_| Poll::Pending).await;
    }

    /// Like `run`, but `cancelled` (polled on the same task after each poll of the exchange)
    /// ends the exchange early when it is `Ready`: the client cancelled the stream (an HTTP/2
    /// reset). The exchange is dropped unfinished, which abandons its upstream request, and the
    /// request is logged as the client's cancellation (499, `client_reset`).
    pub async fn run_until<D: Downstream>(
        self,
        down: &mut D,
        mut cancelled: impl FnMut(&mut Context<'_>) -> Poll<()>,
    ) {
        let StreamRequest { state, sg, mut cx, incoming, _inflight } = self;
        // Boxed: the exchange's state machine is several KiB. Inline, it made the stream's task
        // as large, and `monoio::spawn` copied all of it for every stream (~3 % of the shard
        // under h2load); boxed, the spawned task holds only the arguments.
        let mut exchange = Box::pin(handle(state, &sg, down, incoming, &mut cx));
        let out = poll_fn(|tcx| match exchange.as_mut().poll(tcx) {
            Poll::Ready(out) => Poll::Ready(Some(out)),
            Poll::Pending => cancelled(tcx).map(|()| None),
        })
        .await;
        drop(exchange);
        match out {
            Some((_, head)) => state.spares.give_headers(head.headers),
            None => {
                cx.status = 499;
                cx.error_code = Some("client_reset");
            }
        }
        sg.chain.on_log(&cx);
    }
}

impl<F: Filter> RefusedStream<'_, F> {
    /// Sends the refusal (one JSON error shape) through `down` and runs the log phase.
    pub async fn answer<D: Downstream>(mut self, down: &mut D) {
        let (resp, body) = local_reply_head(&self.reply, b"");
        let idle = self.sg.config().http.body_timeout.0;
        down.send_local(&resp, &body, false, idle).await;
        log_bare_reply(&self.sg, &mut self.cx, &self.reply, body.len());
    }
}
