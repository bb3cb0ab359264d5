//! A tiny blocking HTTP/1.1 server for the admin API: one request per connection, bounded
//! head and body, timeouts, `Connection: close`. The admin API sees a handful of requests per
//! second at most, so simplicity wins over throughput here.
//!
//! Owns: reading one request and writing one response. Must not: decide what a path does
//! (that is `routes`).

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Largest request head.
const MAX_HEAD: usize = 16 * 1024;
/// Largest request body (a posted config).
pub const MAX_BODY: usize = 4 * 1024 * 1024;
/// Per-read and per-write timeout.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

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
        422 => "Unprocessable Content",
        503 => "Service Unavailable",
        _ => "Internal Server Error",
    }
}

/// Reads one request; `Err(response)` for a request that cannot be served.
pub fn read_request(stream: &mut TcpStream) -> Result<Request, Response> {
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let head_len = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_HEAD {
            return Err(Response::error(431, "header_too_large", "request head too large"));
        }
        match stream.read(&mut chunk) {
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
        let start = body.len();
        body.resize(length, 0);
        if stream.read_exact(&mut body[start..]).is_err() {
            return Err(Response::error(408, "request_timeout", "body not received in time"));
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
    stream.write_all(&out)?;
    stream.flush()
}
