//! One HTTP/3 request stream through the shared engine: the head converted from the h3 request,
//! the `Downstream` that answers with HEADERS and DATA frames, and the task running one exchange.
//! 0-RTT requests (before the handshake is confirmed) are only let through for safe methods,
//! marked `Early-Data: 1` toward the upstream; others get 425 Too Early.
//!
//! Owns: HTTP/3 client-side framing for one stream. Must not: route, filter or talk to upstreams
//! (that is the engine in `portcullis_http::proxy`).

use std::rc::Rc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use monoio::io::AsyncWriteRent;
use portcullis_core::LocalReply;
use portcullis_core::pipeline::{Cx, Filter, Method, ResponseHead, Version};
use portcullis_http::body::{BodyIn, BodyOut, RelayError, RelayLimits, relay};
use portcullis_http::conn::ClientMeta;
use portcullis_http::convert::{request_head, response_of};
use portcullis_http::downstream::{Downstream, Sent, UpBody, UpSource, stream_body_in};
use portcullis_http::h1::encode::local_reply_head;
use portcullis_http::h1::request::ReqBody;
use portcullis_http::io::IoFail;
use portcullis_http::proxy::{Incoming, handle, log_bare_reply};
use portcullis_http::shard::{ShardGen, ShardState};
use portcullis_http::slice_io::SliceIo;

use super::body::{BodySink, BodySource, RecvHalf, SendHalf};

fn h3_err(e: h3::error::StreamError) -> RelayError {
    RelayError::Dest(IoFail::Io(std::io::Error::other(e.to_string())))
}

/// The client side of one HTTP/3 stream.
struct H3Down {
    send: SendHalf,
    recv: RecvHalf,
    is_head: bool,
}

impl Downstream for H3Down {
    fn buffered_body(&mut self, body: ReqBody) -> Option<Bytes> {
        match body {
            ReqBody::None => Some(Bytes::new()),
            _ => None,
        }
    }

    async fn relay_body<W: AsyncWriteRent>(
        &mut self,
        body: ReqBody,
        _expect_continue: bool,
        up: &mut W,
        out: BodyOut,
        limits: RelayLimits,
        scratch: &mut Vec<u8>,
    ) -> Result<u64, RelayError> {
        // The stream's end ends the body; a declared length is still enforced.
        let kind = match body {
            ReqBody::Length(n) => BodyIn::Length(n),
            _ => BodyIn::UntilClose,
        };
        let mut src = SliceIo(BodySource { recv: &mut self.recv, pending: Bytes::new() });
        let mut buf = BytesMut::new();
        relay(&mut src, &mut buf, kind, up, out, limits, scratch).await
    }

    async fn send_response<R: UpSource>(
        &mut self,
        head: &ResponseHead,
        body: UpBody<'_, R>,
        _keep: bool,
        limits: RelayLimits,
        _wbuf: &mut Vec<u8>,
        scratch: &mut Vec<u8>,
    ) -> Result<Sent, RelayError> {
        self.send.send_response(response_of(head)).await.map_err(h3_err)?;
        let kind = stream_body_in(body.kind);
        let (mut bytes, mut head_at) = (0, None);
        if let Some(kind) = kind.filter(|_| !self.is_head) {
            head_at = Some(std::time::Instant::now());
            let mut sink = SliceIo(BodySink { send: &mut self.send });
            bytes = relay(body.stream, body.buf, kind, &mut sink, BodyOut::Raw, limits, scratch).await?;
        }
        if let Some(trailers) = body.stream.take_trailers() {
            self.send.send_trailers(trailers).await.map_err(h3_err)?;
        }
        self.send.finish().await.map_err(h3_err)?;
        Ok(Sent { bytes, keep: true, head_at })
    }

