//! One HTTP/2 stream through the shared engine: the request head converted from the h2 request
//! (pseudo-headers, header limits), the `Downstream` implementation that sends responses as
//! HEADERS and DATA frames, and the task that runs one exchange.
//!
//! Owns: HTTP/2 client-side framing for one stream. Must not: route, filter or talk to
//! upstreams (that is the engine in `crate::proxy`).

use std::rc::Rc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use h2::server::SendResponse;
use h2::{RecvStream, SendStream};
use monoio::io::AsyncWriteRent;
use portcullis_core::pipeline::{Cx, Filter, Method, ResponseHead, Version};

use super::body::{BodySink, BodySource};
use crate::body::{BodyIn, BodyOut, RelayError, RelayLimits, relay};
use crate::conn::ClientMeta;
use crate::convert::{request_head, response_of};
use crate::downstream::{Downstream, Sent, UpBody, UpSource, stream_body_in};
use crate::h1::encode::local_reply_head;
use crate::h1::request::ReqBody;
use crate::io::IoFail;
use crate::proxy::{Incoming, handle, log_bare_reply};
use crate::shard::ShardState;
use crate::slice_io::SliceIo;

fn h2_err(e: h2::Error) -> RelayError {
    RelayError::Dest(IoFail::Io(std::io::Error::other(e)))
}

/// The client side of one HTTP/2 stream.
struct H2Down<'a> {
    /// The request body (taken by the engine when it relays it on its own task).
    recv: Option<RecvStream>,
    respond: SendResponse<Bytes>,
    is_head: bool,
    /// The request-id header (`[request_id] header`): unique per response, so never indexed.
    unique_header: &'a str,
}

impl H2Down<'_> {
    fn start(&mut self, head: &ResponseHead, end: bool) -> Result<SendStream<Bytes>, RelayError> {
        let mut resp = response_of(head);
        never_index(resp.headers_mut(), self.unique_header);
        self.respond.send_response(resp, end).map_err(h2_err)
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

impl Downstream for H2Down<'_> {
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
        // HTTP/2 ends a body with END_STREAM: without a length it is read to the end.
        let kind = match body {
            ReqBody::Length(n) => BodyIn::Length(n),
            _ => BodyIn::UntilClose,
        };
        let Some(recv) = self.recv.as_mut() else { return Ok(0) };
        let mut src = SliceIo(BodySource { recv, pending: Bytes::new() });
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
        let bytes = relay(body.stream, body.buf, kind, &mut sink, BodyOut::Raw, limits, scratch).await?;
        match body.stream.take_trailers() {
            Some(trailers) => send.send_trailers(trailers).map_err(h2_err)?,
            None => send.send_data(Bytes::new(), true).map_err(h2_err)?,
        }
        Ok(Sent { bytes, keep: true, head_at })
    }

    async fn request_trailers(&mut self) -> Option<http::HeaderMap> {
        self.recv.as_mut()?.trailers().await.ok().flatten()
    }

    fn take_h2_body(&mut self) -> Option<RecvStream> {
        self.recv.take()
    }

    async fn send_local(
        &mut self,
        head: &ResponseHead,
        body: &[u8],
        _keep: bool,
        _wbuf: &mut Vec<u8>,
        _idle: Duration,
    ) -> bool {
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

/// Runs one stream: convert, hand to the engine, log.
pub async fn serve_stream<F: Filter>(
    state: Rc<ShardState<F>>,
    req: http::Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
    client: ClientMeta,
) {
    let sg = state.current();
    state.inflight.set(state.inflight.get() + 1);
    let (parts, recv) = req.into_parts();
    let content_length = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let te_trailers = parts.headers.get(http::header::TE).is_some_and(|v| v == "trailers");
    let mut cx = Cx::new(client.addr, client.tls, Version::H2);
    cx.client_cert = client.client_cert;
    cx.alt_svc = client.alt_svc;
    cx.tls_version = client.tls_version;
    let head = match request_head(parts, sg.head_limits.max_headers, state.spares.headers(), Version::H2) {
        Ok(h) => h,
        Err(reply) => {
            let (resp, body) = local_reply_head(&reply, b"");
            let body_len = body.len();
            if let Ok(mut send) = respond.send_response(response_of(&resp), false) {
                let _ = send.send_data(Bytes::from(body), true);
            }
            cx.method = Method::Other(Bytes::from_static(b"-"));
            log_bare_reply(&sg, &mut cx, &reply, body_len);
            state.inflight.set(state.inflight.get() - 1);
            return;
        }
    };
    let body = match content_length {
        _ if recv.is_end_stream() => ReqBody::None,
        Some(n) => ReqBody::Length(n),
        None => ReqBody::Chunked,
    };
    let is_head = head.method == Method::Head;
    let mut down =
        H2Down { recv: Some(recv), respond, is_head, unique_header: &sg.config().request_id.header };
    let mut wbuf = state.spares.wbuf();
    let mut scratch = Vec::new();
    let incoming = Incoming { head, body, expect_continue: false, keep: true, te_trailers };
    // Boxed: the exchange's state machine is several KiB. Inline, it made this task as large,
    // and `monoio::spawn` copied all of it for every stream (~3 % of the shard under h2load);
    // boxed, the spawned task holds only the arguments and the box is filled in place.
    let exchange = Box::pin(handle(&state, &sg, &mut down, &mut wbuf, &mut scratch, incoming, &mut cx));
    let (_, head) = exchange.await;
    sg.chain.on_log(&cx);
    state.spares.give_headers(head.headers);
    state.spares.give_wbuf(wbuf);
    state.inflight.set(state.inflight.get() - 1);
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
