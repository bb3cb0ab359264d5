//! Response-side HTTP/1.1 framing for the load generator: finds where each response ends in a
//! receive buffer (Content-Length, chunked, bodiless statuses, interim 1xx) and reports its
//! status and whether the server is closing. It never looks inside bodies and owns no I/O.

use httparse::Status;

use crate::h1::{Chunk, ChunkStep, MAX_HEAD, parse_length, step_chunked};

/// Most headers accepted in one response head.
const MAX_HEADERS: usize = 64;

/// What the generator needs to know about one complete response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RespInfo {
    /// Status code.
    pub status: u16,
    /// The server announced it closes the connection after this response.
    pub close: bool,
}

/// Why a response could not be framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// Not HTTP/1.x, bad framing headers or a bad chunk.
    Invalid,
    /// A body delimited only by the connection closing: the generator cannot reuse such a
    /// connection and refuses to measure it.
    Unframed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Head,
    Length(u64),
    Chunked(Chunk),
}

/// Per-connection response framing state.
#[derive(Debug)]
pub struct RespFramer {
    phase: Phase,
    cur: RespInfo,
}

impl Default for RespFramer {
    fn default() -> Self {
        Self { phase: Phase::Head, cur: RespInfo { status: 0, close: false } }
    }
}

impl RespFramer {
    /// Advances over `buf`: returns the bytes used and the response that completed, if one
    /// did. Call again on the rest of the buffer while it returns `Some`.
    pub fn step(&mut self, buf: &[u8]) -> Result<(usize, Option<RespInfo>), FrameError> {
        let mut pos = 0;
        loop {
            let rest = &buf[pos..];
            match self.phase {
                Phase::Head => {
                    let Some((n, info, body)) = parse_head(rest)? else {
                        if rest.len() > MAX_HEAD {
                            return Err(FrameError::Invalid);
                        }
                        return Ok((pos, None));
                    };
                    pos += n;
                    if (100..200).contains(&info.status) {
                        continue; // interim response (100 Continue): the real one follows
                    }
                    self.cur = info;
                    self.phase = body;
                    if body == Phase::Head {
                        return Ok((pos, Some(info)));
                    }
                }
                Phase::Length(left) => {
                    let take = left.min(rest.len() as u64);
                    pos += take as usize;
                    if take < left {
                        self.phase = Phase::Length(left - take);
                        return Ok((pos, None));
                    }
                    self.phase = Phase::Head;
                    return Ok((pos, Some(self.cur)));
                }
                Phase::Chunked(state) => match step_chunked(state, rest) {
                    ChunkStep::Advance(n, Some(next)) => {
                        pos += n;
                        self.phase = Phase::Chunked(next);
                    }
                    ChunkStep::Advance(n, None) => {
                        pos += n;
                        self.phase = Phase::Head;
                        return Ok((pos, Some(self.cur)));
                    }
                    ChunkStep::NeedMore => return Ok((pos, None)),
                    ChunkStep::Invalid => return Err(FrameError::Invalid),
                },
            }
        }
    }
}

type Head = (usize, RespInfo, Phase);

fn parse_head(buf: &[u8]) -> Result<Option<Head>, FrameError> {
    if buf.is_empty() {
        return Ok(None);
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let n = match resp.parse(buf) {
        Ok(Status::Complete(n)) => n,
        Ok(Status::Partial) => return Ok(None),
        Err(_) => return Err(FrameError::Invalid),
    };
    let status = resp.code.unwrap_or(0);
    let http10 = resp.version == Some(0);
    let mut info = RespInfo { status, close: http10 };
    let mut length: Option<u64> = None;
    let mut chunked = false;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let v = parse_length(h.value).ok_or(FrameError::Invalid)?;
            if length.is_some_and(|old| old != v) {
                return Err(FrameError::Invalid);
            }
            length = Some(v);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            let last = h.value.rsplit(|&b| b == b',').next().unwrap_or_default();
            chunked = last.trim_ascii().eq_ignore_ascii_case(b"chunked");
        } else if h.name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                if token.eq_ignore_ascii_case(b"close") {
                    info.close = true;
                } else if http10 && token.eq_ignore_ascii_case(b"keep-alive") {
                    info.close = false;
                }
            }
        }
    }
    let bodiless = (100..200).contains(&status) || status == 204 || status == 304;
    let body = match (bodiless, chunked, length) {
        (true, _, _) => Phase::Head,
        (false, true, _) => Phase::Chunked(Chunk::Size),
        (false, false, Some(0)) => Phase::Head,
        (false, false, Some(v)) => Phase::Length(v),
        (false, false, None) => return Err(FrameError::Unframed),
    };
    Ok(Some((n, info, body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `piece` bytes, returning every completed response.
    fn frame_in_pieces(input: &[u8], piece: usize) -> Result<Vec<RespInfo>, FrameError> {
        let mut framer = RespFramer::default();
        let mut buf = Vec::new();
        let mut done = Vec::new();
        for part in input.chunks(piece) {
            buf.extend_from_slice(part);
            loop {
                let (n, resp) = framer.step(&buf)?;
                buf.drain(..n);
                match resp {
                    Some(r) => done.push(r),
                    None => break,
                }
            }
        }
        assert!(buf.is_empty(), "left over: {:?}", String::from_utf8_lossy(&buf));
        Ok(done)
    }

    const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";

    #[test]
    fn content_length_responses_pipelined_and_split_anywhere() {
        let input: Vec<u8> = OK.iter().copied().cycle().take(OK.len() * 4).collect();
        for piece in [1, 3, 7, input.len()] {
            let done = frame_in_pieces(&input, piece).expect("frames");
            assert_eq!(done.len(), 4, "piece {piece}");
            assert!(done.iter().all(|r| r.status == 200 && !r.close));
        }
    }

    #[test]
    fn chunked_with_trailer_then_next_response() {
        let mut input =
            b"HTTP/1.1 503 Busy\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n"
                .to_vec();
        input.extend_from_slice(OK);
        for piece in [1, 5, input.len()] {
            let done = frame_in_pieces(&input, piece).expect("frames");
            assert_eq!(done.iter().map(|r| r.status).collect::<Vec<_>>(), vec![503, 200]);
        }
    }

    #[test]
    fn interim_and_bodiless_statuses() {
        let input = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n";
        let done = frame_in_pieces(input, 4).expect("frames");
        assert_eq!(done.iter().map(|r| r.status).collect::<Vec<_>>(), vec![204, 304]);
    }

    #[test]
    fn close_is_reported() {
        let done = frame_in_pieces(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", 64);
        assert_eq!(done, Ok(vec![RespInfo { status: 200, close: true }]));
        let done = frame_in_pieces(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", 64);
        assert_eq!(done, Ok(vec![RespInfo { status: 200, close: true }]));
    }

    #[test]
    fn garbage_and_unframed_bodies_are_errors() {
        assert_eq!(RespFramer::default().step(b"SSH-2.0-OpenSSH\r\n\r\n"), Err(FrameError::Invalid));
        assert_eq!(RespFramer::default().step(b"HTTP/1.1 200 OK\r\n\r\n"), Err(FrameError::Unframed));
        let conflicting = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n";
        assert_eq!(RespFramer::default().step(conflicting), Err(FrameError::Invalid));
    }
}
