//! The plan of one forwarded request, made before its first attempt and shared by the HTTP/1.1
//! and HTTP/2 transports: upstream, endpoint set, hash key, buffered body, limits, deadlines,
//! retry bookkeeping.
//!
//! Owns: `Plan`. Must not: do I/O or pick endpoints itself (that is `Attempts`).

use std::rc::Rc;
use std::time::Instant;

use bytes::Bytes;

use crate::body::RelayLimits;
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
