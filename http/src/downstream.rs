//! The client side of one exchange, as the proxy engine sees it: where the request body comes
//! from and how a response (proxied or local) goes back. HTTP/1.1 and HTTP/2 each implement it;
//! the engine (`proxy`) is written once against this trait.
//!
//! Owns: the `Downstream` contract and its HTTP/1.1 implementation (framing, keep-alive and
//! `Connection` headers, 100-continue, the small-body single write). Must not: route, run
//! filters or talk to upstreams other than through the streams it is handed.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use portcullis_core::pipeline::{ResponseHead, Version};

use crate::body::{BodyIn, BodyOut, RelayError, RelayLimits, finish_chunked, relay};
use crate::h1::encode::{ConnHeader, Framing, encode_response};
use crate::h1::request::ReqBody;
use crate::h1::response::RespBody;
use crate::io::write_all;
use crate::upstream::UpStream;

/// Where a proxied response body comes from: a byte stream that may end with trailers (an
/// HTTP/2 upstream's stream does; an HTTP/1.1 connection's chunked trailers travel in its bytes).
pub trait UpSource: AsyncReadRent {
    /// The trailers that followed the body, once it was read to its end; `None` when there are
    /// none (or the client did not ask for them).
    fn take_trailers(&mut self) -> Option<http::HeaderMap> {
        None
    }
}

impl UpSource for UpStream {}

/// Trailers as HTTP/1.1 field lines (`name: value` CRLF each), for the last chunk.
pub fn h1_trailer_block(trailers: Option<http::HeaderMap>) -> Bytes {
    let Some(map) = trailers else { return Bytes::new() };
    let mut out = Vec::new();
    for (name, value) in &map {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    Bytes::from(out)
}

/// The response body still to come from the upstream connection.
pub struct UpBody<'a, R> {
    /// The upstream stream.
    pub stream: &'a mut R,
    /// Bytes already read from it (the body's start).
    pub buf: &'a mut BytesMut,
    /// Framing of the body on the upstream side.
    pub kind: RespBody,
}

/// Outcome of sending a proxied response.
pub struct Sent {
    /// Body bytes delivered to the client.
    pub bytes: u64,
    /// Whether the client connection stays open.
    pub keep: bool,
    /// When the head was handed to the client while the body went on after it (`None`: the
    /// head went out with the whole response), for the gateway's added time.
    pub head_at: Option<Instant>,
}

/// The client side of an exchange.
#[allow(async_fn_in_trait)]
pub trait Downstream {
    /// The request body when it is already complete (sent with the head in one write, and the
    /// request can be retried on a fresh upstream connection). `ReqBody::None` gives an empty one.
    fn buffered_body(&mut self, body: ReqBody) -> Option<Bytes>;

    /// Streams the request body to the upstream, re-framed as `out`; returns its length.
    async fn relay_body<W: AsyncWriteRent>(
        &mut self,
        body: ReqBody,
        expect_continue: bool,
        up: &mut W,
        out: BodyOut,
        limits: RelayLimits,
        scratch: &mut Vec<u8>,
    ) -> Result<u64, RelayError>;

    /// Sends a proxied response head and relays its body. `Err` = the client is gone or the
    /// upstream broke mid-body: the connection must close.
    #[allow(clippy::too_many_arguments)]
    async fn send_response<R: UpSource>(
        &mut self,
        head: &ResponseHead,
        body: UpBody<'_, R>,
        keep: bool,
        limits: RelayLimits,
        wbuf: &mut Vec<u8>,
        scratch: &mut Vec<u8>,
    ) -> Result<Sent, RelayError>;

    /// The request's trailers, once its body was relayed to the end (HTTP/2 clients may send
    /// them; the others never do).
    async fn request_trailers(&mut self) -> Option<http::HeaderMap> {
        None
    }

    /// Hands over the request body as the client's HTTP/2 stream (HTTP/2 clients only), so the
    /// engine can relay it on its own task while the response flows back (bidirectional gRPC).
    /// Afterwards `relay_body` and `request_trailers` have nothing left to read.
    fn take_h2_body(&mut self) -> Option<h2::RecvStream> {
        None
    }

