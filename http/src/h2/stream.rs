//! One HTTP/2 stream through the shared engine: the `Downstream` that sends responses as HEADERS
//! and DATA frames (and hands its request body over for relaying on its own task), and the task
//! that opens the stream (`engine::stream`, shared with HTTP/3) and runs it.
//!
//! Owns: HTTP/2 client-side framing for one stream. Must not: convert heads, count requests,
//! route, filter or talk to upstreams (that is `crate::engine`).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use h2::server::SendResponse;
use h2::{RecvStream, SendStream};
use monoio::io::AsyncWriteRent;
use portcullis_core::pipeline::{Filter, ResponseHead, Version};

use super::body::{BodySink, BodySource};
use super::reset::reset_watch;
use crate::body::{BodyIn, BodyOut, RelayError, RelayLimits, ReqBody, relay};
use crate::convert::response_of;
use crate::engine::client::ClientMeta;
use crate::engine::downstream::{DetachedBody, Downstream, Sent, UpBody, UpSource, stream_body_in};
use crate::engine::stream::open_stream;
use crate::io::IoFail;
use crate::shard::state::ShardState;
use crate::slice_io::SliceIo;

fn h2_err(e: h2::Error) -> RelayError {
    RelayError::Dest(IoFail::Io(std::io::Error::other(e)))
}

/// The client side of one HTTP/2 stream.
struct H2Down<'a> {
    /// The request body (taken by the engine when it relays it on its own task).
    recv: Option<RecvStream>,
    /// Shared with the reset watch (`super::reset`); borrowed only inside synchronous calls.
    respond: &'a RefCell<SendResponse<Bytes>>,
    is_head: bool,
    /// The request-id header (`[request_id] header`): unique per response, so never indexed.
    unique_header: &'a str,
}

impl H2Down<'_> {
    fn start(&mut self, head: &ResponseHead, end: bool) -> Result<SendStream<Bytes>, RelayError> {
        let mut resp = response_of(head);
        never_index(resp.headers_mut(), self.unique_header);
        self.respond.borrow_mut().send_response(resp, end).map_err(h2_err)
    }
}

/// Marks `name`'s values as never indexed by HPACK. A value seen once (a request id) would
/// otherwise be inserted in the connection's dynamic table, evicting useful entries, after a
/// walk comparing it with every earlier value of that name: measurable per response under load.
fn never_index(headers: &mut http::HeaderMap, name: &str) {
    for (n, v) in headers.iter_mut() {
        if n.as_str().eq_ignore_ascii_case(name) {
            v.set_sensitive(true);
        }
    }
}

/// An HTTP/2 client's request body, detached from its stream to be relayed on its own task.
pub struct H2Body(RecvStream);

impl DetachedBody for H2Body {
    async fn relay_to<W: AsyncWriteRent>(
        mut self,
        up: &mut W,
        declared: Option<u64>,
        limits: RelayLimits,
    ) -> Result<(u64, Option<http::HeaderMap>), RelayError> {
        let kind = declared.map_or(BodyIn::UntilClose, BodyIn::Length);
        let mut scratch = Vec::new();
        let n = {
            let mut src = SliceIo(BodySource { recv: &mut self.0, pending: Bytes::new() });
            relay(&mut src, &mut BytesMut::new(), kind, up, BodyOut::Raw, limits, &mut scratch).await?
        };
        match monoio::time::timeout(limits.idle, self.0.trailers()).await {
            Ok(Ok(trailers)) => Ok((n, trailers)),
            Ok(Err(e)) => Err(RelayError::Source(IoFail::Io(std::io::Error::other(e)))),
            Err(_) => Err(RelayError::Source(IoFail::Timeout)),
        }
    }
}

