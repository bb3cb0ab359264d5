//! Streaming body relay between two connections with bounded memory: bytes already buffered
//! are forwarded first, then the source is read in slices of at most `chunk` bytes and each
//! slice is written before the next read, so a 1 GiB body never occupies more than one slice.
//!
//! Owns: the request body's declared framing as every client protocol gives it to the engine
//! (`ReqBody`), and moving body bytes while translating framing (length, chunked,
//! close-delimited). Must not: parse heads or choose framing.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent};

use crate::h1::chunked::{ChunkError, ChunkedDecoder, Step, write_chunk_header};
use crate::io::{IoFail, read_more, write_all};

/// A request body's length as the client declared it, the same type for every client protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReqBody {
    /// No body.
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// No declared length: read to its end (the last chunk on HTTP/1.1, the end of the stream on
    /// HTTP/2 and HTTP/3).
    Streamed,
}

/// Framing of the incoming body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyIn {
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked.
    Chunked,
    /// Until the source closes.
    UntilClose,
}

/// Framing of the outgoing body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyOut {
    /// Bytes as they are (the head announced the length, or the connection closes after).
    Raw,
    /// Re-encode as chunked.
    Chunked,
    /// Re-encode as chunked but leave the last chunk to the caller (it may add trailers).
    ChunkedOpen,
}

/// Why a relay stopped early.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// Reading the source failed or timed out.
    #[error("source read failed: {0}")]
    Source(IoFail),
    /// The source's framing was invalid.
    #[error("source framing invalid: {0}")]
    Framing(#[from] ChunkError),
    /// Writing the destination failed or timed out.
    #[error("destination write failed: {0}")]
    Dest(IoFail),
    /// More bytes than the limit.
    #[error("body exceeds {0} bytes")]
    TooLarge(u64),
}

/// Limits for one relay.
#[derive(Clone, Copy, Debug)]
pub struct RelayLimits {
    /// Refuse bodies longer than this (checked as bytes arrive).
    pub max_bytes: u64,
    /// Longest wait for one read or one write.
    pub idle: Duration,
    /// Largest slice read and written at once.
    pub chunk: usize,
    /// Largest trailer section accepted.
    pub max_trailer_bytes: usize,
}

/// Relays one body from `src` (whose already-read bytes are at the front of `src_buf`) to `dst`.
/// Returns the number of body bytes relayed (decoded, without framing). `scratch` is a reusable
/// buffer for chunk framing. On success `src_buf` holds only bytes after the body.
pub async fn relay<R: AsyncReadRent, W: AsyncWriteRent>(
    src: &mut R,
    src_buf: &mut BytesMut,
    kind: BodyIn,
    dst: &mut W,
    out: BodyOut,
    limits: RelayLimits,
    scratch: &mut Vec<u8>,
) -> Result<u64, RelayError> {
    let mut total: u64 = 0;
    match kind {
        BodyIn::Length(len) => {
            if len > limits.max_bytes {
                return Err(RelayError::TooLarge(limits.max_bytes));
            }
            let mut left = len;
            while left > 0 {
                if src_buf.is_empty() {
                    read_more(src, src_buf, limits.chunk, limits.idle).await.map_err(RelayError::Source)?;
                }
                let take = usize::try_from(left).unwrap_or(usize::MAX).min(src_buf.len());
                let data = src_buf.split_to(take).freeze();
                left -= take as u64;
                total += take as u64;
                send(dst, data, out, scratch, limits.idle).await?;
            }
            if out == BodyOut::Chunked {
                finish_chunked(dst, Bytes::new(), scratch, limits.idle).await?;
            }
        }
        BodyIn::UntilClose => loop {
            if src_buf.is_empty() {
                match read_more(src, src_buf, limits.chunk, limits.idle).await {
                    Ok(_) => {}
                    Err(IoFail::Eof) => break,
                    Err(e) => return Err(RelayError::Source(e)),
                }
            }
            let data = src_buf.split().freeze();
            total += data.len() as u64;
            if total > limits.max_bytes {
                return Err(RelayError::TooLarge(limits.max_bytes));
            }
            send(dst, data, out, scratch, limits.idle).await?;
        },
        BodyIn::Chunked => {
            let mut dec = ChunkedDecoder::new(limits.max_trailer_bytes);
            loop {
                match dec.step(src_buf)? {
                    Step::Data(data) => {
                        total += data.len() as u64;
                        if total > limits.max_bytes {
                            return Err(RelayError::TooLarge(limits.max_bytes));
                        }
                        send(dst, data, out, scratch, limits.idle).await?;
                    }
                    Step::NeedMore => {
                        read_more(src, src_buf, limits.chunk, limits.idle)
                            .await
                            .map_err(RelayError::Source)?;
                    }
                    Step::End { trailers } => {
                        if out == BodyOut::Chunked {
                            finish_chunked(dst, trailers, scratch, limits.idle).await?;
                        }
                        break;
                    }
                }
            }
        }
    }
    if kind == BodyIn::UntilClose && out == BodyOut::Chunked {
        finish_chunked(dst, Bytes::new(), scratch, limits.idle).await?;
    }
    Ok(total)
}

async fn send<W: AsyncWriteRent>(
    dst: &mut W,
    data: Bytes,
    out: BodyOut,
    scratch: &mut Vec<u8>,
    idle: Duration,
) -> Result<(), RelayError> {
    if data.is_empty() {
        return Ok(());
    }
    match out {
        BodyOut::Raw => {
            let (res, _) = write_all(dst, data, idle).await;
            res.map_err(RelayError::Dest)
        }
        BodyOut::Chunked | BodyOut::ChunkedOpen => {
            let mut buf = std::mem::take(scratch);
            buf.clear();
            write_chunk_header(&mut buf, data.len());
            buf.extend_from_slice(&data);
            buf.extend_from_slice(b"\r\n");
            let (res, buf) = write_all(dst, buf, idle).await;
            *scratch = buf;
            res.map_err(RelayError::Dest)
        }
    }
}

/// Writes the last chunk of a chunked body with `trailers` (HTTP/1.1 field lines, each ending
/// in CRLF; empty for none).
pub async fn finish_chunked<W: AsyncWriteRent>(
    dst: &mut W,
    trailers: Bytes,
    scratch: &mut Vec<u8>,
    idle: Duration,
) -> Result<(), RelayError> {
    let mut buf = std::mem::take(scratch);
    buf.clear();
    buf.extend_from_slice(b"0\r\n");
    buf.extend_from_slice(&trailers);
    buf.extend_from_slice(b"\r\n");
    let (res, buf) = write_all(dst, buf, idle).await;
    *scratch = buf;
    res.map_err(RelayError::Dest)
}