    async fn send_local(
        &mut self,
        head: &ResponseHead,
        body: &[u8],
        _keep: bool,
        _wbuf: &mut Vec<u8>,
        _idle: Duration,
    ) -> bool {
        if self.send.send_response(response_of(head)).await.is_err() {
            return false;
        }
        if !self.is_head
            && !body.is_empty()
            && self.send.send_data(Bytes::copy_from_slice(body)).await.is_err()
        {
            return false;
        }
        self.send.finish().await.is_ok()
    }
}

/// Whether a method is safe to replay (0-RTT data can be replayed by an attacker).
fn replay_safe(m: &Method) -> bool {
    matches!(m, Method::Get | Method::Head | Method::Options)
}

/// Answers a stream that never reached the engine (bad head, too early).
async fn reject<F: Filter>(sg: &ShardGen<F>, cx: &mut Cx, send: &mut SendHalf, reply: &LocalReply) {
    let (resp, body) = local_reply_head(reply, b"");
    let body_len = body.len();
    if send.send_response(response_of(&resp)).await.is_ok() {
        let _ = send.send_data(Bytes::from(body)).await;
        let _ = send.finish().await;
    }
    log_bare_reply(sg, cx, reply, body_len);
}

/// Serves one request stream. `early` is true while the connection's handshake is not yet
/// confirmed (the request came in 0-RTT data).
pub(crate) async fn serve_stream<F: Filter>(
    state: Rc<ShardState<F>>,
    req: http::Request<()>,
    stream: h3::server::RequestStream<h3_quinn::BidiStream<Bytes>, Bytes>,
    client: ClientMeta,
    early: bool,
) {
    let sg = state.current();
    state.inflight.set(state.inflight.get() + 1);
    let _inflight = Inflight(&state);
    let (mut send, recv) = stream.split();
    let (parts, ()) = req.into_parts();
    let content_length = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let te_trailers = parts.headers.get(http::header::TE).is_some_and(|v| v == "trailers");
    let mut cx = Cx::new(client.addr, true, Version::H3);
    cx.tls_version = client.tls_version;
    let mut head = match request_head(parts, sg.head_limits.max_headers, state.spares.headers(), Version::H3)
    {
        Ok(h) => h,
        Err(reply) => {
            cx.method = Method::Other(Bytes::from_static(b"-"));
            return reject(&sg, &mut cx, &mut send, &reply).await;
        }
    };
    if early {
        if !replay_safe(&head.method) {
            let reply = LocalReply::new(
                425,
                "too_early",
                "this request was sent in 0-RTT data and cannot be replayed safely; retry after the handshake",
                portcullis_core::Source::Downstream,
            );
            (cx.method, cx.path) = (head.method.clone(), head.path.clone());
            return reject(&sg, &mut cx, &mut send, &reply).await;
        }
        head.headers.set("early-data", "1");
    }
    // A request without a declared length has a body unless the method says otherwise: the
    // stream's end ends it (forwarded chunked to HTTP/1.1 upstreams).
    let body = match content_length {
        Some(0) => ReqBody::None,
        Some(n) => ReqBody::Length(n),
        None if matches!(head.method, Method::Get | Method::Head | Method::Delete | Method::Options) => {
            ReqBody::None
        }
        None => ReqBody::Chunked,
    };
    let is_head = head.method == Method::Head;
    let mut down = H3Down { send, recv, is_head };
    let mut wbuf = state.spares.wbuf();
    let mut scratch = Vec::new();
    let incoming = Incoming { head, body, expect_continue: false, keep: true, te_trailers };
    let (_, head) = handle(&state, &sg, &mut down, &mut wbuf, &mut scratch, incoming, &mut cx).await;
    sg.chain.on_log(&cx);
    state.spares.give_headers(head.headers);
    state.spares.give_wbuf(wbuf);
}

struct Inflight<'a, F>(&'a ShardState<F>);

impl<F> Drop for Inflight<'_, F> {
    fn drop(&mut self) {
        self.0.inflight.set(self.0.inflight.get() - 1);
    }
}
