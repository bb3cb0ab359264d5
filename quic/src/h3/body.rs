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
use monoio::BufResult;
use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut, RawBuf};
use monoio::io::{AsyncReadRent, AsyncWriteRent};

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

impl BodySource<'_> {
    async fn read_into(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pending.is_empty() {
            match self.recv.recv_data().await.map_err(h3_io)? {
                Some(mut chunk) => {
                    let n = chunk.remaining();
                    self.pending = chunk.copy_to_bytes(n);
                }
                None => return Ok(0),
            }
        }
        let n = self.pending.len().min(out.len());
        out[..n].copy_from_slice(&self.pending[..n]);
        let _ = self.pending.split_to(n);
        Ok(n)
    }
}

impl AsyncReadRent for BodySource<'_> {
    async fn read<T: IoBufMut>(&mut self, mut buf: T) -> BufResult<usize, T> {
        let len = buf.bytes_total();
        // SAFETY: the writable region of `buf`, owned by this call until it returns. It is
        // zeroed first so no uninitialised byte is ever viewed as a slice.
        let out = unsafe {
            std::ptr::write_bytes(buf.write_ptr(), 0, len);
            std::slice::from_raw_parts_mut(buf.write_ptr(), len)
        };
        let res = self.read_into(out).await;
        if let Ok(n) = res {
            // SAFETY: n bytes were written.
            unsafe { buf.set_init(n) };
        }
        (res, buf)
    }

    async fn readv<T: IoVecBufMut>(&mut self, mut buf: T) -> BufResult<usize, T> {
        // SAFETY: the raw buffer points into `buf`, which outlives the read.
        let res = match unsafe { RawBuf::new_from_iovec_mut(&mut buf) } {
            Some(raw) => self.read(raw).await.0,
            None => Ok(0),
        };
        if let Ok(n) = res {
            // SAFETY: n bytes were written into the first iovec.
            unsafe { buf.set_init(n) };
        }
        (res, buf)
    }
}

/// Writes a response body into an HTTP/3 stream as DATA frames.
pub struct BodySink<'a> {
    /// The stream's send half.
    pub send: &'a mut SendHalf,
}

impl AsyncWriteRent for BodySink<'_> {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        // SAFETY: the initialised bytes of `buf`, owned by this call until it returns.
        let data = unsafe { std::slice::from_raw_parts(buf.read_ptr(), buf.bytes_init()) };
        let n = data.len();
        let res = self.send.send_data(Bytes::copy_from_slice(data)).await.map(|()| n).map_err(h3_io);
        (res, buf)
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        // SAFETY: the raw buffer points into `buf`, which outlives the write.
        let res = match unsafe { RawBuf::new_from_iovec(&buf) } {
            Some(raw) => self.write(raw).await.0,
            None => Ok(0),
        };
        (res, buf)
    }

    async fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        Ok(())
    }
}
