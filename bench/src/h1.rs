//! Request-side HTTP/1.1 framing for the reference upstream: finds every complete request in a
//! receive buffer (pipelining included), skips request bodies (Content-Length or chunked) and
//! queues one canned response per request, in order.

use httparse::Status;

/// Largest request head accepted; a longer one gets `431` and the connection closes.
pub const MAX_HEAD: usize = 32 * 1024;

/// Most headers accepted in one request head.
const MAX_HEADERS: usize = 64;

const BAD_REQUEST: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
const TOO_LARGE: &[u8] =
    b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// The fixed `200 OK` response, pre-encoded once for keep-alive and closing connections.
#[derive(Debug, Clone)]
pub struct Canned {
    head_keep_alive: Vec<u8>,
    head_close: Vec<u8>,
    body: Vec<u8>,
}

impl Canned {
    /// Builds the response with a body of `body_size` bytes ("Hello, world!" repeated).
    pub fn new(body_size: usize) -> Self {
        let pattern = b"Hello, world!";
        let body: Vec<u8> = pattern.iter().copied().cycle().take(body_size).collect();
        let head = |conn: &str| {
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {body_size}\r\nContent-Type: text/plain\r\n{conn}\r\n"
            )
            .into_bytes()
        };
        Self { head_keep_alive: head(""), head_close: head("Connection: close\r\n"), body }
    }

    /// The response body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    fn write(&self, out: &mut Vec<u8>, close: bool, head_only: bool) {
        out.extend_from_slice(if close { &self.head_close } else { &self.head_keep_alive });
        if !head_only {
            out.extend_from_slice(&self.body);
        }
    }
}

/// Where a framer is inside a chunked body (shared with the load generator's response framer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Chunk {
    Size,
    Data(u64),
    DataEnd,
    Trailer,
}

/// What the framer expects next on the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Head,
    Length(u64),
    Chunked(Chunk),
}

/// The response owed for a request whose body is still being skipped.
#[derive(Debug, Clone, Copy, Default)]
struct Owed {
    close: bool,
    head_only: bool,
}

/// Outcome of one [`Framer::feed`] call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Feed {
    /// Bytes of the buffer that were used and can be dropped.
    pub consumed: usize,
    /// The connection must close once the queued output is written.
    pub close: bool,
}

/// Per-connection request framing state.
#[derive(Debug)]
pub struct Framer {
    phase: Phase,
    owed: Owed,
}

impl Default for Framer {
    fn default() -> Self {
        Self { phase: Phase::Head, owed: Owed::default() }
    }
}

/// What the head of one request asks for.
struct HeadInfo {
    body: Phase,
    close: bool,
    head_only: bool,
    expect_continue: bool,
}

impl Framer {
    /// Consumes as much of `buf` as it can, appending the responses it owes to `out`.
    pub fn feed(&mut self, buf: &[u8], canned: &Canned, out: &mut Vec<u8>) -> Feed {
        let mut pos = 0;
        loop {
            let rest = &buf[pos..];
            match self.phase {
                Phase::Head => {
                    if rest.is_empty() {
                        return Feed { consumed: pos, close: false };
                    }
                    match parse_head(rest) {
                        Ok(Some((n, info))) => {
                            pos += n;
                            if info.expect_continue && info.body != Phase::Head {
                                out.extend_from_slice(CONTINUE);
                            }
                            self.owed = Owed { close: info.close, head_only: info.head_only };
                            self.phase = info.body;
                            if self.phase == Phase::Head && self.finish(canned, out) {
                                return Feed { consumed: pos, close: true };
                            }
                        }
                        Ok(None) if rest.len() > MAX_HEAD => return reject(out, TOO_LARGE, pos),
                        Ok(None) => return Feed { consumed: pos, close: false },
                        Err(reply) => return reject(out, reply, pos),
                    }
                }
                Phase::Length(left) => {
                    let take = left.min(rest.len() as u64);
                    pos += take as usize;
                    if take < left {
                        self.phase = Phase::Length(left - take);
                        return Feed { consumed: pos, close: false };
                    }
                    self.phase = Phase::Head;
                    if self.finish(canned, out) {
                        return Feed { consumed: pos, close: true };
                    }
                }
                Phase::Chunked(state) => match step_chunked(state, rest) {
                    ChunkStep::Advance(n, Some(next)) => {
                        pos += n;
                        self.phase = Phase::Chunked(next);
                    }
                    ChunkStep::Advance(n, None) => {
                        pos += n;
                        self.phase = Phase::Head;
                        if self.finish(canned, out) {
                            return Feed { consumed: pos, close: true };
                        }
                    }
                    ChunkStep::NeedMore => return Feed { consumed: pos, close: false },
                    ChunkStep::Invalid => return reject(out, BAD_REQUEST, pos),
                },
            }
        }
    }

