//! Owned-buffer I/O helpers over monoio streams, with deadlines.
//!
//! Owns: reading more bytes into a growing `BytesMut` and writing whole buffers, each bounded
//! by a timeout. Must not: interpret the bytes.

use std::io;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use monoio::buf::{IoBuf, IoBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};

/// An I/O failure with whether it was a timeout.
#[derive(Debug, thiserror::Error)]
pub enum IoFail {
    /// The deadline passed.
    #[error("timed out")]
    Timeout,
    /// The peer closed the connection.
    #[error("connection closed by peer")]
    Eof,
    /// An OS error.
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Reads once into the spare capacity of `buf` (reserving `min_spare` first), bounded by `limit`.
/// Returns the number of bytes read; `Eof` when the peer closed.
pub async fn read_more<S: AsyncReadRent>(
    stream: &mut S,
    buf: &mut BytesMut,
    min_spare: usize,
    limit: Duration,
) -> Result<usize, IoFail> {
    read_more_by(stream, buf, min_spare, Instant::now() + limit).await
}

/// Like [`read_more`], bounded by a `deadline` the caller already holds (one clock read less
/// than turning it back into a duration).
pub async fn read_more_by<S: AsyncReadRent>(
    stream: &mut S,
    buf: &mut BytesMut,
    min_spare: usize,
    deadline: Instant,
) -> Result<usize, IoFail> {
    if buf.capacity() - buf.len() < min_spare {
        buf.reserve(min_spare);
    }
    let owned = std::mem::take(buf);
    let len = owned.len();
    let fut = stream.read(owned.slice_mut(len..));
    match monoio::time::timeout_at(monoio::time::Instant::from_std(deadline), fut).await {
        Ok((res, slice)) => {
            *buf = slice.into_inner();
            match res {
                Ok(0) => Err(IoFail::Eof),
                Ok(n) => Ok(n),
                Err(e) => Err(IoFail::Io(e)),
            }
        }
        // The buffer went with the cancelled read; start over with a fresh one.
        Err(_) => {
            *buf = BytesMut::with_capacity(min_spare);
            Err(IoFail::Timeout)
        }
    }
}

/// Writes all of `data`, bounded by `limit`; returns the buffer for reuse (empty on failure
/// paths where it was lost to a cancelled write).
pub async fn write_all<S: AsyncWriteRent, B: IoBuf + Default + 'static>(
    stream: &mut S,
    data: B,
    limit: Duration,
) -> (Result<(), IoFail>, B) {
    match monoio::time::timeout(limit, stream.write_all(data)).await {
        Ok((Ok(_), b)) => (Ok(()), b),
        Ok((Err(e), b)) => (Err(IoFail::Io(e)), b),
        Err(_) => (Err(IoFail::Timeout), B::default()),
    }
}
