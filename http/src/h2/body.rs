//! HTTP/2 stream bodies as monoio byte streams, so the shared body relay (`crate::body`) moves
//! them with the same limits and timeouts as HTTP/1.1: a request body source over `RecvStream`
//! (flow-control capacity released as bytes are consumed) and a response body sink over
//! `SendStream` (waiting for send capacity).
//!
//! Owns: the byte-level bridge between h2 streams and the relay. Must not: frame HTTP/1.1 or
//! decide when a stream ends (the caller sends END_STREAM).

use std::future::poll_fn;
use std::io;

use bytes::Bytes;
use h2::{RecvStream, SendStream};
use monoio::BufResult;
use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut, RawBuf};
use monoio::io::{AsyncReadRent, AsyncWriteRent};

fn h2_io(e: h2::Error) -> io::Error {
    io::Error::other(e)
}

/// Reads a request body from an HTTP/2 stream; `Ok(0)` at END_STREAM.
pub struct BodySource<'a> {
    /// The stream's receive half.
    pub recv: &'a mut RecvStream,
    /// Bytes received and not yet handed out.
    pub pending: Bytes,
}

impl BodySource<'_> {
    async fn read_into(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pending.is_empty() {
            match self.recv.data().await {
                Some(Ok(b)) => self.pending = b,
                Some(Err(e)) => return Err(h2_io(e)),
                None => return Ok(0),
            }
        }
        let n = self.pending.len().min(out.len());
        out[..n].copy_from_slice(&self.pending[..n]);
        let _ = self.pending.split_to(n);
        // The window reopens only as fast as the upstream takes the bytes.
        let _ = self.recv.flow_control().release_capacity(n);
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

/// Writes a response body into an HTTP/2 stream as DATA frames, honouring flow control.
pub struct BodySink<'a> {
    /// The stream's send half.
    pub send: &'a mut SendStream<Bytes>,
}

impl BodySink<'_> {
    async fn send_all(&mut self, mut data: Bytes) -> io::Result<()> {
        while !data.is_empty() {
            self.send.reserve_capacity(data.len());
            let granted = match poll_fn(|cx| self.send.poll_capacity(cx)).await {
                Some(Ok(n)) => n,
                Some(Err(e)) => return Err(h2_io(e)),
                None => return Err(io::Error::new(io::ErrorKind::BrokenPipe, "stream closed")),
            };
            if granted == 0 {
                continue;
            }
            let chunk = data.split_to(granted.min(data.len()));
            self.send.send_data(chunk, false).map_err(h2_io)?;
        }
        Ok(())
    }
}

impl AsyncWriteRent for BodySink<'_> {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        // SAFETY: the initialised bytes of `buf`, owned by this call until it returns.
        let data = unsafe { std::slice::from_raw_parts(buf.read_ptr(), buf.bytes_init()) };
        let n = data.len();
        let res = self.send_all(Bytes::copy_from_slice(data)).await.map(|()| n);
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
