//! A tiny blocking HTTP/1.1 server for the admin API: one request per connection, bounded
//! head and body, one deadline for the whole request (head and body: a client trickling bytes
//! cannot stretch it) and one for the whole response, `Connection: close`. The admin API sees a handful of requests per
//! second at most, so simplicity wins over throughput here.
//!
//! Owns: reading one request and writing one response. Must not: decide what a path does
//! (that is `routes`).

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Largest request head.
const MAX_HEAD: usize = 16 * 1024;
/// Largest request body (a posted config).
pub const MAX_BODY: usize = 4 * 1024 * 1024;
/// Longest time writing one response may take (a client that does not read cannot hold a
/// connection longer).
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// One parsed admin request.
#[derive(Debug)]
pub struct Request {
    /// Method token.
    pub method: String,
    /// Path without the query.
    pub path: String,
    /// The `Authorization` field, if any.
    pub authorization: Option<String>,
    /// The body.
    pub body: Vec<u8>,
}

/// One response.
#[derive(Debug)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Content type.
    pub content_type: &'static str,
    /// Extra header lines (`Name: value`).
    pub headers: Vec<String>,
    /// Body.
    pub body: Vec<u8>,
}

impl Response {
    /// A JSON response.
    pub fn json(status: u16, v: &serde_json::Value) -> Response {
        let mut body = v.to_string().into_bytes();
        body.push(b'\n');
        Response { status, content_type: "application/json", headers: Vec::new(), body }
    }

    /// A JSON error in the gateway's error shape.
    pub fn error(status: u16, code: &str, message: &str) -> Response {
        Response::json(
            status,
            &serde_json::json!({"error": {"status": status, "code": code, "message": message}}),
        )
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        422 => "Unprocessable Content",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        other => {
            http::StatusCode::from_u16(other).ok().and_then(|c| c.canonical_reason()).unwrap_or("Unknown")
        }
    }
}

/// Reads into `buf` before `deadline` (a timeout error once it has passed).
fn read_by(stream: &mut TcpStream, buf: &mut [u8], deadline: Instant) -> io::Result<usize> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        stream.set_read_timeout(Some(left))?;
        match stream.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

/// Reads one request, head and body, within `timeout` of the call; `Err(response)` for a
/// request that cannot be served.
pub fn read_request(stream: &mut TcpStream, timeout: Duration) -> Result<Request, Response> {
    let deadline = Instant::now() + timeout;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let head_len = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_HEAD {
            return Err(Response::error(431, "header_too_large", "request head too large"));
        }
        match read_by(stream, &mut chunk, deadline) {
            Ok(0) => return Err(Response::error(400, "bad_request", "connection closed mid-request")),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => return Err(Response::error(408, "request_timeout", "request not received in time")),
        }
    };
    let mut fields = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut fields);
    match req.parse(&buf[..head_len]) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return Err(Response::error(400, "bad_request", "malformed request")),
    }
    let method = req.method.unwrap_or_default().to_owned();
    let target = req.path.unwrap_or("/");
    let path = target.split('?').next().unwrap_or("/").to_owned();
    let field = |name: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).into_owned())
    };
    let authorization = field("authorization");
    if field("transfer-encoding").is_some() {
        return Err(Response::error(400, "bad_request", "send the body with Content-Length"));
    }
    let length: usize = match field("content-length") {
        None => 0,
        Some(v) => v.trim().parse().map_err(|_| Response::error(400, "bad_request", "bad Content-Length"))?,
    };
    if length > MAX_BODY {
        return Err(Response::error(413, "payload_too_large", "body larger than 4 MiB"));
    }
    let mut body = buf.split_off(head_len);
    if body.len() < length {
        let mut filled = body.len();
        body.resize(length, 0);
        while filled < length {
            match read_by(stream, &mut body[filled..], deadline) {
                Ok(0) => return Err(Response::error(400, "bad_request", "connection closed mid-body")),
                Ok(n) => filled += n,
                Err(_) => return Err(Response::error(408, "request_timeout", "body not received in time")),
            }
        }
    }
    body.truncate(length);
    Ok(Request { method, path, authorization, body })
}

/// Writes `resp` and closes.
pub fn write_response(stream: &mut TcpStream, resp: &Response) -> io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n",
        resp.status,
        reason(resp.status),
        resp.content_type,
        resp.body.len()
    )
    .into_bytes();
    for h in &resp.headers {
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&resp.body);
    let deadline = Instant::now() + WRITE_TIMEOUT;
    let mut rest = &out[..];
    while !rest.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        stream.set_write_timeout(Some(left))?;
        match stream.write(rest) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => rest = &rest[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::reason;

    #[test]
    fn every_status_has_its_own_reason_phrase() {
        assert_eq!(reason(431), "Request Header Fields Too Large");
        assert_eq!(reason(413), "Content Too Large");
        assert_eq!(reason(429), "Too Many Requests");
        assert_eq!(reason(500), "Internal Server Error");
        assert_eq!(reason(599), "Unknown");
    }
}
