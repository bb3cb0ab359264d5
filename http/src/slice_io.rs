//! Byte streams that read and write through plain slices (HTTP/2 and HTTP/3 bodies), adapted to
//! monoio's owned-buffer traits once, so the body relay moves them like sockets.
//!
//! Owns: the unsafe owned-buffer-to-slice bridging for such streams. Must not: know any protocol.

use std::io;

use monoio::BufResult;
use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut, RawBuf};
use monoio::io::{AsyncReadRent, AsyncWriteRent};

/// A source that fills a slice; `Ok(0)` at the end.
#[allow(async_fn_in_trait)]
pub trait SliceRead {
    /// Reads up to `out.len()` bytes into `out`.
    async fn read_into(&mut self, out: &mut [u8]) -> io::Result<usize>;
}

/// A sink that takes a whole slice.
#[allow(async_fn_in_trait)]
pub trait SliceWrite {
    /// Writes all of `data`.
    async fn write_all_from(&mut self, data: &[u8]) -> io::Result<()>;
}

/// Wraps a `SliceRead` / `SliceWrite` as a monoio `AsyncReadRent` / `AsyncWriteRent`.
pub struct SliceIo<T>(pub T);

impl<T: SliceRead> AsyncReadRent for SliceIo<T> {
    async fn read<B: IoBufMut>(&mut self, mut buf: B) -> BufResult<usize, B> {
        let len = buf.bytes_total();
        // SAFETY: the writable region of `buf`, owned by this call until it returns. It is
        // zeroed first so no uninitialised byte is ever viewed as a slice.
        let out = unsafe {
            std::ptr::write_bytes(buf.write_ptr(), 0, len);
            std::slice::from_raw_parts_mut(buf.write_ptr(), len)
        };
        let res = self.0.read_into(out).await;
        if let Ok(n) = res {
            // SAFETY: n bytes were written.
            unsafe { buf.set_init(n) };
        }
        (res, buf)
    }

    async fn readv<B: IoVecBufMut>(&mut self, mut buf: B) -> BufResult<usize, B> {
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

impl<T: SliceWrite> AsyncWriteRent for SliceIo<T> {
    async fn write<B: IoBuf>(&mut self, buf: B) -> BufResult<usize, B> {
        // SAFETY: the initialised bytes of `buf`, owned by this call until it returns.
        let data = unsafe { std::slice::from_raw_parts(buf.read_ptr(), buf.bytes_init()) };
        let n = data.len();
        let res = self.0.write_all_from(data).await.map(|()| n);
        (res, buf)
    }

    async fn writev<B: IoVecBuf>(&mut self, buf: B) -> BufResult<usize, B> {
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
