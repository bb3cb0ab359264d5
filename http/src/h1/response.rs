//! HTTP/1.1 response head parsing for upstream responses, and the body framing rules of
//! RFC 9112 section 6.3.
//!
//! Owns: turning upstream bytes into a `ParsedResponse`. Must not: do I/O.

use std::mem::MaybeUninit;

use bytes::BytesMut;
use portcullis_core::pipeline::{Headers, ResponseHead};

use super::headers::{ConnectionInfo, content_length, strip_hop_by_hop};
use super::request::MAX_HEADERS_CAP;

/// How a response body is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RespBody {
    /// No body (HEAD, 1xx, 204, 304).
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Until the upstream closes the connection.
    UntilClose,
}

/// A parsed upstream response head.
#[derive(Debug)]
pub struct ParsedResponse {
    /// Status, reason and end-to-end headers (hop-by-hop removed, `Content-Length` kept).
    pub head: ResponseHead,
    /// Body framing.
    pub body: RespBody,
    /// The upstream connection may be reused after this response.
    pub reusable: bool,
}

/// Why an upstream response head was refused.
#[derive(Debug, thiserror::Error)]
pub enum ResponseError {
    /// Not a valid HTTP/1.x response head.
    #[error("malformed response head: {0}")]
    Malformed(&'static str),
    /// The head exceeds the size limit.
    #[error("response head too large")]
    TooLarge,
}

/// Tries to parse one response head at the front of `buf`; `Ok(None)` means read more.
/// `head_request` tells whether the request was HEAD (its response has no body).
pub fn parse_response(
    buf: &mut BytesMut,
    max_bytes: usize,
    head_request: bool,
) -> Result<Option<ParsedResponse>, ResponseError> {
    let mut slots: [MaybeUninit<httparse::Header<'_>>; MAX_HEADERS_CAP] =
        [const { MaybeUninit::uninit() }; MAX_HEADERS_CAP];
    let mut resp = httparse::Response::new(&mut []);
    let base = buf.as_ptr() as usize;
    let n = match httparse::ParserConfig::default()
        .allow_obsolete_multiline_headers_in_responses(false)
        .parse_response_with_uninit_headers(&mut resp, buf, &mut slots)
    {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return if buf.len() >= max_bytes { Err(ResponseError::TooLarge) } else { Ok(None) };
        }
        Err(httparse::Error::TooManyHeaders) => return Err(ResponseError::TooLarge),
        Err(_) => return Err(ResponseError::Malformed("invalid syntax")),
    };
    if n > max_bytes {
        return Err(ResponseError::TooLarge);
    }
    let status = resp.code.unwrap_or(0);
    let http10 = resp.version == Some(0);
    let reason = resp.reason.unwrap_or("");
    // httparse hands out a static "" (not a slice of `buf`) when the reason phrase is missing.
    let reason_range =
        if reason.is_empty() { (0, 0) } else { (reason.as_ptr() as usize - base, reason.len()) };
    let mut offsets = [[0u32; 4]; MAX_HEADERS_CAP];
    let count = resp.headers.len();
    for (slot, h) in offsets.iter_mut().zip(resp.headers.iter()) {
        let ns = h.name.as_ptr() as usize - base;
        let vs = h.value.as_ptr() as usize - base;
        *slot = [ns as u32, (ns + h.name.len()) as u32, vs as u32, (vs + h.value.len()) as u32];
    }
    let raw = buf.split_to(n).freeze();
    let mut headers = Headers::with_capacity(count + 2);
    for o in &offsets[..count] {
        headers.append(raw.slice(o[0] as usize..o[1] as usize), raw.slice(o[2] as usize..o[3] as usize));
    }
    let reason = raw.slice(reason_range.0..reason_range.0 + reason_range.1);

    let conn = ConnectionInfo::from_headers(&headers);
    let te_chunked = {
        let mut last = None;
        for v in headers.get_all("transfer-encoding") {
            for t in v.split(|&c| c == b',').map(|t| t.trim_ascii()).filter(|t| !t.is_empty()) {
                last = Some(t.eq_ignore_ascii_case(b"chunked"));
            }
        }
        last
    };
    let mut reusable = !conn.close && (!http10 || conn.keep_alive);
    let body = if head_request || (100..200).contains(&status) || status == 204 || status == 304 {
        RespBody::None
    } else {
        match te_chunked {
            Some(true) => {
                if headers.remove("content-length") > 0 {
                    // Both framings: TE wins, but the connection is no longer trustworthy.
                    reusable = false;
                }
                RespBody::Chunked
            }
            Some(false) => {
                headers.remove("content-length");
                reusable = false;
                RespBody::UntilClose
            }
            None => match content_length(&headers) {
                Ok(Some(n)) => RespBody::Length(n),
                Ok(None) => {
                    reusable = false;
                    RespBody::UntilClose
                }
                Err(_) => return Err(ResponseError::Malformed("invalid Content-Length")),
            },
        }
    };
    if let RespBody::Length(n) = body
        && headers.get_all("content-length").count() > 1
    {
        headers.set("content-length", n.to_string());
    }
    strip_hop_by_hop(&mut headers, &conn);
    Ok(Some(ParsedResponse { head: ResponseHead { status, reason, headers }, body, reusable }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str, head: bool) -> ParsedResponse {
        let mut b = BytesMut::from(s);
        parse_response(&mut b, 8192, head).expect("ok").expect("complete")
    }

    #[test]
    fn framing_rules() {
        assert_eq!(parse("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", false).body, RespBody::Length(5));
        assert_eq!(parse("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true).body, RespBody::None);
        assert_eq!(parse("HTTP/1.1 204 No Content\r\n\r\n", false).body, RespBody::None);
        assert_eq!(
            parse("HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n", false).body,
            RespBody::None
        );
        let r = parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false);
        assert_eq!(r.body, RespBody::Chunked);
        assert!(r.reusable);
        assert!(r.head.headers.get("transfer-encoding").is_none());
        let r = parse("HTTP/1.1 200 OK\r\n\r\n", false);
        assert_eq!(r.body, RespBody::UntilClose);
        assert!(!r.reusable);
        let r = parse("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", false);
        assert!(!r.reusable);
        let r = parse("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n", false);
        assert!(!r.reusable);
        assert!(r.head.headers.get("connection").is_none());
    }

    #[test]
    fn keeps_reason_and_header_case() {
        let r = parse("HTTP/1.1 418 I'm a teapot\r\nX-Custom-Case: V\r\nContent-Length: 0\r\n\r\n", false);
        assert_eq!(r.head.status, 418);
        assert_eq!(&r.head.reason[..], b"I'm a teapot");
        assert_eq!(&r.head.headers.iter().next().expect("one").name[..], b"X-Custom-Case");
    }

    #[test]
    fn a_missing_reason_phrase_is_an_empty_reason() {
        // Found with the h1_response fuzz target: the offset of httparse's static "" underflowed
        // (a panic, so a process abort in release builds, on any upstream reply without a reason).
        for text in ["HTTP/1.1 204\r\n\r\n", "HTTP/1.1 200\nContent-Length: 0\n\n"] {
            let r = parse(text, false);
            assert!(r.head.reason.is_empty(), "{text:?}");
            assert!(r.head.status == 204 || r.head.status == 200);
        }
    }

    #[test]
    fn rejects_bad_length_and_partial() {
        let mut b = BytesMut::from("HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n");
        assert!(parse_response(&mut b, 8192, false).is_err());
        let mut b = BytesMut::from("HTTP/1.1 200 OK\r\nContent-Le");
        assert!(parse_response(&mut b, 8192, false).expect("partial ok").is_none());
        let mut b = BytesMut::from("HTTP/1.1 200 OK\r\nContent-Le");
        assert!(parse_response(&mut b, 10, false).is_err());
    }
}
