//! HTTP/1.1 framing shared by the test client and the test upstreams: a buffered reader that
//! hands out heads and streams bodies (Content-Length, chunked, close-delimited) into a sink, a
//! digest to compare large bodies end to end, and a deterministic byte generator.

use std::io::{self, Read};

/// How a message body is framed on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Until the peer closes.
    UntilClose,
}

/// A buffered reader over a byte stream.
pub struct Wire<S> {
    inner: S,
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

const BUF: usize = 64 * 1024;

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

impl<S: Read> Wire<S> {
    /// Wraps a stream.
    pub fn new(inner: S) -> Wire<S> {
        Wire { inner, buf: vec![0; BUF], start: 0, end: 0 }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped stream, mutably (to write requests on a TLS stream).
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Bytes read from the stream and not consumed yet.
    pub fn buffered(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Reads more bytes into the buffer; returns how many (0 = EOF).
    fn fill(&mut self) -> io::Result<usize> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else {
                let len = self.buf.len();
                self.buf.resize(len * 2, 0);
            }
        }
        loop {
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(n) => {
                    self.end += n;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads one head (everything through the blank line). `Ok(None)` when the stream ends
    /// cleanly before its first byte.
    pub fn read_head(&mut self) -> io::Result<Option<Vec<u8>>> {
        let mut scanned: usize = 0;
        loop {
            let data = &self.buf[self.start..self.end];
            if let Some(pos) = find(&data[scanned.saturating_sub(3)..], b"\r\n\r\n") {
                let at = scanned.saturating_sub(3) + pos + 4;
                let head = data[..at].to_vec();
                self.start += at;
                return Ok(Some(head));
            }
            scanned = data.len();
            if self.fill()? == 0 {
                if self.start == self.end {
                    return Ok(None);
                }
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("EOF inside a head: {:?}", String::from_utf8_lossy(self.buffered())),
                ));
            }
        }
    }

    /// Reads one CRLF-terminated line (without the CRLF).
    fn read_line(&mut self) -> io::Result<Vec<u8>> {
        loop {
            if let Some(pos) = find(self.buffered(), b"\r\n") {
                let line = self.buf[self.start..self.start + pos].to_vec();
                self.start += pos + 2;
                return Ok(line);
            }
            if self.fill()? == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "EOF inside a line"));
            }
        }
    }

    /// Hands up to `max` buffered bytes (reading if none are buffered) to `sink`; 0 = EOF.
    fn take(&mut self, max: u64, sink: &mut dyn FnMut(&[u8])) -> io::Result<usize> {
        if self.start == self.end && self.fill()? == 0 {
            return Ok(0);
        }
        let n = (self.end - self.start).min(usize::try_from(max).unwrap_or(usize::MAX));
        sink(&self.buf[self.start..self.start + n]);
        self.start += n;
        Ok(n)
    }

    /// Streams one body into `sink`; returns the raw trailer section (chunked only).
    pub fn read_body(&mut self, framing: Framing, sink: &mut dyn FnMut(&[u8])) -> io::Result<Vec<u8>> {
        match framing {
            Framing::None => Ok(Vec::new()),
            Framing::Length(mut left) => {
                while left > 0 {
                    let n = self.take(left, sink)?;
                    if n == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!("EOF with {left} body bytes missing"),
                        ));
                    }
                    left -= n as u64;
                }
                Ok(Vec::new())
            }
            Framing::UntilClose => {
                while self.take(u64::MAX, sink)? > 0 {}
                Ok(Vec::new())
            }
            Framing::Chunked => loop {
                let line = self.read_line()?;
                let digits: Vec<u8> = line.iter().copied().take_while(u8::is_ascii_hexdigit).collect();
                let size = std::str::from_utf8(&digits)
                    .ok()
                    .and_then(|s| u64::from_str_radix(s, 16).ok())
                    .ok_or_else(|| invalid(format!("bad chunk size {:?}", String::from_utf8_lossy(&line))))?;
                if size == 0 {
                    let mut trailers = Vec::new();
                    loop {
                        let t = self.read_line()?;
                        if t.is_empty() {
                            return Ok(trailers);
                        }
                        trailers.extend_from_slice(&t);
                        trailers.extend_from_slice(b"\r\n");
                    }
                }
                let mut left = size;
                while left > 0 {
                    let n = self.take(left, sink)?;
                    if n == 0 {
                        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "EOF inside a chunk"));
                    }
                    left -= n as u64;
                }
                if !self.read_line()?.is_empty() {
                    return Err(invalid("chunk data not followed by CRLF"));
                }
            },
        }
    }

    /// Reads whatever arrives until EOF (or an error), returning it.
    pub fn read_to_end(&mut self) -> io::Result<Vec<u8>> {
        let mut out = self.buffered().to_vec();
        self.start = self.end;
        self.inner.read_to_end(&mut out)?;
        Ok(out)
    }
}

/// Position of `needle` in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A parsed head: start line and fields with their original casing.
#[derive(Clone, Debug)]
pub struct Head {
    /// The first line (request line or status line).
    pub start_line: String,
    /// Fields in order, names as sent, values trimmed.
    pub headers: Vec<(String, String)>,
}

