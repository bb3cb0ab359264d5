//! One HTTP/1.1 request through the engine: its context (`Cx`) from the parsed head and the
//! connection, the WebSocket upgrade headers, and the `Downstream` over the client connection.
//!
//! Owns: the step from a parsed HTTP/1.1 request to `engine::handle`. Must not: read heads or
//! manage the connection (that is `h1::server`), or talk to upstreams.

use bytes::BytesMut;
use monoio::io::{AsyncReadRent, AsyncWriteRent, Split};
use portcullis_core::pipeline::{Cx, Filter, Headers, Method};

use crate::engine::client::ClientMeta;
use crate::engine::exchange::After;
use crate::engine::{Incoming, handle};
use crate::h1::down::H1Down;
use crate::h1::request::ParsedRequest;
use crate::shard::state::{ShardGen, ShardState};

/// Handles one HTTP/1.1 request end to end. Returns what to do with the connection and the
/// header list for reuse by the next request. `rbuf` holds the bytes read from the client
/// after the head (body, pipelined requests); `wbuf` and `scratch` are lent for this exchange.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn exchange<F: Filter, S: AsyncReadRent + AsyncWriteRent + Split>(
    state: &ShardState<F>,
    sg: &ShardGen<F>,
    client: &mut S,
    rbuf: &mut BytesMut,
    wbuf: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
    req: ParsedRequest,
    meta: &ClientMeta,
    last: bool,
) -> (After, Headers) {
    let ParsedRequest { mut head, body, keep_alive, expect_continue, upgrade, te_trailers } = req;
    let mut cx = Cx::new(meta.addr, meta.tls, head.version);
    if let Some(proto) = upgrade {
        // A WebSocket handshake: filters and the upstream see the upgrade headers.
        head.headers.set("connection", "upgrade");
        head.headers.set("upgrade", proto.clone());
        cx.upgrade = Some(proto);
    }
    cx.client_cert.clone_from(&meta.client_cert);
    cx.alt_svc.clone_from(&meta.alt_svc);
    cx.tls_version = meta.tls_version;
    let is_head = head.method == Method::Head;
    let mut down = H1Down { stream: client, rbuf, version: head.version, is_head, wbuf, scratch };
    let keep = keep_alive && !last && !state.draining.get();
    let incoming = Incoming { head, body, expect_continue, keep, te_trailers };
    let (after, mut head) = handle(state, sg, &mut down, incoming, &mut cx).await;
    sg.chain.on_log(&cx);
    (after, std::mem::take(&mut head.headers))
}
