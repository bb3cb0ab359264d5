//! Forward: a routed request toward its upstream. `mod.rs` makes the plan shared by every
//! attempt (limits, deadlines, buffered body, hash key, retry bookkeeping: `plan`) and hands it
//! to the transport (`h1` or `h2`), which runs the one attempt loop (`retry`) with its own
//! transport step; `connect` opens new upstream connections; `error` holds the failures
//! (`UpstreamError`) and their replies.
//!
//! Owns: the step from a routed request to an upstream transport. Must not: run filters (the
//! engine does) or frame client responses (the `Downstream`).

pub(crate) mod connect;
pub(crate) mod error;
mod h1;
mod h2;
pub(crate) mod plan;
mod retry;

use std::time::Instant;

use bytes::Bytes;
use portcullis_core::LocalReply;
use portcullis_core::pipeline::{Filter, RequestHead};

use crate::body::RelayLimits;
use crate::body::ReqBody;
use crate::engine::downstream::Downstream;
use crate::engine::exchange::{After, Exchange};
use crate::upstream::Attempts;
use error::{Fail, UpstreamError};
use plan::Plan;

/// Largest slice moved at once while streaming bodies.
const RELAY_CHUNK: usize = 16 * 1024;

impl<F: Filter, D: Downstream> Exchange<'_, F, D> {
    /// Forwards a routed request: checks its body against the limit, makes the plan, and runs
    /// the transport the upstream speaks.
    pub(crate) async fn forward(
        &mut self,
        head: &mut RequestHead,
        body: ReqBody,
        expect_continue: bool,
        route_idx: usize,
        client_keep: bool,
    ) -> Result<After, Fail> {
        let (state, sg) = (self.state, self.sg);
        let cfg = sg.config();
        let route = &cfg.routes[route_idx];
        let up_idx = sg.generation.shared.route_upstream[route_idx];
        let upstream = &sg.upstreams[up_idx];
        let max_body = route.max_body_bytes.unwrap_or(cfg.http.max_body_bytes).0;
        if let ReqBody::Length(n) = body
            && n > max_body
        {
            return Err(Fail::Reply(LocalReply::payload_too_large(max_body)));
        }
        let deadline = Instant::now() + route.timeout.0;

        // A body that is already fully buffered is sent with the head in one write, and makes the
        // request safe to retry on a fresh connection if a pooled one turns out to be dead.
        let buffered: Option<Bytes> = self.down.buffered_body(body);
        if let Some(b) = &buffered {
            self.cx.bytes_in = b.len() as u64;
        }
        let limits = RelayLimits {
            max_bytes: max_body,
            idle: cfg.http.body_timeout.0,
            chunk: RELAY_CHUNK,
            max_trailer_bytes: cfg.http.max_header_bytes.0 as usize,
        };

        let Some(_flight) = upstream.begin() else {
            tracing::debug!(upstream = %upstream.name, "upstream circuit open");
            return Err(UpstreamError::CircuitOpen.into());
        };
        let key = upstream.hash_key(&head.headers, self.cx.client_ip);
        upstream.note_request();
        let retry = &route.retry;
        // Retries need the whole body in hand (to send it again) and a method safe to repeat.
        let replayable = buffered.is_some() && (retry.any_method || head.method.is_idempotent());
        let plan = Plan {
            upstream,
            tls: sg.generation.shared.upstream_tls[up_idx].as_ref(),
            set: upstream.endpoints(&state.pool),
            key,
            buffered,
            limits,
            deadline,
            try_timeout: route.try_timeout.map(|t| t.0),
            attempts: Attempts::new(upstream, retry, replayable, deadline),
        };
        if upstream.protocol.is_h2() {
            return self.forward_h2(head, body, expect_continue, plan, client_keep).await;
        }
        self.forward_h1(head, body, expect_continue, plan, client_keep).await
    }
}
