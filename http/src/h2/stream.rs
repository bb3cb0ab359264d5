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
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use portcullis_core::pipeline::{Cx, Filter, Method, ResponseHead, Version};

use super::body::{BodySink, BodySource};
use crate::body::{BodyIn, BodyOut, RelayError, RelayLimits, relay};
use crate::conn::ClientMeta;
use crate::convert::{request_head, response_of};
use crate::downstream::{Downstream, Sent, UpBody, stream_body_in};
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
struct H2Down {
    recv: RecvStream,
    respond: SendResponse<Bytes>,
    is_head: bool,
}

impl H2Down {
    fn start(&mut self, head: &ResponseHead, end: bool) -> Result<SendStream<Bytes>, RelayError> {
        self.respond.send_response(response_of(head), end).map_err(h2_err)
    }
}

impl Downstream for H2Down {
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
        let mut src = SliceIo(BodySource { recv: &mut self.recv, pending: Bytes::new() });
        let mut buf = BytesMut::new();
        relay(&mut src, &mut buf, kind, up, out, limits, scratch).await
    }

    async fn send_response<R: AsyncReadRent>(
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
            self.start(head, true)?;
            return Ok(Sent { bytes: 0, keep: true });
        };
        let mut send = self.start(head, false)?;
        let mut sink = SliceIo(BodySink { send: &mut send });
        let bytes = relay(body.stream, body.buf, kind, &mut sink, BodyOut::Raw, limits, scratch).await?;
        send.send_data(Bytes::new(), true).map_err(h2_err)?;
        Ok(Sent { bytes, keep: true })
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
    let mut down = H2Down { recv, respond, is_head };
    let mut wbuf = state.spares.wbuf();
    let mut scratch = Vec::new();
    let incoming = Incoming { head, body, expect_continue: false, keep: true };
    let (_, head) = handle(&state, &sg, &mut down, &mut wbuf, &mut scratch, incoming, &mut cx).await;
    sg.chain.on_log(&cx);
    state.spares.give_headers(head.headers);
    state.spares.give_wbuf(wbuf);
    state.inflight.set(state.inflight.get() - 1);
}