/// Splits a head into its start line and fields.
pub fn parse_head(raw: &[u8]) -> io::Result<Head> {
    let text = std::str::from_utf8(raw).map_err(|_| invalid("head is not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let start_line = lines.next().unwrap_or_default().to_owned();
    let mut headers = Vec::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').ok_or_else(|| invalid(format!("bad field {line:?}")))?;
        headers.push((name.to_owned(), value.trim().to_owned()));
    }
    Ok(Head { start_line, headers })
}

/// First value of a field (case-insensitive name).
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// Body framing announced by a set of fields (Transfer-Encoding wins over Content-Length).
pub fn framing_of(headers: &[(String, String)], default: Framing) -> io::Result<Framing> {
    if let Some(te) = header(headers, "transfer-encoding") {
        if te.rsplit(',').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("chunked")) {
            return Ok(Framing::Chunked);
        }
        return Ok(Framing::UntilClose);
    }
    match header(headers, "content-length") {
        Some(v) => v.parse().map(Framing::Length).map_err(|_| invalid(format!("bad Content-Length {v:?}"))),
        None => Ok(default),
    }
}

/// An order-sensitive 64-bit digest of a byte stream, independent of how it is split.
#[derive(Clone, Debug)]
pub struct Digest {
    len: u64,
    state: u64,
    pending: [u8; 8],
    npending: usize,
}

impl Default for Digest {
    fn default() -> Self {
        Digest { len: 0, state: 0xcbf2_9ce4_8422_2325, pending: [0; 8], npending: 0 }
    }
}

impl Digest {
    fn mix(&mut self, w: u64) {
        self.state = (self.state ^ w).wrapping_mul(0x0000_0100_0000_01b3).rotate_left(23);
    }

    /// Feeds bytes.
    pub fn update(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        if self.npending > 0 {
            let n = (8 - self.npending).min(data.len());
            self.pending[self.npending..self.npending + n].copy_from_slice(&data[..n]);
            self.npending += n;
            data = &data[n..];
            if self.npending < 8 {
                return;
            }
            self.mix(u64::from_le_bytes(self.pending));
            self.npending = 0;
        }
        let words = data.len() / 8;
        let (full, rest) = data.split_at(words * 8);
        for w in full.chunks_exact(8) {
            self.mix(u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]));
        }
        self.pending[..rest.len()].copy_from_slice(rest);
        self.npending = rest.len();
    }

    /// `(length, hash)` of everything fed so far.
    pub fn finish(&self) -> (u64, u64) {
        let mut d = self.clone();
        for i in 0..d.npending {
            let b = d.pending[i];
            d.mix(u64::from(b) | 0x100);
        }
        d.mix(d.len);
        (self.len, d.state)
    }
}

/// A deterministic, non-periodic-looking byte stream: a 1 MiB + 7 byte pseudo-random block
/// (derived from `seed`) repeated, so that generating gigabytes costs only copies, while a
/// dropped, duplicated or reordered slice still changes the digest (the block length is not a
/// power of two, so slices land at shifting offsets).
#[derive(Clone)]
pub struct Pattern {
    block: std::sync::Arc<Vec<u8>>,
    pos: usize,
}

impl Pattern {
    /// The stream for `seed`.
    pub fn new(seed: u64) -> Pattern {
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let mut block = Vec::with_capacity((1 << 20) + 8);
        while block.len() < (1 << 20) + 7 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            block.extend_from_slice(&x.to_le_bytes());
        }
        block.truncate((1 << 20) + 7);
        Pattern { block: std::sync::Arc::new(block), pos: 0 }
    }

    /// Fills `out` with the next bytes of the stream.
    pub fn fill(&mut self, out: &mut [u8]) {
        let mut done = 0;
        while done < out.len() {
            let n = (self.block.len() - self.pos).min(out.len() - done);
            out[done..done + n].copy_from_slice(&self.block[self.pos..self.pos + n]);
            done += n;
            self.pos = (self.pos + n) % self.block.len();
        }
    }

    /// Digest of the first `len` bytes of the stream for `seed`.
    pub fn digest(seed: u64, len: u64) -> (u64, u64) {
        let mut p = Pattern::new(seed);
        let mut d = Digest::default();
        let mut buf = vec![0u8; 256 * 1024];
        let mut left = len;
        while left > 0 {
            let n = usize::try_from(left.min(buf.len() as u64)).expect("fits");
            p.fill(&mut buf[..n]);
            d.update(&buf[..n]);
            left -= n as u64;
        }
        d.finish()
    }
}

/// Checks a byte stream against [`Pattern`] `seed` as it arrives, byte for byte (a memcmp per
/// slice: fast even in a debug build, and stricter than a digest).
pub struct PatternCheck {
    pattern: Pattern,
    scratch: Vec<u8>,
    len: u64,
    first_mismatch: Option<u64>,
}

impl PatternCheck {
    /// A check against the stream for `seed`.
    pub fn new(seed: u64) -> PatternCheck {
        PatternCheck { pattern: Pattern::new(seed), scratch: Vec::new(), len: 0, first_mismatch: None }
    }

    /// Feeds the next bytes received.
    pub fn update(&mut self, data: &[u8]) {
        self.scratch.resize(data.len(), 0);
        self.pattern.fill(&mut self.scratch);
        if self.first_mismatch.is_none() && self.scratch[..] != data[..] {
            let at = self.scratch.iter().zip(data).position(|(a, b)| a != b).unwrap_or(0);
            self.first_mismatch = Some(self.len + at as u64);
        }
        self.len += data.len() as u64;
    }

    /// Bytes received so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Offset of the first byte that differed from the pattern, if any.
    pub fn first_mismatch(&self) -> Option<u64> {
        self.first_mismatch
    }
}