    /// Answers `101 Switching Protocols` with `head`, then relays bytes both ways between the
    /// client and `up` (whose bytes already read are in `up_buf`) until either side closes or
    /// nothing moves for `idle`. Returns the bytes moved (client to upstream, upstream to client).
    /// Only HTTP/1.1 connections can switch protocols; others refuse.
    async fn tunnel<U: AsyncReadRent + AsyncWriteRent>(
        &mut self,
        _head: &ResponseHead,
        _up: &mut U,
        _up_buf: &mut BytesMut,
        _idle: Duration,
        _wbuf: &mut Vec<u8>,
    ) -> Result<(u64, u64), RelayError> {
        Err(RelayError::Dest(crate::io::IoFail::Eof))
    }

    /// Sends a complete locally made response; returns whether it was written.
    async fn send_local(
        &mut self,
        head: &ResponseHead,
        body: &[u8],
        keep: bool,
        wbuf: &mut Vec<u8>,
        idle: Duration,
    ) -> bool;
}

/// An HTTP/1.1 client connection (plain or TLS) during one exchange.
pub struct H1Down<'a, S> {
    /// The client stream.
    pub stream: &'a mut S,
    /// Bytes read from the client and not yet consumed (body bytes, pipelined requests).
    pub rbuf: &'a mut BytesMut,
    /// The request's HTTP version (1.0 clients get no chunked responses).
    pub version: Version,
    /// The request was HEAD (no body in the response).
    pub is_head: bool,
}

/// How a framed-by-end-of-stream client (HTTP/2, HTTP/3) reads an upstream response body:
/// `None` when there is no body to relay.
pub fn stream_body_in(kind: RespBody) -> Option<BodyIn> {
    match kind {
        RespBody::None | RespBody::Length(0) => None,
        RespBody::Length(n) => Some(BodyIn::Length(n)),
        RespBody::Chunked => Some(BodyIn::Chunked),
        RespBody::UntilClose => Some(BodyIn::UntilClose),
    }
}

/// The `Connection` header for a response.
pub fn connection_header(keep: bool, version: Version) -> ConnHeader {
    match (keep, version) {
        (false, _) => ConnHeader::Close,
        (true, Version::Http10) => ConnHeader::KeepAlive,
        (true, _) => ConnHeader::None,
    }
}