    /// Writes the owed response; returns whether the connection closes after it.
    fn finish(&mut self, canned: &Canned, out: &mut Vec<u8>) -> bool {
        let owed = std::mem::take(&mut self.owed);
        canned.write(out, owed.close, owed.head_only);
        owed.close
    }
}

fn reject(out: &mut Vec<u8>, reply: &[u8], pos: usize) -> Feed {
    out.extend_from_slice(reply);
    Feed { consumed: pos, close: true }
}

/// Parses one request head: `Ok(None)` when incomplete, `Err(reply)` when it must be refused.
fn parse_head(buf: &[u8]) -> Result<Option<(usize, HeadInfo)>, &'static [u8]> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let n = match req.parse(buf) {
        Ok(Status::Complete(n)) => n,
        Ok(Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(TOO_LARGE),
        Err(_) => return Err(BAD_REQUEST),
    };
    let http10 = req.version == Some(0);
    let mut info = HeadInfo {
        body: Phase::Head,
        close: http10,
        head_only: req.method == Some("HEAD"),
        expect_continue: false,
    };
    let mut length: Option<u64> = None;
    let mut chunked = false;
    for h in req.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            let v = parse_length(h.value).ok_or(BAD_REQUEST)?;
            if length.is_some_and(|old| old != v) {
                return Err(BAD_REQUEST);
            }
            length = Some(v);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            let last = h.value.rsplit(|&b| b == b',').next().unwrap_or_default();
            chunked = last.trim_ascii().eq_ignore_ascii_case(b"chunked");
            if !chunked {
                return Err(BAD_REQUEST);
            }
        } else if name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                if token.eq_ignore_ascii_case(b"close") {
                    info.close = true;
                } else if http10 && token.eq_ignore_ascii_case(b"keep-alive") {
                    info.close = false;
                }
            }
        } else if name.eq_ignore_ascii_case("expect") {
            info.expect_continue = h.value.trim_ascii().eq_ignore_ascii_case(b"100-continue");
        }
    }
    info.body = match (chunked, length) {
        (true, Some(_)) => return Err(BAD_REQUEST),
        (true, None) => Phase::Chunked(Chunk::Size),
        (false, Some(0) | None) => Phase::Head,
        (false, Some(v)) => Phase::Length(v),
    };
    Ok(Some((n, info)))
}

/// Parses a `Content-Length` value (digits only, no sign, no overflow).
pub(crate) fn parse_length(value: &[u8]) -> Option<u64> {
    let value = value.trim_ascii();
    if value.is_empty() {
        return None;
    }
    value.iter().try_fold(0u64, |acc, &b| {
        if b.is_ascii_digit() { acc.checked_mul(10)?.checked_add(u64::from(b - b'0')) } else { None }
    })
}

/// Progress through a chunked body: bytes used and the next state (`None` = body done).
pub(crate) enum ChunkStep {
    Advance(usize, Option<Chunk>),
    NeedMore,
    Invalid,
}

