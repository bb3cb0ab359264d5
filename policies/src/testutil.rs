//! Test helpers: a tiny executor and builders for heads and contexts.
//!
//! Owns: test-only scaffolding. Must not: be compiled outside `cfg(test)`.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use portcullis_core::pipeline::{Cx, Headers, Method, RequestHead, ResponseHead, Version};

/// Drives a future that never actually pends (every filter here is synchronous inside).
pub(crate) fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..1000 {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
    }
    panic!("future kept pending: the test executor only drives futures that make progress when polled");
}

/// A GET request for `path` with `authority` and the given header fields.
pub(crate) fn request(path: &str, authority: Option<&str>, headers: &[(&str, &str)]) -> RequestHead {
    let mut h = Headers::with_capacity(headers.len() + 4);
    for (n, v) in headers {
        h.append(Bytes::copy_from_slice(n.as_bytes()), Bytes::copy_from_slice(v.as_bytes()));
    }
    RequestHead {
        method: Method::Get,
        path: Bytes::copy_from_slice(path.as_bytes()),
        query: None,
        version: Version::Http11,
        authority: authority.map(|a| Bytes::copy_from_slice(a.as_bytes())),
        headers: h,
    }
}

/// A fresh context for a plain-text HTTP/1.1 request from `peer` (`"ip:port"`).
pub(crate) fn cx(peer: &str) -> Cx {
    let addr: SocketAddr = peer.parse().expect("test peer address");
    Cx::new(addr, false, Version::Http11)
}

/// A 200 response head with no fields.
pub(crate) fn response() -> ResponseHead {
    ResponseHead::new(200)
}

/// Every value of `name` in `headers`, as strings.
pub(crate) fn values(headers: &Headers, name: &str) -> Vec<String> {
    headers.get_all(name).map(|v| String::from_utf8_lossy(v).into_owned()).collect()
}

/// A request and its context after a filter ran.
pub(crate) type Req = (RequestHead, Cx);
