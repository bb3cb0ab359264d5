//! The client side of one exchange, as the engine sees it: where the request body comes from
//! and how a response (proxied or local) goes back. HTTP/1.1 (`h1::down`), HTTP/2 (`h2::stream`)
//! and HTTP/3 (quic) each implement it; the engine is written once against this trait, which
//! names no protocol's types: each implementation owns its buffers.
//!
//! Owns: the `Downstream` contract (and `DetachedBody`, `UpSource`, `UpBody`, `Sent`). Must not:
//! frame any protocol, route, run filters or talk to upstreams.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent, Split};
use portcullis_core::pipeline::ResponseHead;

use crate::body::{BodyIn, BodyOut, RelayError, RelayLimits, ReqBody};
use crate::h1::response::RespBody;
use crate::upstream::UpStream;

/// Where a proxied response body comes from: a byte stream that may end with trailers (an
/// HTTP/2 upstream's stream does; an HTTP/1.1 connection's chunked trailers travel in its bytes).
pub trait UpSource: AsyncReadRent {
    /// The trailers that followed the body, once it was read to its end; `None` when there are
    /// none (or the client did not ask for them).
    fn take_trailers(&mut self) -> Option<http::HeaderMap> {
        None
    }
}

impl UpSource for UpStream {}

/// The response body still to come from the upstream connection.
pub struct UpBody<'a, R> {
    /// The upstream stream.
    pub stream: &'a mut R,
    /// Bytes already read from it (the body's start).
    pub buf: &'a mut BytesMut,
    /// Framing of the body on the upstream side.
    pub kind: RespBody,
}

/// Outcome of sending a proxied response.
pub struct Sent {
    /// Body bytes delivered to the client.
    pub bytes: u64,
    /// Whether the client connection stays open.
    pub keep: bool,
    /// When the head was handed to the client while the body went on after it (`None`: the
    /// head went out with the whole response), for the gateway's added time.
    pub head_at: Option<std::time::Instant>,
}

/// A request body the client side hands over whole, so the engine relays it on its own task
/// while the response flows back (bidirectional streaming: gRPC).
#[allow(async_fn_in_trait)]
pub trait DetachedBody: 'static {
    /// Relays the body (of `declared` length when the client declared one) to `up` within
    /// `limits`, then waits for its end (no longer than `limits.idle`); returns its length and
    /// the trailers that ended it.
    async fn relay_to<W: AsyncWriteRent>(
        self,
        up: &mut W,
        declared: Option<u64>,
        limits: RelayLimits,
    ) -> Result<(u64, Option<http::HeaderMap>), RelayError>;
}

/// The body type of a client side that never detaches its request body.
pub enum NoDetach {}

impl DetachedBody for NoDetach {
    async fn relay_to<W: AsyncWriteRent>(
        self,
        _up: &mut W,
        _declared: Option<u64>,
        _limits: RelayLimits,
    ) -> Result<(u64, Option<http::HeaderMap>), RelayError> {
        match self {}
    }
}

/// The client side of an exchange.
#[allow(async_fn_in_trait)]
pub trait Downstream {
    /// The request body as `detach_body` hands it over.
    type Detached: DetachedBody;

    /// The request body when it is already complete (sent with the head in one write, and the
    /// request can be retried on a fresh upstream connection). `ReqBody::None` gives an empty one.
    fn buffered_body(&mut self, body: ReqBody) -> Option<Bytes>;

    /// Streams the request body to the upstream, re-framed as `out`; returns its length.
    async fn relay_body<W: AsyncWriteRent>(
        &mut self,
        body: ReqBody,
        expect_continue: bool,
        up: &mut W,
        out: BodyOut,
        limits: RelayLimits,
    ) -> Result<u64, RelayError>;

    /// Sends a proxied response head and relays its body. `Err` = the client is gone or the
    /// upstream broke mid-body: the connection must close.
    async fn send_response<R: UpSource>(
        &mut self,
        head: &ResponseHead,
        body: UpBody<'_, R>,
        keep: bool,
        limits: RelayLimits,
    ) -> Result<Sent, RelayError>;

    /// The request's trailers, once its body was relayed to the end (HTTP/2 clients may send
    /// them; the others never do).
    async fn request_trailers(&mut self) -> Option<http::HeaderMap> {
        None
    }

    /// Hands over the request body, when this client side can (HTTP/2), so the engine relays
    /// it on its own task while the response flows back. Afterwards `relay_body` and
    /// `request_trailers` have nothing left to read.
    fn detach_body(&mut self) -> Option<Self::Detached> {
        None
    }

    /// Answers `101 Switching Protocols` with `head`, then relays bytes both ways between the
    /// client and `up` (whose bytes already read are in `up_buf`) until either side closes or
    /// nothing moves for `idle`. Returns the bytes moved (client to upstream, upstream to client).
    /// Only HTTP/1.1 connections can switch protocols; others refuse.
    async fn tunnel<U: AsyncReadRent + AsyncWriteRent + Split>(
        &mut self,
        _head: &ResponseHead,
        _up: &mut U,
        _up_buf: &mut BytesMut,
        _idle: Duration,
    ) -> Result<(u64, u64), RelayError> {
        Err(RelayError::Dest(crate::io::IoFail::Eof))
    }

    /// Sends a complete locally made response; returns whether it was written.
    async fn send_local(&mut self, head: &ResponseHead, body: &[u8], keep: bool, idle: Duration) -> bool;
}

/// How a framed-by-end-of-stream client (HTTP/2, HTTP/3) reads an upstream response body:
/// `None` when there is no body to relay.
pub fn stream_body_in(kind: RespBody) -> Option<BodyIn> {
    match kind {
        RespBody::None | RespBody::Length(0) => None,
        RespBody::Length(n) => Some(BodyIn::Length(n)),
        RespBody::Chunked => Some(BodyIn::Chunked),
        RespBody::UntilClose => Some(BodyIn::UntilClose),
    }
}