impl Downstream for H2Down<'_> {
    type Detached = H2Body;

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
        // HTTP/2 ends a body with END_STREAM: without a length it is read to the end.
        let kind = match body {
            ReqBody::Length(n) => BodyIn::Length(n),
            _ => BodyIn::UntilClose,
        };
        let Some(recv) = self.recv.as_mut() else { return Ok(0) };
        let mut src = SliceIo(BodySource { recv, pending: Bytes::new() });
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
        let kind = stream_body_in(body.kind);
        let Some(kind) = kind.filter(|_| !self.is_head) else {
            // No body: whether or not the client is still there, the upstream connection is
            // clean (`keep` is about the client connection, which HTTP/2 keeps regardless).
            return Ok(Sent { bytes: 0, keep: self.start(head, true).is_ok(), head_at: None });
        };
        let mut send = match self.start(head, false) {
            Ok(send) => send,
            Err(e) => {
                // The client reset the stream or closed the connection while the upstream was
                // answering (every in-flight stream when a load run stops). An answer already
                // read whole is consumed, so the upstream connection goes back to the pool
                // instead of being closed and reopened.
                return match whole_body(&kind, body.buf, limits.max_bytes) {
                    Some(_) => Ok(Sent { bytes: 0, keep: false, head_at: None }),
                    None => Err(e),
                };
            }
        };
        if let Some(data) = whole_body(&kind, body.buf, limits.max_bytes) {
            // The whole (small) body arrived with the head: one DATA frame carrying END_STREAM,
            // without waiting for send capacity or sending an empty closing frame.
            // Taken whole from the upstream either way: a client gone meanwhile leaves the
            // upstream connection reusable, as above.
            let bytes = data.len() as u64;
            let sent = send.send_data(data, true).is_ok();
            return Ok(Sent { bytes: if sent { bytes } else { 0 }, keep: sent, head_at: None });
        }
        let head_at = Some(std::time::Instant::now());
        let mut sink = SliceIo(BodySink { send: &mut send });
        let bytes =
            relay(body.stream, body.buf, kind, &mut sink, BodyOut::Raw, limits, &mut Vec::new()).await?;
        match body.stream.take_trailers() {
            Some(trailers) => send.send_trailers(trailers).map_err(h2_err)?,
            None => send.send_data(Bytes::new(), true).map_err(h2_err)?,
        }
        Ok(Sent { bytes, keep: true, head_at })
    }

    async fn request_trailers(&mut self) -> Option<http::HeaderMap> {
        self.recv.as_mut()?.trailers().await.ok().flatten()
    }

    fn detach_body(&mut self) -> Option<H2Body> {
        self.recv.take().map(H2Body)
    }

    async fn send_local(&mut self, head: &ResponseHead, body: &[u8], _keep: bool, _idle: Duration) -> bool {
        let end = body.is_empty() || self.is_head;
        let Ok(mut send) = self.start(head, end) else { return false };
        end || send.send_data(Bytes::copy_from_slice(body), true).is_ok()
    }
}

/// Largest response body sent in one go without flow-control backpressure: well inside the
/// initial stream window every client starts with (65,535 bytes).
const WHOLE_BODY_MAX: u64 = 16 * 1024;

/// The response body when all of it (a `Content-Length` body of at most `WHOLE_BODY_MAX` bytes)
/// is already buffered after the head, taken out of `buf`; `None` otherwise (relay it).
fn whole_body(kind: &BodyIn, buf: &mut BytesMut, max_bytes: u64) -> Option<Bytes> {
    let BodyIn::Length(n) = *kind else { return None };
    let n = usize::try_from(n).ok().filter(|&n| n as u64 <= WHOLE_BODY_MAX.min(max_bytes))?;
    (buf.len() >= n).then(|| buf.split_to(n).freeze())
}

/// Runs one stream through the shared stream opening and the engine.
pub async fn serve_stream<F: Filter>(
    state: Rc<ShardState<F>>,
    req: http::Request<RecvStream>,
    respond: SendResponse<Bytes>,
    client: ClientMeta,
) {
    let (parts, recv) = req.into_parts();
    let ended = recv.is_end_stream();
    let respond = RefCell::new(respond);
    match open_stream(&state, &client, parts, Version::H2, ended) {
        Ok(opened) => {
            let sg = opened.generation().clone();
            let unique_header = &sg.config().request_id.header;
            let mut down =
                H2Down { recv: Some(recv), respond: &respond, is_head: opened.is_head(), unique_header };
            // A reset drops the exchange (and its upstream request) at once; logged as the
            // client's cancellation.
            opened.run_until(&mut down, reset_watch(&respond)).await;
        }
        Err(refused) => {
            let mut down = H2Down { recv: None, respond: &respond, is_head: false, unique_header: "" };
            refused.answer(&mut down).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_body_takes_a_small_body_buffered_with_the_head() {
        let mut buf = BytesMut::from(&b"hello"[..]);
        assert_eq!(whole_body(&BodyIn::Length(5), &mut buf, u64::MAX).as_deref(), Some(&b"hello"[..]));
        assert!(buf.is_empty());
    }

    #[test]
    fn never_index_marks_only_the_named_header() {
        let mut h = http::HeaderMap::new();
        h.insert("x-request-id", http::HeaderValue::from_static("abc"));
        h.insert("content-type", http::HeaderValue::from_static("text/plain"));
        never_index(&mut h, "X-Request-Id");
        assert!(h["x-request-id"].is_sensitive());
        assert!(!h["content-type"].is_sensitive());
    }

    #[test]
    fn whole_body_leaves_partial_large_and_unframed_bodies_to_the_relay() {
        let mut buf = BytesMut::from(&b"hel"[..]);
        assert!(whole_body(&BodyIn::Length(5), &mut buf, u64::MAX).is_none(), "not all buffered");
        assert!(whole_body(&BodyIn::Chunked, &mut buf, u64::MAX).is_none());
        assert!(whole_body(&BodyIn::UntilClose, &mut buf, u64::MAX).is_none());
        assert!(whole_body(&BodyIn::Length(3), &mut buf, 2).is_none(), "over the route's limit");
        let mut big = BytesMut::from(&vec![b'x'; 20_000][..]);
        assert!(whole_body(&BodyIn::Length(20_000), &mut big, u64::MAX).is_none(), "above WHOLE_BODY_MAX");
        assert_eq!(buf.len(), 3);
        assert_eq!(big.len(), 20_000);
    }
}
