//! The HTTP/1.1 client side of one exchange (`H1Down`, the `Downstream` of `h1::server`'s
//! connections): response framing, keep-alive and `Connection` headers, 100-continue, the
//! small-body single write, trailers as a last chunk, and the WebSocket tunnel.
//!
//! Owns: HTTP/1.1 framing toward the client during an exchange. Must not: read request heads
//! (`h1::server`), route, run filters, or talk to upstreams other than through the streams it
//! is handed.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent, Split};
use portcullis_core::pipeline::{ResponseHead, Version};

use crate::body::{BodyIn, BodyOut, RelayError, RelayLimits, ReqBody, finish_chunked, relay};
use crate::engine::downstream::{Downstream, NoDetach, Sent, UpBody, UpSource};
use crate::h1::encode::{ConnHeader, Framing, encode_response};
use crate::h1::response::RespBody;
use crate::io::write_all;

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
    /// Staging buffer for response heads (and small bodies), lent for this exchange.
    pub wbuf: &'a mut Vec<u8>,
    /// Chunk-framing scratch buffer.
    pub scratch: &'a mut Vec<u8>,
}

/// The `Connection` header for a response.
pub fn connection_header(keep: bool, version: Version) -> ConnHeader {
    match (keep, version) {
        (false, _) => ConnHeader::Close,
        (true, Version::Http10) => ConnHeader::KeepAlive,
        (true, _) => ConnHeader::None,
    }
}

impl<S: AsyncReadRent + AsyncWriteRent + Split> Downstream for H1Down<'_, S> {
    type Detached = NoDetach;

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
    ) -> Result<u64, RelayError> {
        if expect_continue {
            let (res, _) = write_all(self.stream, &b"HTTP/1.1 100 Continue\r\n\r\n"[..], limits.idle).await;
            res.map_err(RelayError::Source)?;
        }
        let kind = match body {
            ReqBody::Length(n) => BodyIn::Length(n),
            _ => BodyIn::Chunked,
        };
        relay(self.stream, self.rbuf, kind, up, out, limits, self.scratch).await
    }

    async fn send_response<R: UpSource>(
        &mut self,
        head: &ResponseHead,
        body: UpBody<'_, R>,
        mut keep: bool,
        limits: RelayLimits,
    ) -> Result<Sent, RelayError> {
        let (wbuf, scratch) = (&mut *self.wbuf, &mut *self.scratch);
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

    async fn tunnel<U: AsyncReadRent + AsyncWriteRent + Split>(
        &mut self,
        head: &ResponseHead,
        up: &mut U,
        up_buf: &mut BytesMut,
        idle: Duration,
    ) -> Result<(u64, u64), RelayError> {
        let wbuf = &mut *self.wbuf;
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

    async fn send_local(&mut self, head: &ResponseHead, body: &[u8], keep: bool, idle: Duration) -> bool {
        let wbuf = &mut *self.wbuf;
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
