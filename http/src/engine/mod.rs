//! The engine: one request from any client protocol, the same for all. It routes, runs the
//! filter chain's request phase, hands the request to `forward` (or answers locally: one JSON
//! error shape), and runs the response phase of local replies. Its parts: `client` (what the
//! engine knows of the connection), `downstream` (the client side of an exchange, no protocol's
//! types in it), `exchange` (the state one forwarded request works on, its response step),
//! `stream` (the opening of an HTTP/2 or HTTP/3 request stream, shared), `log` (replies made
//! before a request existed). The re-exports below are the whole public engine API.
//!
//! Owns: the order of phases for one request, for every client protocol. Must not: know any
//! filter by name (the chain is a type parameter), parse heads itself, frame responses for a
//! client (that is the `Downstream`), or talk to upstreams (that is `forward`).

pub(crate) mod client;
pub(crate) mod downstream;
pub(crate) mod exchange;
pub(crate) mod log;
pub(crate) mod stream;

// The engine's public API, for protocol servers outside this crate (HTTP/3 in `quic`): open a
// request stream, implement its `Downstream`, and relay bodies with the shared relay.
pub use crate::body::{BodyIn, BodyOut, RelayError, RelayLimits, ReqBody, relay};
pub use crate::convert::response_of;
pub use crate::io::IoFail;
pub use crate::slice_io::{Dest, SliceIo, SliceRead, SliceWrite};
pub use client::ClientMeta;
pub use downstream::{DetachedBody, Downstream, NoDetach, Sent, UpBody, UpSource, stream_body_in};
pub use stream::{RefusedStream, StreamRequest, open_stream};

use portcullis_core::LocalReply;
use portcullis_core::pipeline::{Cx, Filter, Flow, Method, RequestHead};

use crate::forward::error::Fail;
use crate::h1::encode::local_reply_head;
use crate::shard::state::{ShardGen, ShardState};
use exchange::{After, Exchange};

/// One request as the engine receives it from any client protocol.
pub(crate) struct Incoming {
    /// The head (filters may change it).
    pub(crate) head: RequestHead,
    /// Body framing.
    pub(crate) body: ReqBody,
    /// The client asked for `100 Continue` before sending the body.
    pub(crate) expect_continue: bool,
    /// The client connection may stay open after this exchange (HTTP/1.1 keep-alive; always
    /// true for HTTP/2 streams).
    pub(crate) keep: bool,
    /// The client sent `TE: trailers` (forwarded to HTTP/2 upstreams; HTTP/1.1 clients get
    /// response trailers only then).
    pub(crate) te_trailers: bool,
}

/// The engine, the same for every client protocol: route, run the chain, forward (or answer
/// locally). Returns what to do with the client connection and the head for reuse.
pub(crate) async fn handle<F: Filter, D: Downstream>(
    state: &ShardState<F>,
    sg: &ShardGen<F>,
    down: &mut D,
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
                let mut ex = Exchange { state, sg, down: &mut *down, cx: &mut *cx, te_trailers };
                ex.forward(&mut head, body, expect_continue, route, client_keep).await
            }
        },
    };
    let reply = match outcome {
        Ok(after) => return (after, head),
        Err(Fail::Abort) => return (After::Close, head),
        Err(Fail::Reply(reply)) => reply,
        // Every upstream failure becomes its one JSON reply here.
        Err(Fail::Upstream(e)) => e.reply(),
    };
    // A body the client still has in flight would be parsed as the next request: a fully
    // buffered one is discarded, otherwise the connection closes after the reply.
    let body_pending = match body {
        ReqBody::None => false,
        ReqBody::Length(n) if cx.bytes_in >= n => false,
        b => down.buffered_body(b).is_none(),
    };
    // A drain that began while this request was in flight also closes the connection.
    let keep = client_keep && !reply.close && !body_pending && !state.draining.get();
    let after = respond_local(sg, down, &reply, cx, keep, is_head).await;
    (after, head)
}

async fn respond_local<F: Filter, D: Downstream>(
    sg: &ShardGen<F>,
    down: &mut D,
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
    let ok = down.send_local(&resp, &body, keep, sg.config().http.body_timeout.0).await;
    if ok && keep { After::KeepAlive } else { After::Close }
}