impl<S: AsyncReadRent + AsyncWriteRent> Downstream for H1Down<'_, S> {
    fn buffered_body(&mut self, body: ReqBody) -> Option<Bytes> {
        match body {
            ReqBody::None => Some(Bytes::new()),
            ReqBody::Length(n) if self.rbuf.len() as u64 >= n => {
                Some(self.rbuf.split_to(n as usize).freeze())
            }
            _ => None,
        }
    }

    async fn relay_body<W: AsyncWriteRent>(
        &mut self,
        body: ReqBody,
        expect_continue: bool,
        up: &mut W,
        out: BodyOut,
        limits: RelayLimits,
        scratch: &mut Vec<u8>,
    ) -> Result<u64, RelayError> {
        if expect_continue {
            let (res, _) = write_all(self.stream, &b"HTTP/1.1 100 Continue\r\n\r\n"[..], limits.idle).await;
            res.map_err(RelayError::Source)?;
        }
        let kind = match body {
            ReqBody::Length(n) => BodyIn::Length(n),
            _ => BodyIn::Chunked,
        };
        relay(self.stream, self.rbuf, kind, up, out, limits, scratch).await
    }

    async fn send_response<R: UpSource>(
        &mut self,
        head: &ResponseHead,
        body: UpBody<'_, R>,
        mut keep: bool,
        limits: RelayLimits,
        wbuf: &mut Vec<u8>,
        scratch: &mut Vec<u8>,
    ) -> Result<Sent, RelayError> {
        let http10 = self.version == Version::Http10;
        let (framing, body_in, body_out) = match body.kind {
            RespBody::None => (Framing::AsIs, None, BodyOut::Raw),
            RespBody::Length(n) => (Framing::AsIs, Some(BodyIn::Length(n)), BodyOut::Raw),
            RespBody::Chunked if http10 => (Framing::Close, Some(BodyIn::Chunked), BodyOut::Raw),
            RespBody::Chunked => (Framing::Chunked, Some(BodyIn::Chunked), BodyOut::Chunked),
            RespBody::UntilClose if http10 => (Framing::Close, Some(BodyIn::UntilClose), BodyOut::Raw),
            // The last chunk is written here, with the trailers an HTTP/2 upstream sent.
            RespBody::UntilClose => (Framing::Chunked, Some(BodyIn::UntilClose), BodyOut::ChunkedOpen),
        };
        if framing == Framing::Close {
            keep = false;
        }
        let mut out = std::mem::take(wbuf);
        out.clear();
        encode_response(&mut out, head, framing, connection_header(keep, self.version));
        let small = match body_in {
            None => true,
            Some(BodyIn::Length(n)) => body.buf.len() as u64 >= n,
            _ => false,
        };
        let (mut bytes, mut head_at) = (0, None);
        if small {
            if let Some(BodyIn::Length(n)) = body_in {
                out.extend_from_slice(&body.buf[..n as usize]);
                let _ = body.buf.split_to(n as usize);
                bytes = n;
            }
            let (res, out) = write_all(self.stream, out, limits.idle).await;
            *wbuf = out;
            if res.is_err() {
                keep = false;
            }
        } else {
            let (res, out) = write_all(self.stream, out, limits.idle).await;
            *wbuf = out;
            res.map_err(RelayError::Dest)?;
            head_at = Some(Instant::now());
            let kind = body_in.unwrap_or(BodyIn::Length(0));
            bytes = relay(body.stream, body.buf, kind, self.stream, body_out, limits, scratch).await?;
            if body_out == BodyOut::ChunkedOpen {
                let trailers = h1_trailer_block(body.stream.take_trailers());
                finish_chunked(self.stream, trailers, scratch, limits.idle).await?;
            }
        }
        Ok(Sent { bytes, keep, head_at })
    }

    async fn tunnel<U: AsyncReadRent + AsyncWriteRent>(
        &mut self,
        head: &ResponseHead,
        up: &mut U,
        up_buf: &mut BytesMut,
        idle: Duration,
        wbuf: &mut Vec<u8>,
    ) -> Result<(u64, u64), RelayError> {
        // The 101 head, then whatever the upstream sent right behind it; bytes the client sent
        // right behind its request go the other way first.
        let mut out = std::mem::take(wbuf);
        out.clear();
        encode_response(&mut out, head, Framing::AsIs, ConnHeader::None);
        out.extend_from_slice(up_buf);
        let early_down = up_buf.len() as u64;
        up_buf.clear();
        let (res, out) = write_all(self.stream, out, idle).await;
        *wbuf = out;
        res.map_err(RelayError::Dest)?;
        let early_up = self.rbuf.len() as u64;
        if early_up > 0 {
            let (res, _) = write_all(up, self.rbuf.split().freeze(), idle).await;
            res.map_err(RelayError::Dest)?;
        }
        let (to_up, to_down) = crate::tunnel::relay(self.stream, up, idle).await;
        Ok((early_up + to_up, early_down + to_down))
    }

    async fn send_local(
        &mut self,
        head: &ResponseHead,
        body: &[u8],
        keep: bool,
        wbuf: &mut Vec<u8>,
        idle: Duration,
    ) -> bool {
        let mut out = std::mem::take(wbuf);
        out.clear();
        encode_response(&mut out, head, Framing::AsIs, connection_header(keep, self.version));
        if !self.is_head {
            out.extend_from_slice(body);
        }
        let (res, out) = write_all(self.stream, out, idle).await;
        *wbuf = out;
        res.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::h1_trailer_block;

    #[test]
    fn trailers_become_http1_field_lines() {
        assert!(h1_trailer_block(None).is_empty());
        let mut map = http::HeaderMap::new();
        map.insert("grpc-status", http::HeaderValue::from_static("5"));
        map.insert("grpc-message", http::HeaderValue::from_static("not found"));
        let block = h1_trailer_block(Some(map));
        assert_eq!(&block[..], &b"grpc-status: 5\r\ngrpc-message: not found\r\n"[..]);
    }
}
