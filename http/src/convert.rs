//! Conversions between the `http` crate's heads (what h2 and h3 speak) and the pipeline's own
//! heads, shared by HTTP/2 and HTTP/3 so both get the same limits and the same field hygiene,
//! in both directions (clients, and HTTP/2 upstreams).
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

/// The `http` request head toward an HTTP/2 upstream. `:authority` follows the HTTP/1.1 rules
/// (the `Host` field, else the request's own authority, else the endpoint `fallback`);
/// connection-specific fields and `Host` are left out, and `te: trailers` is sent when the client
/// accepts trailers (gRPC servers look for it).
pub fn request_of(
    head: &RequestHead,
    scheme: http::uri::Scheme,
    fallback: std::net::SocketAddr,
    te_trailers: bool,
) -> Result<http::Request<()>, LocalReply> {
    let bad = |what: &str| LocalReply::bad_request(format!("{what} cannot be sent over HTTP/2"));
    let authority = match head.headers.get("host").or(head.authority.as_ref()) {
        Some(a) => http::uri::Authority::from_maybe_shared(a.clone()).map_err(|_| bad("the host"))?,
        None => http::uri::Authority::try_from(fallback.to_string()).map_err(|_| bad("the host"))?,
    };
    let path_and_query = match &head.query {
        None => http::uri::PathAndQuery::from_maybe_shared(head.path.clone()),
        Some(q) => {
            let mut pq = Vec::with_capacity(head.path.len() + 1 + q.len());
            pq.extend_from_slice(&head.path);
            pq.push(b'?');
            pq.extend_from_slice(q);
            http::uri::PathAndQuery::from_maybe_shared(Bytes::from(pq))
        }
    }
    .map_err(|_| bad("the path"))?;
    let uri = http::Uri::builder()
        .scheme(scheme)
        .authority(authority)
        .path_and_query(path_and_query)
        .build()
        .map_err(|_| bad("the target"))?;
    let method = http::Method::from_bytes(head.method.as_bytes()).map_err(|_| bad("the method"))?;
    let mut req = http::Request::new(());
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    *req.version_mut() = http::Version::HTTP_2;
    let map = req.headers_mut();
    for h in head.headers.iter() {
        if is_hop_by_hop(&h.name) || h.name.eq_ignore_ascii_case(b"host") {
            continue;
        }
        let (Ok(name), Ok(value)) =
            (http::HeaderName::from_bytes(&h.name), http::HeaderValue::from_maybe_shared(h.value.clone()))
        else {
            return Err(bad("a header field"));
        };
        map.append(name, value);
    }
    if te_trailers {
        map.insert(http::header::TE, http::HeaderValue::from_static("trailers"));
    }
    Ok(req)
}

/// The pipeline's response head for an `http` response head (from an HTTP/2 upstream), without
/// connection-specific fields; `headers` is a reusable (cleared) list.
pub fn response_head(parts: &http::response::Parts, mut headers: Headers) -> ResponseHead {
    headers.clear();
    for (name, value) in &parts.headers {
        if is_hop_by_hop(name.as_str().as_bytes()) {
            continue;
        }
        headers.append(
            Bytes::copy_from_slice(name.as_str().as_bytes()),
            Bytes::copy_from_slice(value.as_bytes()),
        );
    }
    ResponseHead { status: parts.status.as_u16(), reason: Bytes::new(), headers }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_of_takes_host_as_authority_and_drops_connection_fields() {
        let mut headers = Headers::default();
        headers.append("Host", "api.example:8080");
        headers.append("Connection", "close");
        headers.append("X-Kept", "1");
        let head = RequestHead {
            method: Method::Post,
            path: Bytes::from_static(b"/svc/Call"),
            query: Some(Bytes::from_static(b"a=1")),
            version: Version::Http11,
            authority: None,
            headers,
        };
        let fallback = "127.0.0.1:9".parse().expect("addr");
        let req = request_of(&head, http::uri::Scheme::HTTP, fallback, true).expect("converts");
        assert_eq!(req.uri().to_string(), "http://api.example:8080/svc/Call?a=1");
        assert_eq!(req.method(), http::Method::POST);
        assert!(req.headers().get("connection").is_none() && req.headers().get("host").is_none());
        assert_eq!(req.headers()["x-kept"], "1");
        assert_eq!(req.headers()["te"], "trailers");
        let bare = RequestHead { authority: None, headers: Headers::default(), query: None, ..head };
        let req = request_of(&bare, http::uri::Scheme::HTTPS, fallback, false).expect("converts");
        assert_eq!(req.uri().to_string(), "https://127.0.0.1:9/svc/Call");
        assert!(req.headers().get("te").is_none());
    }

    #[test]
    fn response_head_drops_connection_fields() {
        let resp = http::Response::builder()
            .status(201)
            .header("content-type", "application/grpc")
            .header("connection", "keep-alive")
            .body(())
            .expect("response");
        let (parts, ()) = resp.into_parts();
        let head = response_head(&parts, Headers::default());
        assert_eq!(head.status, 201);
        assert_eq!(head.headers.get("content-type").map(|v| &v[..]), Some(&b"application/grpc"[..]));
        assert!(!head.headers.contains("connection"));
    }
}
