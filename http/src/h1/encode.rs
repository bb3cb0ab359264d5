//! Serialising heads onto the wire: requests toward upstreams, responses and local replies
//! toward clients. Appends into caller-owned buffers that are reused across requests.
//!
//! Owns: the bytes of request lines, status lines and header blocks. Must not: decide framing
//! (callers pass it in) or do I/O.

use portcullis_core::LocalReply;
use portcullis_core::error::reason_phrase;
use portcullis_core::pipeline::{Headers, RequestHead, ResponseHead};

/// The framing a serialised message announces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// `Content-Length` is already among the headers (or there is no body): add nothing.
    AsIs,
    /// Add `Transfer-Encoding: chunked`.
    Chunked,
    /// Close-delimited: add nothing (the connection closes after the body).
    Close,
}

fn put_headers(out: &mut Vec<u8>, headers: &Headers) {
    for h in headers.iter() {
        out.extend_from_slice(&h.name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(&h.value);
        out.extend_from_slice(b"\r\n");
    }
}

/// Appends an HTTP/1.1 request head for the upstream.
pub fn encode_request(out: &mut Vec<u8>, head: &RequestHead, framing: Framing) {
    out.extend_from_slice(head.method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(&head.path);
    if let Some(q) = &head.query {
        out.push(b'?');
        out.extend_from_slice(q);
    }
    out.extend_from_slice(b" HTTP/1.1\r\n");
    put_headers(out, &head.headers);
    if head.authority.is_some() && !head.headers.contains("host") {
        out.extend_from_slice(b"host: ");
        out.extend_from_slice(head.authority.as_deref().unwrap_or_default());
        out.extend_from_slice(b"\r\n");
    }
    if framing == Framing::Chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// What the response tells the client about the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnHeader {
    /// Say nothing (HTTP/1.1 keep-alive default).
    None,
    /// `Connection: keep-alive` (HTTP/1.0 clients that asked for it).
    KeepAlive,
    /// `Connection: close`.
    Close,
}

/// Appends an HTTP/1.1 response head for the client.
pub fn encode_response(out: &mut Vec<u8>, head: &ResponseHead, framing: Framing, conn: ConnHeader) {
    out.extend_from_slice(b"HTTP/1.1 ");
    let mut code = itoa::Buffer::new();
    out.extend_from_slice(code.format(head.status).as_bytes());
    out.push(b' ');
    if head.reason.is_empty() {
        out.extend_from_slice(reason_phrase(head.status).as_bytes());
    } else {
        out.extend_from_slice(&head.reason);
    }
    out.extend_from_slice(b"\r\n");
    put_headers(out, &head.headers);
    if framing == Framing::Chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    match conn {
        ConnHeader::None => {}
        ConnHeader::KeepAlive => out.extend_from_slice(b"connection: keep-alive\r\n"),
        ConnHeader::Close => out.extend_from_slice(b"connection: close\r\n"),
    }
    out.extend_from_slice(b"\r\n");
}

/// Builds the response head of a local reply (JSON body, length set); the body is returned.
pub fn local_reply_head(reply: &LocalReply, request_id: &[u8]) -> (ResponseHead, Vec<u8>) {
    let mut head = ResponseHead::new(reply.status);
    // 204 (a CORS preflight answer) carries neither a body nor its framing headers (RFC 9110 6.4.1).
    if reply.status == 204 {
        for h in reply.headers.iter() {
            head.headers.append(h.name.clone(), h.value.clone());
        }
        return (head, Vec::new());
    }
    let body = reply.render_body(request_id);
    head.headers.append("content-type", "application/json");
    let mut len = itoa::Buffer::new();
    head.headers.append("content-length", bytes::Bytes::copy_from_slice(len.format(body.len()).as_bytes()));
    for h in reply.headers.iter() {
        head.headers.append(h.name.clone(), h.value.clone());
    }
    (head, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use portcullis_core::pipeline::{Method, Version};

    #[test]
    fn request_line_and_framing() {
        let mut headers = Headers::default();
        headers.append("Host", "example.com");
        let head = RequestHead {
            method: Method::Post,
            path: Bytes::from("/a"),
            query: Some(Bytes::from("x=1")),
            version: Version::Http11,
            authority: Some(Bytes::from("example.com")),
            headers,
        };
        let mut out = Vec::new();
        encode_request(&mut out, &head, Framing::Chunked);
        assert_eq!(out, b"POST /a?x=1 HTTP/1.1\r\nHost: example.com\r\ntransfer-encoding: chunked\r\n\r\n");
    }

    #[test]
    fn status_line_uses_upstream_reason() {
        let mut head = ResponseHead::new(418);
        head.reason = Bytes::from("Teapot");
        let mut out = Vec::new();
        encode_response(&mut out, &head, Framing::AsIs, ConnHeader::Close);
        assert_eq!(out, b"HTTP/1.1 418 Teapot\r\nconnection: close\r\n\r\n");
    }
}
