//! HTTP/3 stream bodies as monoio byte streams, so the engine's shared body relay moves them
//! with the same limits and timeouts as HTTP/1.1 and HTTP/2: a request body source over the
//! stream's receive half and a response body sink over its send half (QUIC flow control applies
//! inside quinn).
//!
//! Owns: the byte-level bridge between h3 streams and the relay. Must not: decide when a
//! response ends (the caller finishes the stream).

use std::io;

use bytes::{Buf, Bytes};
use h3::server::RequestStream;
use portcullis_http::engine::{Dest, SliceRead, SliceWrite};

/// The receive half of a request stream.
pub type RecvHalf = RequestStream<h3_quinn::RecvStream, Bytes>;
/// The send half of a request stream.
pub type SendHalf = RequestStream<h3_quinn::SendStream<Bytes>, Bytes>;

fn h3_io(e: h3::error::StreamError) -> io::Error {
    io::Error::other(e.to_string())
}

/// Reads a request body from an HTTP/3 stream; `Ok(0)` at the end of the stream.
pub struct BodySource<'a> {
    /// The stream's receive half.
    pub recv: &'a mut RecvHalf,
    /// Bytes received and not yet handed out.
    pub pending: Bytes,
}

impl SliceRead for BodySource<'_> {
    async fn read_into(&mut self, out: &mut Dest<'_>) -> io::Result<usize> {
        while self.pending.is_empty() {
            match self.recv.recv_data().await.map_err(h3_io)? {
                Some(mut chunk) => {
                    let n = chunk.remaining();
                    self.pending = chunk.copy_to_bytes(n);
                }
                None => return Ok(0),
            }
        }
        let n = out.put(&self.pending);
        let _ = self.pending.split_to(n);
        Ok(n)
    }
}

/// Writes a response body into an HTTP/3 stream as DATA frames.
pub struct BodySink<'a> {
    /// The stream's send half.
    pub send: &'a mut SendHalf,
}

impl SliceWrite for BodySink<'_> {
    async fn write_all_from(&mut self, data: &[u8]) -> io::Result<()> {
        self.send.send_data(Bytes::copy_from_slice(data)).await.map_err(h3_io)
    }
}
