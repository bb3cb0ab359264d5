//! The one bridge between monoio's owned buffers and code that works on byte slices: [`Dest`]
//! fills a buffer's writable region by copying bytes in (it never views uninitialised memory as
//! a slice), [`init_bytes`] views a buffer's initialised bytes, and the vectored calls go through
//! the first iovec ([`read_first_iovec`], [`write_first_iovec`]). The TLS stream, the replaying
//! `Prefixed` stream of h2c detection and [`SliceIo`] (HTTP/2 and HTTP/3 bodies) all use it.
//!
//! Owns: every unsafe step from an owned buffer to a slice and back. Must not: know any protocol.

use std::io;

use monoio::BufResult;
use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut, RawBuf};
use monoio::io::{AsyncReadRent, AsyncWriteRent};

/// The writable region of an owned buffer, filled only by copying bytes in. Each copy marks the
/// bytes initialised in the buffer at once, so the buffer is consistent whenever the caller
/// stops (an error or a cancelled future keeps what was copied so far).
pub struct Dest<'a> {
    buf: &'a mut dyn IoBufMut,
    filled: usize,
}

impl<'a> Dest<'a> {
    /// The writable region of `buf`, empty so far.
    pub fn new(buf: &'a mut dyn IoBufMut) -> Dest<'a> {
        Dest { buf, filled: 0 }
    }

    /// Bytes that still fit.
    pub fn room(&mut self) -> usize {
        self.buf.bytes_total() - self.filled
    }

    /// Bytes copied in so far.
    pub fn filled(&self) -> usize {
        self.filled
    }

    /// Copies as much of `src` as fits; returns how many bytes were taken.
    pub fn put(&mut self, src: &[u8]) -> usize {
        let n = src.len().min(self.room());
        if n == 0 {
            return 0;
        }
        // SAFETY: `IoBufMut` guarantees `write_ptr()` is valid for writes of `bytes_total()`
        // bytes, and `filled + n <= bytes_total()` (n is clamped by `room`). The bytes are only
        // written through the raw pointer, never read, so the region's previous contents
        // (possibly uninitialised) are never viewed. `ptr::copy` allows overlap, should `src`
        // ever alias the buffer. After the copy the first `filled + n` bytes are initialised,
        // which is exactly what `set_init` is told.
        unsafe {
            std::ptr::copy(src.as_ptr(), self.buf.write_ptr().add(self.filled), n);
            self.buf.set_init(self.filled + n);
        }
        self.filled += n;
        n
    }
}

/// The initialised bytes of `buf`.
pub fn init_bytes<B: IoBuf>(buf: &B) -> &[u8] {
    // SAFETY: `IoBuf` guarantees `read_ptr()` points at `bytes_init()` initialised bytes that
    // stay valid and unchanged while `buf` is borrowed, which the returned slice's lifetime ties.
    unsafe { std::slice::from_raw_parts(buf.read_ptr(), buf.bytes_init()) }
}

/// A vectored read served by a plain read into the first iovec (the streams behind this bridge
/// never see vectored reads on their hot path).
pub async fn read_first_iovec<S: AsyncReadRent, B: IoVecBufMut>(
    stream: &mut S,
    mut buf: B,
) -> BufResult<usize, B> {
    // SAFETY: the `RawBuf` points into the first iovec of `buf`, which this function owns until
    // it returns, so the memory outlives the read; `buf` is not touched while `raw` is in use.
    let res = match unsafe { RawBuf::new_from_iovec_mut(&mut buf) } {
        Some(raw) => stream.read(raw).await.0,
        None => Ok(0),
    };
    if let Ok(n) = res {
        // SAFETY: the read initialised `n` bytes at the start of the first iovec.
        unsafe { buf.set_init(n) };
    }
    (res, buf)
}

/// A vectored write served by a plain write of the first iovec.
pub async fn write_first_iovec<S: AsyncWriteRent, B: IoVecBuf>(
    stream: &mut S,
    buf: B,
) -> BufResult<usize, B> {
    // SAFETY: the `RawBuf` views the first iovec of `buf`, which this function owns (and does
    // not change) until it returns.
    let res = match unsafe { RawBuf::new_from_iovec(&buf) } {
        Some(raw) => stream.write(raw).await.0,
        None => Ok(0),
    };
    (res, buf)
}

/// A source that copies its bytes into a [`Dest`]; `Ok(0)` at the end.
#[allow(async_fn_in_trait)]
pub trait SliceRead {
    /// Copies up to `out.room()` bytes into `out`; returns how many.
    async fn read_into(&mut self, out: &mut Dest<'_>) -> io::Result<usize>;
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
        let res = self.0.read_into(&mut Dest::new(&mut buf)).await;
        (res, buf)
    }

    async fn readv<B: IoVecBufMut>(&mut self, buf: B) -> BufResult<usize, B> {
        read_first_iovec(self, buf).await
    }
}

impl<T: SliceWrite> AsyncWriteRent for SliceIo<T> {
    async fn write<B: IoBuf>(&mut self, buf: B) -> BufResult<usize, B> {
        let data = init_bytes(&buf);
        let n = data.len();
        let res = self.0.write_all_from(data).await.map(|()| n);
        (res, buf)
    }

    async fn writev<B: IoVecBuf>(&mut self, buf: B) -> BufResult<usize, B> {
        write_first_iovec(self, buf).await
    }

    async fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dest_copies_in_and_marks_only_what_it_wrote() {
        let mut buf: Vec<u8> = Vec::with_capacity(8);
        let mut d = Dest::new(&mut buf);
        assert_eq!(d.room(), 8);
        assert_eq!(d.put(b"hello"), 5);
        assert_eq!(d.put(b"world"), 3, "only what fits");
        assert_eq!(d.put(b"!"), 0);
        assert_eq!(d.filled(), 8);
        assert_eq!(&buf[..], b"hellowor");
    }

    #[test]
    fn dest_over_a_slice_keeps_the_bytes_before_it() {
        let mut b = bytes::BytesMut::with_capacity(16);
        b.extend_from_slice(b"ab");
        let mut tail = b.slice_mut(2..);
        let mut d = Dest::new(&mut tail);
        assert_eq!(d.put(b"cd"), 2);
        let b = tail.into_inner();
        assert_eq!(&b[..], b"abcd");
        assert_eq!(init_bytes(&b.freeze()), b"abcd");
    }
}
