//! Streaming decoder for the chunked transfer coding (RFC 9112 section 7.1), strict enough to
//! refuse every framing ambiguity used for request smuggling: chunk sizes are hex digits only
//! (at most 15, no sign, no whitespace), lines end in CRLF (never a bare LF or CR), chunk
//! extensions are bounded, and the trailer section is bounded.
//!
//! Owns: chunk framing. Must not: do I/O; data is handed out as zero-copy `Bytes` splits.

use bytes::{Bytes, BytesMut};

/// Longest chunk-size line (size + extensions) accepted.
const MAX_SIZE_LINE: usize = 4096;

/// A framing violation.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    /// The chunk-size line is malformed.
    #[error("invalid chunk size line")]
    BadSize,
    /// Chunk data is not followed by CRLF.
    #[error("chunk data not followed by CRLF")]
    BadDataEnd,
    /// The trailer section is malformed or too large.
    #[error("invalid or oversized trailer section")]
    BadTrailer,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Size,
    Data(u64),
    DataEnd,
    Trailers,
    Done,
}

/// One step of decoding.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Body bytes (already split off the input buffer).
    Data(Bytes),
    /// The input buffer holds no complete next element: read more.
    NeedMore,
    /// The last chunk and the trailer section were read. `trailers` is the raw trailer
    /// section without the final empty line (empty when there were none).
    End {
        /// Raw trailer fields, each line ending in CRLF.
        trailers: Bytes,
    },
}

/// Decoder state for one chunked body.
#[derive(Debug)]
pub struct ChunkedDecoder {
    state: State,
    max_trailer_bytes: usize,
}

impl ChunkedDecoder {
    /// A decoder that accepts at most `max_trailer_bytes` of trailers.
    pub fn new(max_trailer_bytes: usize) -> ChunkedDecoder {
        ChunkedDecoder { state: State::Size, max_trailer_bytes }
    }

    /// True after the terminating chunk and trailers were consumed.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes the next element from the front of `buf`, consuming what it used.
    pub fn step(&mut self, buf: &mut BytesMut) -> Result<Step, ChunkError> {
        loop {
            match self.state {
                State::Size => {
                    let Some(lf) = memchr::memchr(b'\n', buf) else {
                        if buf.len() > MAX_SIZE_LINE {
                            return Err(ChunkError::BadSize);
                        }
                        return Ok(Step::NeedMore);
                    };
                    if lf == 0 || buf[lf - 1] != b'\r' || lf > MAX_SIZE_LINE {
                        return Err(ChunkError::BadSize);
                    }
                    let size = parse_size_line(&buf[..lf - 1])?;
                    let _ = buf.split_to(lf + 1);
                    self.state = if size == 0 { State::Trailers } else { State::Data(size) };
                }
                State::Data(left) => {
                    if buf.is_empty() {
                        return Ok(Step::NeedMore);
                    }
                    let take = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                    let data = buf.split_to(take).freeze();
                    let left = left - take as u64;
                    self.state = if left == 0 { State::DataEnd } else { State::Data(left) };
                    return Ok(Step::Data(data));
                }
                State::DataEnd => {
                    if buf.len() < 2 {
                        if buf.first().is_some_and(|&c| c != b'\r') {
                            return Err(ChunkError::BadDataEnd);
                        }
                        return Ok(Step::NeedMore);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(ChunkError::BadDataEnd);
                    }
                    let _ = buf.split_to(2);
                    self.state = State::Size;
                }
                State::Trailers => {
                    // The section ends at the first empty line (CRLF CRLF, or a lone CRLF first).
                    if buf.len() >= 2 && &buf[..2] == b"\r\n" {
                        let _ = buf.split_to(2);
                        self.state = State::Done;
                        return Ok(Step::End { trailers: Bytes::new() });
                    }
                    let Some(end) = memchr::memmem::find(buf, b"\r\n\r\n") else {
                        if buf.len() > self.max_trailer_bytes {
                            return Err(ChunkError::BadTrailer);
                        }
                        return Ok(Step::NeedMore);
                    };
                    if end + 2 > self.max_trailer_bytes {
                        return Err(ChunkError::BadTrailer);
                    }
                    let section = &buf[..end + 2];
                    if !valid_trailers(section) {
                        return Err(ChunkError::BadTrailer);
                    }
                    let trailers = buf.split_to(end + 2).freeze();
                    let _ = buf.split_to(2);
                    self.state = State::Done;
                    return Ok(Step::End { trailers });
                }
                State::Done => return Ok(Step::End { trailers: Bytes::new() }),
            }
        }
    }
}

