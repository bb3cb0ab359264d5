//! The log stage for replies made before a request existed (a head or stream the codec
//! refused): their context and their log phase, counted like any other short-circuit.
//!
//! Owns: `bare_cx` and `log_bare_reply`. Must not: send anything (the server that refused the
//! head answers it).

use bytes::Bytes;
use portcullis_core::LocalReply;
use portcullis_core::pipeline::{Cx, Filter, Method, Version};

use crate::engine::client::ClientMeta;
use crate::shard::state::ShardGen;

/// The context of a reply sent before a request existed (a head or stream the codec refused):
/// method `-`, no route.
pub(crate) fn bare_cx(meta: &ClientMeta, version: Version) -> Cx {
    let mut cx = Cx::new(meta.addr, meta.tls, version);
    cx.tls_version = meta.tls_version;
    cx.method = Method::Other(Bytes::from_static(b"-"));
    cx
}

/// The log phase of such a bare reply (`body_len` bytes of body sent): the access log and the
/// metrics count it like any other short-circuit.
pub(crate) fn log_bare_reply<F: Filter>(sg: &ShardGen<F>, cx: &mut Cx, reply: &LocalReply, body_len: usize) {
    cx.status = reply.status;
    cx.error_code = Some(reply.code);
    cx.bytes_out = body_len as u64;
    sg.chain.on_log(cx);
}
