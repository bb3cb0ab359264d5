//! Why a request or a connection attempt failed and which statuses are failures: the error
//! counts of a run by kind. Owns only the counting; depends on no other module of the generator.

use serde::Serialize;

/// Why a request (or a connection) failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fail {
    /// TCP/QUIC connect, TLS handshake, ALPN or HTTP/2 / HTTP/3 session set-up failed.
    Connect,
    /// Sending a request failed.
    Write,
    /// Reading a response failed.
    Read,
    /// The server closed the connection (or sent GOAWAY) with the request outstanding.
    Closed,
    /// No complete response within the timeout.
    Timeout,
    /// A response that could not be framed or violated the protocol.
    Parse,
    /// The server reset the stream (HTTP/2 RST_STREAM, HTTP/3 stream error).
    Reset,
}

/// Adds `n` failures of kind `fail`.
pub fn count(e: &mut Errors, fail: Fail, n: u64) {
    match fail {
        Fail::Connect => e.connect += n,
        Fail::Write => e.write += n,
        Fail::Read => e.read += n,
        Fail::Closed => e.closed += n,
        Fail::Timeout => e.timeout += n,
        Fail::Parse => e.parse += n,
        Fail::Reset => e.reset += n,
    }
}

/// Counts a status: `true` when it is a success (2xx/3xx, or anything below 400).
pub fn status_ok(e: &mut Errors, status: u16) -> bool {
    match status {
        400..=499 => e.status_4xx += 1,
        500..=599 => e.status_5xx += 1,
        _ => return true,
    }
    false
}

/// Error counts by kind. One count per failed request or failed connection attempt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Errors {
    /// Connection attempts refused or timed out.
    pub connect: u64,
    /// Writing a request failed (reset, broken pipe).
    pub write: u64,
    /// Reading a response failed (reset).
    pub read: u64,
    /// The server closed the connection with requests outstanding.
    pub closed: u64,
    /// No complete response within the request timeout.
    pub timeout: u64,
    /// A response the generator could not frame (not HTTP/1.x, no length) or a protocol error.
    pub parse: u64,
    /// Streams the server reset (HTTP/2 RST_STREAM, HTTP/3 stream errors).
    pub reset: u64,
    /// Complete responses with a 4xx status.
    pub status_4xx: u64,
    /// Complete responses with a 5xx status.
    pub status_5xx: u64,
}

impl Errors {
    /// Sum over every kind.
    pub fn total(&self) -> u64 {
        self.connect
            + self.write
            + self.read
            + self.closed
            + self.timeout
            + self.parse
            + self.reset
            + self.status_4xx
            + self.status_5xx
    }

    /// Adds another thread's counts to these.
    pub fn add(&mut self, o: &Errors) {
        self.connect += o.connect;
        self.write += o.write;
        self.read += o.read;
        self.closed += o.closed;
        self.timeout += o.timeout;
        self.parse += o.parse;
        self.reset += o.reset;
        self.status_4xx += o.status_4xx;
        self.status_5xx += o.status_5xx;
    }
}