/// Advances over one piece of a chunked body (size line, data, CRLF or trailer line).
pub(crate) fn step_chunked(state: Chunk, rest: &[u8]) -> ChunkStep {
    match state {
        Chunk::Size => match httparse::parse_chunk_size(rest) {
            Ok(Status::Complete((n, 0))) => ChunkStep::Advance(n, Some(Chunk::Trailer)),
            Ok(Status::Complete((n, size))) => ChunkStep::Advance(n, Some(Chunk::Data(size))),
            Ok(Status::Partial) => ChunkStep::NeedMore,
            Err(_) => ChunkStep::Invalid,
        },
        Chunk::Data(left) => {
            if rest.is_empty() {
                return ChunkStep::NeedMore;
            }
            let take = left.min(rest.len() as u64);
            let next = if take == left { Chunk::DataEnd } else { Chunk::Data(left - take) };
            ChunkStep::Advance(take as usize, Some(next))
        }
        Chunk::DataEnd => match rest {
            [b'\r', b'\n', ..] => ChunkStep::Advance(2, Some(Chunk::Size)),
            [] | [b'\r'] => ChunkStep::NeedMore,
            _ => ChunkStep::Invalid,
        },
        Chunk::Trailer => {
            if rest.starts_with(b"\r\n") {
                return ChunkStep::Advance(2, None);
            }
            match rest.windows(2).position(|w| w == b"\r\n") {
                Some(i) => ChunkStep::Advance(i + 2, Some(Chunk::Trailer)),
                None if rest.len() > MAX_HEAD => ChunkStep::Invalid,
                None => ChunkStep::NeedMore,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: &[u8]) -> (Feed, String) {
        let canned = Canned::new(13);
        let mut framer = Framer::default();
        let mut out = Vec::new();
        let feed = framer.feed(input, &canned, &mut out);
        (feed, String::from_utf8_lossy(&out).into_owned())
    }

    fn count_ok(out: &str) -> usize {
        out.matches("HTTP/1.1 200 OK").count()
    }

    #[test]
    fn canned_response_is_well_formed() {
        let (feed, out) = run(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(feed, Feed { consumed: 27, close: false });
        assert_eq!(
            out,
            "HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nHello, world!"
        );
    }

    #[test]
    fn body_size_is_respected() {
        let canned = Canned::new(40);
        let mut out = Vec::new();
        Framer::default().feed(b"GET / HTTP/1.1\r\n\r\n", &canned, &mut out);
        assert!(out.ends_with(b"\r\n\r\nHello, world!Hello, world!Hello, world!H"));
    }

    #[test]
    fn pipelined_requests_all_answered_in_order() {
        let one = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
        let input: Vec<u8> = one.iter().copied().cycle().take(one.len() * 5).collect();
        let (feed, out) = run(&input);
        assert_eq!(feed.consumed, input.len());
        assert_eq!(count_ok(&out), 5);
    }

    #[test]
    fn partial_head_waits() {
        let (feed, out) = run(b"GET / HTTP/1.1\r\nHo");
        assert_eq!(feed, Feed { consumed: 0, close: false });
        assert!(out.is_empty());
    }

    #[test]
    fn content_length_body_is_skipped_across_feeds() {
        let canned = Canned::new(13);
        let mut framer = Framer::default();
        let mut out = Vec::new();
        let head = b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n12345";
        let feed = framer.feed(head, &canned, &mut out);
        assert_eq!(feed.consumed, head.len());
        assert!(out.is_empty(), "response waits for the whole body");
        let feed = framer.feed(b"67890GET / HTTP/1.1\r\n\r\n", &canned, &mut out);
        assert_eq!(feed.consumed, 5 + 18);
        assert_eq!(count_ok(&String::from_utf8_lossy(&out)), 2);
    }

    #[test]
    fn chunked_body_is_skipped() {
        let input = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\nGET / HTTP/1.1\r\n\r\n";
        let (feed, out) = run(input);
        assert_eq!(feed, Feed { consumed: input.len(), close: false });
        assert_eq!(count_ok(&out), 2);
    }

    #[test]
    fn chunked_body_split_everywhere() {
        let input: &[u8] =
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n";
        for split in 1..input.len() {
            let canned = Canned::new(13);
            let mut framer = Framer::default();
            let mut out = Vec::new();
            let mut buf = input[..split].to_vec();
            let feed = framer.feed(&buf, &canned, &mut out);
            assert!(!feed.close, "split {split}");
            buf.drain(..feed.consumed);
            buf.extend_from_slice(&input[split..]);
            let feed = framer.feed(&buf, &canned, &mut out);
            assert_eq!(feed.consumed, buf.len(), "split {split}");
            assert_eq!(count_ok(&String::from_utf8_lossy(&out)), 2, "split {split}");
        }
    }

    #[test]
    fn connection_close_and_http10() {
        let (feed, out) = run(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\n\r\n");
        assert!(feed.close);
        assert_eq!(count_ok(&out), 1);
        assert!(out.contains("Connection: close"));
        let (feed, _) = run(b"GET / HTTP/1.0\r\n\r\n");
        assert!(feed.close);
        let (feed, _) = run(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
        assert!(!feed.close);
    }

    #[test]
    fn head_gets_no_body() {
        let (_, out) = run(b"HEAD / HTTP/1.1\r\n\r\n");
        assert!(out.ends_with("text/plain\r\n\r\n"));
    }

    #[test]
    fn expect_continue_gets_interim_response() {
        let (_, out) = run(b"POST / HTTP/1.1\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\nhi");
        assert!(out.starts_with("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK"));
    }

    #[test]
    fn malformed_and_ambiguous_requests_are_refused() {
        for input in [
            &b"GARBAGE\0\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        ] {
            let (feed, out) = run(input);
            assert!(feed.close, "{}", String::from_utf8_lossy(input));
            assert!(out.starts_with("HTTP/1.1 400"), "{}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn oversized_head_is_refused() {
        let mut input = b"GET / HTTP/1.1\r\nX: ".to_vec();
        input.resize(MAX_HEAD + 10, b'a');
        let (feed, out) = run(&input);
        assert!(feed.close);
        assert!(out.starts_with("HTTP/1.1 431"));
    }

    #[test]
    fn length_parsing() {
        assert_eq!(parse_length(b" 42 "), Some(42));
        assert_eq!(parse_length(b""), None);
        assert_eq!(parse_length(b"-1"), None);
        assert_eq!(parse_length(b"99999999999999999999999"), None);
    }
}
