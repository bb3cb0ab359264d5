//! The response body of an HTTP/2 upstream stream as a byte source for the shared relay, ending
//! with the stream's trailers (gRPC's `grpc-status` lives there).
//!
//! Owns: reading one upstream response stream to its end and keeping its trailers for the
//! client side. Must not: decide whether a client may receive trailers (the engine says so).

use std::io;

use bytes::Bytes;
use h2::RecvStream;

use crate::engine::downstream::UpSource;
use crate::h2::body::read_data;
use crate::slice_io::{Dest, SliceIo, SliceRead};

/// An upstream HTTP/2 response body; `Ok(0)` at its end, after which its trailers are held.
pub struct RespSource {
    recv: RecvStream,
    pending: Bytes,
    /// Keep the trailers (the client can receive them).
    want_trailers: bool,
    trailers: Option<http::HeaderMap>,
}

impl RespSource {
    /// Reads `recv`; trailers are collected only when `want_trailers`.
    pub fn new(recv: RecvStream, want_trailers: bool) -> SliceIo<RespSource> {
        SliceIo(RespSource { recv, pending: Bytes::new(), want_trailers, trailers: None })
    }
}

impl SliceRead for RespSource {
    async fn read_into(&mut self, out: &mut Dest<'_>) -> io::Result<usize> {
        let n = read_data(&mut self.recv, &mut self.pending, out).await?;
        if n == 0 && self.want_trailers {
            self.want_trailers = false;
            self.trailers = self.recv.trailers().await.map_err(io::Error::other)?;
        }
        Ok(n)
    }
}

impl UpSource for SliceIo<RespSource> {
    fn take_trailers(&mut self) -> Option<http::HeaderMap> {
        self.0.trailers.take()
    }
}
