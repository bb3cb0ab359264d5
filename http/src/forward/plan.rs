//! What the HTTP/1.1 and HTTP/2 forward paths of the engine share for one request: the plan
//! made before the first attempt (upstream, endpoint set, hash key, buffered body, limits,
//! deadlines, retry bookkeeping) and the mapping of a failed request body relay to a reply.
//!
//! Owns: those shared pieces. Must not: do I/O or pick endpoints itself (that is `Attempts`).

use std::rc::Rc;
use std::time::Instant;

use bytes::Bytes;
use portcullis_core::LocalReply;

use crate::body::{RelayError, RelayLimits};
use crate::forward::error::Fail;
use crate::upstream::{Attempts, EndpointSet, Upstream, UpstreamTls};

/// What every forward path needs, prepared once per request before the first attempt.
pub(crate) struct Plan<'a> {
    /// The upstream (this shard's view).
    pub(crate) upstream: &'a Upstream,
    /// Its TLS context, when it speaks TLS.
    pub(crate) tls: Option<&'a UpstreamTls>,
    /// The endpoint set this request works on, whatever discovery publishes meanwhile.
    pub(crate) set: Rc<EndpointSet>,
    /// The consistent-hash key.
    pub(crate) key: u64,
    /// The request body when already complete (retries need it).
    pub(crate) buffered: Option<Bytes>,
    /// Body relay limits.
    pub(crate) limits: RelayLimits,
    /// All attempts end by then (the route's `timeout`).
    pub(crate) deadline: Instant,
    /// The route's per-attempt timeout.
    pub(crate) try_timeout: Option<std::time::Duration>,
    /// Retry bookkeeping.
    pub(crate) attempts: Attempts<'a>,
}

impl Plan<'_> {
    /// The deadline of an attempt starting now.
    pub(crate) fn try_deadline(&self) -> Instant {
        match self.try_timeout {
            Some(t) => self.deadline.min(Instant::now() + t),
            None => self.deadline,
        }
    }
}

/// The reply for a request body relay that stopped (`upstream_failed`: the upstream side broke,
/// which counts against the endpoint).
pub(crate) fn body_fail(e: RelayError) -> (Fail, bool) {
    match e {
        RelayError::TooLarge(limit) => (Fail::Reply(LocalReply::payload_too_large(limit)), false),
        RelayError::Framing(e) => {
            (Fail::Reply(LocalReply::bad_request(format!("invalid chunked body: {e}"))), false)
        }
        RelayError::Source(_) => (Fail::Abort, false),
        RelayError::Dest(e) => {
            tracing::debug!(error = %e, "upstream failed while receiving the body");
            let reply = LocalReply::bad_gateway("upstream_reset", "upstream failed while receiving the body")
                .closing();
            (Fail::Reply(reply), true)
        }
    }
}

/// In a forward path's attempt loop: retries on another endpoint when `$plan` allows it (count,
/// budget) after its jittered backoff (`continue`), otherwise returns `Err($fail)`.
macro_rules! retry_or_fail {
    ($plan:ident, $ep:expr, $fail:expr) => {{
        if let Some(wait) = $plan.attempts.retry($ep) {
            monoio::time::sleep(wait).await;
            continue;
        }
        return Err($fail);
    }};
}
pub(crate) use retry_or_fail;
