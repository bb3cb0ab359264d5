//! Conversions between the `http` crate's heads (what h2 and h3 speak) and the pipeline's own
//! heads, shared by HTTP/2 and HTTP/3 so both get the same limits and the same field hygiene.
//!
//! Owns: those conversions. Must not: do I/O.

use bytes::Bytes;
use portcullis_core::LocalReply;
use portcullis_core::pipeline::{Headers, Method, RequestHead, ResponseHead, Version};

use crate::h1::path::normalize;

/// Connection-specific fields HTTP/2 and HTTP/3 forbid; never forwarded to such a client.
const HOP_BY_HOP: &[&str] =
    &["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te"];

fn is_hop_by_hop(name: &[u8]) -> bool {
    HOP_BY_HOP.iter().any(|h| h.as_bytes().eq_ignore_ascii_case(name))
}

/// Converts an `http` request head (HTTP/2 or HTTP/3) into the pipeline's; a local reply when
/// it breaks the limits.
pub fn request_head(
    parts: http::request::Parts,
    max_headers: usize,
    mut headers: Headers,
    version: Version,
) -> Result<RequestHead, LocalReply> {
    if parts.headers.len() > max_headers {
        return Err(LocalReply::header_too_large("too_many_headers", "too many header fields"));
    }
    let method = Method::from_bytes(parts.method.as_str().as_bytes(), || {
        Bytes::copy_from_slice(parts.method.as_str().as_bytes())
    });
    let path = normalize(Bytes::copy_from_slice(parts.uri.path().as_bytes()))
        .ok_or_else(|| LocalReply::bad_request("invalid request path"))?;
    let query = parts.uri.query().map(|q| Bytes::copy_from_slice(q.as_bytes()));
    let mut authority = parts.uri.authority().map(|a| Bytes::copy_from_slice(a.as_str().as_bytes()));
    for (name, value) in &parts.headers {
        if is_hop_by_hop(name.as_str().as_bytes()) {
            continue;
        }
        if name == http::header::HOST && authority.is_none() {
            authority = Some(Bytes::copy_from_slice(value.as_bytes()));
        }
        headers.append(
            Bytes::copy_from_slice(name.as_str().as_bytes()),
            Bytes::copy_from_slice(value.as_bytes()),
        );
    }
    Ok(RequestHead { method, path, query, version, authority, headers })
}

/// The `http` response head for a pipeline response head, without connection-specific fields.
pub fn response_of(head: &ResponseHead) -> http::Response<()> {
    let mut resp = http::Response::new(());
    *resp.status_mut() = http::StatusCode::from_u16(head.status).unwrap_or(http::StatusCode::BAD_GATEWAY);
    let map = resp.headers_mut();
    for h in head.headers.iter() {
        if is_hop_by_hop(&h.name) {
            continue;
        }
        let (Ok(name), Ok(value)) =
            (http::HeaderName::from_bytes(&h.name), http::HeaderValue::from_maybe_shared(h.value.clone()))
        else {
            tracing::debug!(name = ?h.name, "header not representable in HTTP/2 or HTTP/3; dropped");
            continue;
        };
        map.append(name, value);
    }
    resp
}