fn parse_size_line(line: &[u8]) -> Result<u64, ChunkError> {
    let digits_end = line.iter().position(|c| !c.is_ascii_hexdigit()).unwrap_or(line.len());
    if digits_end == 0 || digits_end > 15 {
        return Err(ChunkError::BadSize);
    }
    let rest = &line[digits_end..];
    // Only chunk extensions may follow: `;name[=value]`, optionally preceded by whitespace.
    let rest_trim = rest.trim_ascii_start();
    let ext_ok =
        rest_trim.first() == Some(&b';') && rest.iter().all(|&c| c == b'\t' || (b' '..0x7f).contains(&c));
    if !rest.is_empty() && !ext_ok {
        return Err(ChunkError::BadSize);
    }
    let mut n: u64 = 0;
    for &c in &line[..digits_end] {
        let d = (c as char).to_digit(16).ok_or(ChunkError::BadSize)?;
        n = (n << 4) | u64::from(d);
    }
    Ok(n)
}

fn valid_trailers(section: &[u8]) -> bool {
    section.split(|&c| c == b'\n').filter(|l| !l.is_empty()).all(|line| {
        let Some(line) = line.strip_suffix(b"\r") else { return false };
        let Some(colon) = line.iter().position(|&c| c == b':') else { return false };
        colon > 0
            && line[..colon].iter().all(|&c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c))
            && line[colon + 1..].iter().all(|&c| c == b'\t' || c >= b' ' && c != 0x7f)
    })
}

/// Appends a chunk header (`<hex size>\r\n`) to `out`.
pub fn write_chunk_header(out: &mut Vec<u8>, len: usize) {
    let mut tmp = [0u8; 16];
    let mut i = tmp.len();
    let mut n = len;
    loop {
        i -= 1;
        tmp[i] = b"0123456789abcdef"[n & 0xf];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&tmp[i..]);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8], split_every: usize) -> Result<(Vec<u8>, Bytes), ChunkError> {
        let mut dec = ChunkedDecoder::new(1024);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let mut fed = 0;
        loop {
            match dec.step(&mut buf)? {
                Step::Data(d) => out.extend_from_slice(&d),
                Step::End { trailers } => return Ok((out, trailers)),
                Step::NeedMore => {
                    if fed >= input.len() {
                        return Err(ChunkError::BadSize);
                    }
                    let end = (fed + split_every).min(input.len());
                    buf.extend_from_slice(&input[fed..end]);
                    fed = end;
                }
            }
        }
    }

    #[test]
    fn decodes_across_every_split() {
        let input = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Sum: 1\r\n\r\n";
        for split in 1..input.len() {
            let (body, trailers) = decode_all(input, split).expect("valid");
            assert_eq!(body, b"hello world");
            assert_eq!(&trailers[..], b"X-Sum: 1\r\n");
        }
    }

    #[test]
    fn no_trailers() {
        let (body, trailers) = decode_all(b"3\r\nabc\r\n0\r\n\r\n", 64).expect("valid");
        assert_eq!(body, b"abc");
        assert!(trailers.is_empty());
    }

    #[test]
    fn rejects_smuggling_shapes() {
        for bad in [
            &b"-5\r\nhello\r\n0\r\n\r\n"[..],
            b"+5\r\nhello\r\n0\r\n\r\n",
            b"5 \r\nhello\r\n0\r\n\r\n",
            b"0x5\r\nhello\r\n0\r\n\r\n",
            b"5\nhello\r\n0\r\n\r\n",
            b"5\r\nhelloXX0\r\n\r\n",
            b"ffffffffffffffff1\r\n",
            b"\r\n",
            b"3\r\nabc\r\n0\r\nbad trailer\r\n\r\n",
        ] {
            assert!(decode_all(bad, 64).is_err(), "accepted {:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn chunk_header_hex() {
        let mut v = Vec::new();
        write_chunk_header(&mut v, 0);
        write_chunk_header(&mut v, 255);
        write_chunk_header(&mut v, 4096);
        assert_eq!(v, b"0\r\nff\r\n1000\r\n");
    }
}
