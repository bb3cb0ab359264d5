//! One HTTP/3 request stream through the shared engine: the `Downstream` that answers with
//! HEADERS and DATA frames, and the task that opens the stream (`engine::stream`, shared with
//! HTTP/2) and runs it. 0-RTT requests (before the handshake is confirmed) are only let through
//! for safe methods, marked `Early-Data: 1` toward the upstream; others get 425 Too Early.
//!
//! Owns: HTTP/3 client-side framing for one stream. Must not: convert heads, count requests,
//! route, filter or talk to upstreams (that is `portcullis_http::engine`).

use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use monoio::io::AsyncWriteRent;
use portcullis_core::LocalReply;
use portcullis_core::pipeline::{Filter, Method, ResponseHead, Version};
use portcullis_http::ShardState;
use portcullis_http::engine::{
    BodyIn, BodyOut, ClientMeta, Downstream, IoFail, NoDetach, RelayError, RelayLimits, ReqBody, Sent,
    SliceIo, UpBody, UpSource, open_stream, relay, response_of, stream_body_in,
};

use super::body::{BodySink, BodySource, RecvHalf, SendHalf};

fn h3_err(e: h3::error::StreamError) -> RelayError {
    RelayError::Dest(IoFail::Io(std::io::Error::other(e.to_string())))
}

/// The client side of one HTTP/3 stream.
struct H3Down {
    send: SendHalf,
    recv: RecvHalf,
    /// Request body bytes received while opening the stream.
    pending: Bytes,
    is_head: bool,
}

impl Downstream for H3Down {
    type Detached = NoDetach;

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
    ) -> Result<u64, RelayError> {
        // The stream's end ends the body; a declared length is still enforced.
        let kind = match body {
            ReqBody::Length(n) => BodyIn::Length(n),
            _ => BodyIn::UntilClose,
        };
        let pending = std::mem::take(&mut self.pending);
        let mut src = SliceIo(BodySource { recv: &mut self.recv, pending });
        let mut buf = BytesMut::new();
        relay(&mut src, &mut buf, kind, up, out, limits, &mut Vec::new()).await
    }

    async fn send_response<R: UpSource>(
        &mut self,
        head: &ResponseHead,
        body: UpBody<'_, R>,
        _keep: bool,
        limits: RelayLimits,
    ) -> Result<Sent, RelayError> {
        self.send.send_response(response_of(head)).await.map_err(h3_err)?;
        let kind = stream_body_in(body.kind);
        let (mut bytes, mut head_at) = (0, None);
        if let Some(kind) = kind.filter(|_| !self.is_head) {
            head_at = Some(std::time::Instant::now());
            let mut sink = SliceIo(BodySink { send: &mut self.send });
            bytes =
                relay(body.stream, body.buf, kind, &mut sink, BodyOut::Raw, limits, &mut Vec::new()).await?;
        }
        if let Some(trailers) = body.stream.take_trailers() {
            self.send.send_trailers(trailers).await.map_err(h3_err)?;
        }
        self.send.finish().await.map_err(h3_err)?;
        Ok(Sent { bytes, keep: true, head_at })
    }

    async fn send_local(&mut self, head: &ResponseHead, body: &[u8], _keep: bool, _idle: Duration) -> bool {
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

/// Whether the client already ended the stream (no body follows), found by one poll that never
/// waits; body bytes that already arrived are kept in `pending`. As on HTTP/2 (END_STREAM on
/// the HEADERS frame), a request whose stream has not ended yet has a body unless it declared
/// a length of zero.
fn ended_now(recv: &mut RecvHalf, pending: &mut Bytes) -> bool {
    let mut cx = Context::from_waker(Waker::noop());
    match recv.poll_recv_data(&mut cx) {
        Poll::Ready(Ok(None)) => true,
        Poll::Ready(Ok(Some(mut chunk))) => {
            let n = chunk.remaining();
            *pending = chunk.copy_to_bytes(n);
            false
        }
        Poll::Ready(Err(_)) | Poll::Pending => false,
    }
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
    let (send, mut recv) = stream.split();
    let (parts, ()) = req.into_parts();
    let mut pending = Bytes::new();
    let ended = ended_now(&mut recv, &mut pending);
    let mut opened = match open_stream(&state, &client, parts, Version::H3, ended) {
        Ok(opened) => opened,
        Err(refused) => {
            let mut down = H3Down { send, recv, pending, is_head: false };
            return refused.answer(&mut down).await;
        }
    };
    let mut down = H3Down { send, recv, pending, is_head: opened.is_head() };
    if early {
        if !replay_safe(&opened.head().method) {
            let reply = LocalReply::new(
                425,
                "too_early",
                "this request was sent in 0-RTT data and cannot be replayed safely; retry after the handshake",
                portcullis_core::Source::Downstream,
            );
            return opened.refuse(reply).answer(&mut down).await;
        }
        opened.head_mut().headers.set("early-data", "1");
    }
    opened.run(&mut down).await;
}
