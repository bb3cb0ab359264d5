//! HTTP/1.1 request head parsing: httparse over the connection's read buffer, header names and
//! values handed out as `Bytes` slices of that buffer (no copy), plus the framing and safety
//! checks a gateway must make before it forwards anything (RFC 9112 sections 3, 6 and 11).
//!
//! Owns: turning bytes into a `ParsedRequest` or the right 4xx. Must not: do I/O.

use std::mem::MaybeUninit;

use bytes::{Bytes, BytesMut};
use portcullis_core::LocalReply;
use portcullis_core::pipeline::{Headers, Method, RequestHead, Version};

use super::headers::{ConnectionInfo, content_length, strip_hop_by_hop};

/// Most header fields httparse is ever given room for (the configured limit is lower or equal).
pub const MAX_HEADERS_CAP: usize = 512;

/// Head size and count limits for one listener.
#[derive(Clone, Copy, Debug)]
pub struct HeadLimits {
    /// Largest request head in bytes.
    pub max_header_bytes: usize,
    /// Most header fields.
    pub max_headers: usize,
}

pub use crate::body::ReqBody;

/// A parsed request head with what the connection needs to know about it.
#[derive(Debug)]
pub struct ParsedRequest {
    /// The head, as filters see it (hop-by-hop fields already removed).
    pub head: RequestHead,
    /// Body framing.
    pub body: ReqBody,
    /// Whether the client wants the connection kept open after this exchange.
    pub keep_alive: bool,
    /// The client sent `Expect: 100-continue`.
    pub expect_continue: bool,
    /// The `Upgrade` value of an HTTP/1.1 `GET` asking to switch to WebSocket (`Connection:
    /// upgrade`, `Upgrade: websocket`); `None` for every other request.
    pub upgrade: Option<Bytes>,
    /// The client sent `TE: trailers`: response trailers may be sent to it (chunked).
    pub te_trailers: bool,
}

