//! The one shape of every gateway-made response (local reply) and its JSON rendering.
//!
//! Owns: status/code/message of errors the gateway itself answers with, where they came from,
//! and the single function that renders them. Must not: know any codec or filter.

use std::borrow::Cow;

use bytes::Bytes;
use serde::Serialize;

use crate::pipeline::Headers;

/// Where an error originated (for logs, metrics and retry decisions).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The client sent something wrong or too slowly.
    Downstream,
    /// The upstream failed, refused, or was too slow.
    Upstream,
    /// A filter decided (auth, rate limit, route).
    Policy,
    /// A bug or an exhausted internal resource.
    Internal,
}

/// A response the gateway generates itself instead of forwarding one.
#[derive(Clone, Debug)]
pub struct LocalReply {
    /// HTTP status.
    pub status: u16,
    /// Stable machine-readable code, e.g. `route_not_found`.
    pub code: &'static str,
    /// Human-readable detail (never echoes secrets).
    pub message: Cow<'static, str>,
    /// Extra headers for the reply (e.g. `Retry-After`, `WWW-Authenticate`).
    pub headers: Headers,
    /// Where it came from.
    pub source: Source,
    /// Close the client connection after replying (framing errors, smuggling attempts).
    pub close: bool,
}

impl LocalReply {
    /// A reply with the given status, code and message.
    pub fn new(
        status: u16,
        code: &'static str,
        message: impl Into<Cow<'static, str>>,
        source: Source,
    ) -> Self {
        LocalReply {
            status,
            code,
            message: message.into(),
            headers: Headers::default(),
            source,
            close: false,
        }
    }

    /// Marks the reply as closing the client connection.
    pub fn closing(mut self) -> Self {
        self.close = true;
        self
    }

    /// Adds a header to the reply.
    pub fn with_header(mut self, name: &'static str, value: impl Into<Bytes>) -> Self {
        self.headers.append(name, value);
        self
    }

    /// 400: malformed request; always closes (framing can no longer be trusted).
    pub fn bad_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(400, "bad_request", message, Source::Downstream).closing()
    }

    /// 404: no route matched.
    pub fn route_not_found() -> Self {
        Self::new(404, "route_not_found", "no route matches this request", Source::Policy)
    }

    /// 408: the request head did not arrive in time.
    pub fn request_timeout() -> Self {
        Self::new(408, "request_timeout", "request head not received in time", Source::Downstream).closing()
    }

    /// 413: the body exceeds the route's limit.
    pub fn payload_too_large(limit: u64) -> Self {
        Self::new(413, "payload_too_large", format!("request body exceeds {limit} bytes"), Source::Downstream)
            .closing()
    }

    /// 431: the head is too large or has too many fields.
    pub fn header_too_large(code: &'static str, message: &'static str) -> Self {
        Self::new(431, code, message, Source::Downstream).closing()
    }

    /// 501: a transfer coding we do not implement.
    pub fn not_implemented(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(501, "not_implemented", message, Source::Downstream).closing()
    }

    /// 502: the upstream could not be reached or broke the exchange.
    pub fn bad_gateway(code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(502, code, message, Source::Upstream)
    }

    /// 503: nothing to send the request to.
    pub fn unavailable(code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(503, code, message, Source::Upstream)
    }

    /// 504: the upstream did not answer in time.
    pub fn gateway_timeout(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(504, "upstream_timeout", message, Source::Upstream)
    }

    /// 500: an internal failure.
    pub fn internal(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(500, "internal_error", message, Source::Internal)
    }

    /// Renders the JSON body: `{"error":{"status":..,"code":..,"message":..,"request_id":..}}`.
    pub fn render_body(&self, request_id: &[u8]) -> Vec<u8> {
        #[derive(Serialize)]
        struct Inner<'a> {
            status: u16,
            code: &'a str,
            message: &'a str,
            request_id: Cow<'a, str>,
        }
        #[derive(Serialize)]
        struct Outer<'a> {
            error: Inner<'a>,
        }
        let body = Outer {
            error: Inner {
                status: self.status,
                code: self.code,
                message: &self.message,
                request_id: String::from_utf8_lossy(request_id),
            },
        };
        let mut out = Vec::with_capacity(128);
        // Serialising plain strings and integers into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut out, &body);
        out
    }
}

/// Standard reason phrase for a status code (used for generated responses).
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        425 => "Too Early",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_escaped_json() {
        let r = LocalReply::new(404, "route_not_found", "no \"route\"", Source::Policy);
        let body = r.render_body(b"abc");
        let v: serde_json::Value = serde_json::from_slice(&body).expect("valid json");
        assert_eq!(v["error"]["status"], 404);
        assert_eq!(v["error"]["code"], "route_not_found");
        assert_eq!(v["error"]["message"], "no \"route\"");
        assert_eq!(v["error"]["request_id"], "abc");
    }
}
