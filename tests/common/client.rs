//! A raw HTTP/1.1 client over `std::net::TcpStream`: the test writes exact bytes and reads
//! responses one at a time with their framing (Content-Length, chunked, close-delimited).

use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::wire::{Framing, Wire, framing_of, header, parse_head};

/// Longest wait for any single read or write.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// One response as the client received it.
#[derive(Clone, Debug)]
pub struct Response {
    /// `HTTP/1.1` or `HTTP/1.0`.
    pub version: String,
    /// Status code.
    pub status: u16,
    /// Reason phrase.
    pub reason: String,
    /// Fields in order, names with their original casing.
    pub headers: Vec<(String, String)>,
    /// The head bytes exactly as received.
    pub raw_head: Vec<u8>,
    /// The body (decoded when chunked).
    pub body: Vec<u8>,
    /// How the body was framed.
    pub framing: Framing,
    /// Raw trailer section of a chunked body.
    pub trailers: Vec<u8>,
}

impl Response {
    /// First value of a field.
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// Every value of a field.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
    }

    /// The body as UTF-8 text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.text()))
    }

    /// Asserts this is a gateway error reply with `status` and `code` in the documented JSON
    /// shape; returns its `request_id` (a string; empty when the request could not be parsed).
    pub fn assert_error(&self, status: u16, code: &str) -> String {
        assert_eq!(self.status, status, "unexpected status; response: {self:?}");
        assert_eq!(self.header("content-type"), Some("application/json"), "error content type");
        let v = self.json();
        let e = &v["error"];
        assert_eq!(e["status"], status, "error.status in {v}");
        assert_eq!(e["code"], code, "error.code in {v}");
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "error.message in {v}");
        let obj = v.as_object().expect("object");
        assert_eq!(obj.len(), 1, "only the `error` key at top level: {v}");
        let id = e["request_id"].as_str().unwrap_or_else(|| panic!("error.request_id missing: {v}"));
        id.to_owned()
    }

    /// Like [`Response::assert_error`] for errors raised after the request was parsed: the
    /// `request_id` is non-empty and equals the echoed `x-request-id` field.
    pub fn assert_routed_error(&self, status: u16, code: &str) -> String {
        let id = self.assert_error(status, code);
        assert!(!id.is_empty(), "routed errors carry a request id: {}", self.text());
        assert_eq!(self.header("x-request-id"), Some(id.as_str()), "the echoed id matches the body");
        id
    }
}

/// A client connection.
pub struct Client {
    wire: Wire<TcpStream>,
    out: TcpStream,
}

impl Client {
    /// Connects to `addr`.
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("connect to the gateway at {addr}: {e}"));
        stream.set_read_timeout(Some(IO_TIMEOUT)).expect("read timeout");
        stream.set_write_timeout(Some(IO_TIMEOUT)).expect("write timeout");
        stream.set_nodelay(true).expect("nodelay");
        let out = stream.try_clone().expect("clone the stream");
        Client { wire: Wire::new(stream), out }
    }

    /// The socket (e.g. to change timeouts).
    pub fn stream(&self) -> &TcpStream {
        &self.out
    }

    /// Writes bytes.
    pub fn send(&mut self, bytes: &[u8]) {
        self.out.write_all(bytes).expect("write to the gateway");
    }

    /// Writes bytes, returning the error instead of panicking.
    pub fn try_send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)
    }

    /// Reads one response head and body, framed as a response to a non-HEAD request.
    pub fn read_response(&mut self) -> Response {
        self.try_read_response(false).unwrap_or_else(|e| panic!("read a response: {e}"))
    }

    /// Reads one response to a HEAD request (no body, whatever the head says).
    pub fn read_head_response(&mut self) -> Response {
        self.try_read_response(true).unwrap_or_else(|e| panic!("read a HEAD response: {e}"))
    }

    /// Reads one response, or the error.
    pub fn try_read_response(&mut self, head_request: bool) -> io::Result<Response> {
        let mut body = Vec::new();
        let mut r = self.read_response_with(head_request, &mut |d| body.extend_from_slice(d))?;
        r.body = body;
        Ok(r)
    }

    /// Reads one response, streaming its body into `sink` (the returned body is empty).
    pub fn read_response_with(
        &mut self,
        head_request: bool,
        sink: &mut dyn FnMut(&[u8]),
    ) -> io::Result<Response> {
        read_response_from(&mut self.wire, head_request, sink)
    }

    /// Sends `bytes` and reads one response.
    pub fn request(&mut self, bytes: &[u8]) -> Response {
        self.send(bytes);
        self.read_response()
    }

    /// Sends a `GET path` with `Host: test` and reads the response.
    pub fn get(&mut self, path: &str) -> Response {
        self.request(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes())
    }

    /// Asserts the gateway closes the connection within `within` without sending anything
    /// more; returns how long it took.
    pub fn expect_closed(&mut self, within: Duration) -> Duration {
        let start = Instant::now();
        assert!(
            self.wire.buffered().is_empty(),
            "unread bytes: {:?}",
            String::from_utf8_lossy(self.wire.buffered())
        );
        self.out.set_read_timeout(Some(within)).expect("read timeout");
        let rest = self.wire.read_to_end();
        self.out.set_read_timeout(Some(IO_TIMEOUT)).expect("read timeout");
        match rest {
            Ok(bytes) => {
                assert!(bytes.is_empty(), "bytes after the response: {:?}", String::from_utf8_lossy(&bytes))
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!("the connection was not closed within {within:?}: {e}"),
        }
        start.elapsed()
    }

    /// Asserts the connection is still open after `wait` (nothing arrives, no EOF).
    pub fn expect_open(&mut self, wait: Duration) {
        assert!(self.wire.buffered().is_empty(), "unread bytes");
        self.out.set_read_timeout(Some(wait)).expect("read timeout");
        let mut one = [0u8; 1];
        let res = std::io::Read::read(&mut self.out, &mut one);
        self.out.set_read_timeout(Some(IO_TIMEOUT)).expect("read timeout");
        match res {
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
            Ok(0) => panic!("the gateway closed the connection"),
            other => panic!("unexpected read result on an idle connection: {other:?}"),
        }
    }
}

/// One request on a fresh connection.
pub fn request(addr: SocketAddr, bytes: &[u8]) -> Response {
    Client::connect(addr).request(bytes)
}

/// `GET path` with `Host: test` on a fresh connection.
pub fn get(addr: SocketAddr, path: &str) -> Response {
    Client::connect(addr).get(path)
}

/// Reads one response from any byte stream (plain or TLS), streaming its body into `sink`.
pub fn read_response_from<S: io::Read>(
    wire: &mut Wire<S>,
    head_request: bool,
    sink: &mut dyn FnMut(&[u8]),
) -> io::Result<Response> {
    let raw_head = wire
        .read_head()?
        .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed before a response"))?;
    let head = parse_head(&raw_head)?;
    let mut parts = head.start_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default().to_owned();
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::other(format!("bad status line {:?}", head.start_line)))?;
    let reason = parts.next().unwrap_or_default().to_owned();
    let framing = if head_request || (100..200).contains(&status) || status == 204 || status == 304 {
        Framing::None
    } else {
        framing_of(&head.headers, Framing::UntilClose)?
    };
    let trailers = wire.read_body(framing, sink)?;
    Ok(Response {
        version,
        status,
        reason,
        headers: head.headers,
        raw_head,
        body: Vec::new(),
        framing,
        trailers,
    })
}