/// True when the request line is `METHOD SP target SP HTTP/d.d`: httparse reports a bad version
/// both for a real HTTP/2.0 or HTTP/3.1 line (505) and for a malformed line such as a space in
/// the target (400), and only the line tells them apart.
fn well_formed_version_line(buf: &[u8]) -> bool {
    let line_end = buf.iter().position(|&b| b == b'\n').unwrap_or(buf.len());
    let line = buf[..line_end].strip_suffix(b"\r").unwrap_or(&buf[..line_end]);
    let mut parts = line.split(|&b| b == b' ');
    let (Some(_), Some(_), Some(v), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    matches!(v, [b'H', b'T', b'T', b'P', b'/', a, b'.', b] if a.is_ascii_digit() && b.is_ascii_digit())
}

fn reply_for(err: httparse::Error, buf: &[u8]) -> LocalReply {
    match err {
        httparse::Error::Version if !well_formed_version_line(buf) => {
            LocalReply::bad_request("malformed request line")
        }
        httparse::Error::TooManyHeaders => {
            LocalReply::header_too_large("too_many_headers", "too many header fields")
        }
        httparse::Error::HeaderName => LocalReply::bad_request("invalid header name"),
        httparse::Error::HeaderValue => LocalReply::bad_request("invalid header value"),
        httparse::Error::NewLine => LocalReply::bad_request("invalid line ending (bare CR or LF)"),
        httparse::Error::Version => LocalReply::new(
            505,
            "http_version_not_supported",
            "only HTTP/1.0 and HTTP/1.1 are accepted here",
            portcullis_core::Source::Downstream,
        )
        .closing(),
        httparse::Error::Token => LocalReply::bad_request("invalid method token"),
        httparse::Error::Status => LocalReply::bad_request("invalid status"),
    }
}

/// Offsets of a slice inside the buffer it was parsed from.
fn range_in(base: *const u8, s: &[u8]) -> std::ops::Range<usize> {
    let start = s.as_ptr() as usize - base as usize;
    start..start + s.len()
}

/// Tries to parse one request head at the front of `buf`.
///
/// `Ok(None)`: the head is incomplete and still within limits (read more). On success the head's
/// bytes are split off `buf` (the body, or the next pipelined request, stays in `buf`).
pub fn parse_request(
    buf: &mut BytesMut,
    limits: HeadLimits,
    spare: Headers,
) -> Result<Option<ParsedRequest>, LocalReply> {
    let max_headers = limits.max_headers.min(MAX_HEADERS_CAP);
    let mut slots: [MaybeUninit<httparse::Header<'_>>; MAX_HEADERS_CAP] =
        [const { MaybeUninit::uninit() }; MAX_HEADERS_CAP];
    let mut req = httparse::Request::new(&mut []);
    let base = buf.as_ptr();
    let status = req.parse_with_uninit_headers(buf, &mut slots[..max_headers]);
    let head_len = match status {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if buf.len() >= limits.max_header_bytes {
                return Err(LocalReply::header_too_large(
                    "request_header_too_large",
                    "request head too large",
                ));
            }
            return Ok(None);
        }
        Err(e) => return Err(reply_for(e, buf)),
    };
    if head_len > limits.max_header_bytes {
        return Err(LocalReply::header_too_large("request_header_too_large", "request head too large"));
    }
    let version = match req.version {
        Some(0) => Version::Http10,
        _ => Version::Http11,
    };
    let method_str = req.method.unwrap_or("");
    let method_range = range_in(base, method_str.as_bytes());
    let target_range = range_in(base, req.path.unwrap_or("").as_bytes());
    // Header offsets are recorded on the stack before the buffer is split (the parser borrows
    // it); afterwards every name and value becomes a slice of the frozen head: no copy.
    let mut offsets = [[0u32; 4]; MAX_HEADERS_CAP];
    let count = req.headers.len();
    for (slot, h) in offsets.iter_mut().zip(req.headers.iter()) {
        let n = range_in(base, h.name.as_bytes());
        let v = range_in(base, h.value);
        // Heads are bounded by max_header_bytes (<= 1 MiB), so offsets fit in u32.
        *slot = [n.start as u32, n.end as u32, v.start as u32, v.end as u32];
    }
    let raw = buf.split_to(head_len).freeze();
    let method = Method::from_bytes(&raw[method_range.clone()], || raw.slice(method_range.clone()));
    let mut headers = spare;
    headers.clear();
    for o in &offsets[..count] {
        headers.append(raw.slice(o[0] as usize..o[1] as usize), raw.slice(o[2] as usize..o[3] as usize));
    }
    let target = raw.slice(target_range);
    finish(method, target, version, headers)
}

/// Validates the parsed pieces and builds the request (framing, Host, target form, Connection).
fn finish(
    method: Method,
    target: Bytes,
    version: Version,
    mut headers: Headers,
) -> Result<Option<ParsedRequest>, LocalReply> {
    // Framing (RFC 9112 6.1-6.3): Transfer-Encoding wins but together with Content-Length it is a
    // smuggling vector, so both together are refused outright.
    let te_count = headers.get_all("transfer-encoding").count();
    let body = if te_count > 0 {
        if headers.contains("content-length") {
            return Err(LocalReply::bad_request("both Transfer-Encoding and Content-Length present"));
        }
        if version == Version::Http10 {
            return Err(LocalReply::bad_request("Transfer-Encoding in an HTTP/1.0 request"));
        }
        let mut codings = headers
            .get_all("transfer-encoding")
            .flat_map(|v| v.split(|&c| c == b','))
            .map(|t| t.trim_ascii())
            .filter(|t| !t.is_empty());
        let first = codings.next();
        let more = codings.next().is_some();
        match first {
            Some(t) if t.eq_ignore_ascii_case(b"chunked") && !more => ReqBody::Streamed,
            Some(_) if more => {
                return Err(LocalReply::not_implemented("only the chunked transfer coding is supported"));
            }
            _ => return Err(LocalReply::not_implemented("only the chunked transfer coding is supported")),
        }
    } else {
        match content_length(&headers) {
            Ok(None) | Ok(Some(0)) => ReqBody::None,
            Ok(Some(n)) => ReqBody::Length(n),
            Err(msg) => return Err(LocalReply::bad_request(msg)),
        }
    };
    if body == ReqBody::None && headers.contains("content-length") {
        // `Content-Length: 0`: keep one canonical field.
        headers.set("content-length", Bytes::from_static(b"0"));
    } else if let ReqBody::Length(_) = body
        && headers.get_all("content-length").count() > 1
    {
        // Identical duplicates were accepted above; forward only one.
        if let Some(v) = headers.get("content-length").cloned() {
            headers.set("content-length", v);
        }
    }

    // Request target (RFC 9112 3.2).
    let (path_raw, authority_from_target) = if target.first() == Some(&b'/') {
        (target, None)
    } else if target.as_ref() == b"*" {
        if method != Method::Options {
            return Err(LocalReply::bad_request("asterisk-form target is only valid with OPTIONS"));
        }
        (target, None)
    } else if method == Method::Connect {
        return Err(LocalReply::not_implemented("CONNECT is not supported"));
    } else if let Some(rest) = strip_scheme(&target) {
        let start = target.len() - rest.len();
        let end =
            rest.iter().position(|&c| c == b'/' || c == b'?').map(|p| start + p).unwrap_or(target.len());
        if end == start {
            return Err(LocalReply::bad_request("absolute-form target without a host"));
        }
        let authority = target.slice(start..end);
        let path = if end == target.len() {
            Bytes::from_static(b"/")
        } else if target[end] == b'?' {
            let mut p = Vec::with_capacity(target.len() - end + 1);
            p.push(b'/');
            p.extend_from_slice(&target[end..]);
            Bytes::from(p)
        } else {
            target.slice(end..)
        };
        (path, Some(authority))
    } else {
        return Err(LocalReply::bad_request("invalid request target"));
    };
    let (path, query) = match memchr::memchr(b'?', &path_raw) {
        Some(q) => (path_raw.slice(..q), Some(path_raw.slice(q + 1..))),
        None => (path_raw, None),
    };
    let path =
        super::path::normalize(path).ok_or_else(|| LocalReply::bad_request("path escapes the root"))?;

    // Host (RFC 9112 3.2): exactly one in HTTP/1.1; an absolute-form target overrides it.
    let host_count = headers.get_all("host").count();
    if host_count > 1 {
        return Err(LocalReply::bad_request("more than one Host header"));
    }
    let authority = match authority_from_target {
        Some(a) => {
            headers.set("host", a.clone());
            Some(a)
        }
        None => match headers.get("host") {
            Some(h) if !h.is_empty() => {
                if !valid_authority(h) {
                    return Err(LocalReply::bad_request("invalid Host header"));
                }
                Some(h.clone())
            }
            Some(_) | None if version == Version::Http11 => {
                return Err(LocalReply::bad_request("missing Host header"));
            }
            _ => None,
        },
    };

    let conn = ConnectionInfo::from_headers(&headers);
    let keep_alive = match version {
        Version::Http10 => conn.keep_alive && !conn.close,
        _ => !conn.close,
    };
    let expect_continue = match headers.get("expect") {
        None => false,
        Some(v) if v.eq_ignore_ascii_case(b"100-continue") => true,
        Some(_) => {
            return Err(LocalReply::new(
                417,
                "expectation_failed",
                "only Expect: 100-continue is supported",
                portcullis_core::Source::Downstream,
            )
            .closing());
        }
    };
    headers.remove("expect");
    let upgrade = if conn.upgrade && version == Version::Http11 && method == Method::Get {
        headers.get("upgrade").filter(|v| is_websocket(v)).cloned()
    } else {
        None
    };
    let te_trailers = strip_hop_by_hop(&mut headers, &conn);

    Ok(Some(ParsedRequest {
        head: RequestHead { method, path, query, version, authority, headers },
        body,
        keep_alive,
        expect_continue,
        upgrade,
        te_trailers,
    }))
}

/// Whether an `Upgrade` value names the WebSocket protocol (a comma list is allowed).
fn is_websocket(v: &[u8]) -> bool {
    v.split(|&c| c == b',').any(|t| t.trim_ascii().eq_ignore_ascii_case(b"websocket"))
}

fn strip_scheme(target: &[u8]) -> Option<&[u8]> {
    let lower_starts = |p: &[u8]| target.len() >= p.len() && target[..p.len()].eq_ignore_ascii_case(p);
    if lower_starts(b"http://") {
        Some(&target[7..])
    } else if lower_starts(b"https://") {
        Some(&target[8..])
    } else {
        None
    }
}

/// A Host value: reg-name / IPv4 / [IPv6], optional port; no userinfo, no path.
fn valid_authority(h: &[u8]) -> bool {
    h.iter()
        .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_' | b':' | b'[' | b']' | b'~'))
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
