//! The one attempt loop of every forward: pick an endpoint (or the same one again after a dead
//! reused connection), get a connection from the transport (pooled, or opened under the
//! circuit's pending-connect limit), stamp the deadline header, let the transport send the
//! request and wait for the response head, then retry on another endpoint when the failure is
//! retry-safe, attempts and budget are left and the route's deadline has not passed (a
//! retryable status too). HTTP/1.1 and HTTP/2 supply only the transport step (`Transport`).
//!
//! Owns: the order of an attempt's steps, outlier reports for failed attempts, backoff sleeps.
//! Must not: frame requests or responses (the transports and the `Downstream`), or decide how
//! many retries are left (`Attempts`).

use std::net::SocketAddr;
use std::time::Instant;

use portcullis_core::pipeline::{Filter, RequestHead};

use crate::body::RelayError;
use crate::engine::downstream::Downstream;
use crate::engine::exchange::Exchange;
use crate::forward::error::{Fail, UpstreamError};
use crate::forward::plan::Plan;
use crate::upstream::{EndpointSet, Outcome, Pool, Slot, stamp_deadline};

/// How one attempt ended.
pub(crate) enum Tried<R> {
    /// The final response head arrived.
    Answered(R),
    /// A reused connection turned out dead before any answer while the request is still in
    /// hand: the same endpoint again on a fresh connection (not counted as a retry).
    Stale,
    /// The upstream failed: counted against the endpoint, retried when safe and allowed.
    Failed(UpstreamError),
    /// The client side failed (its body): not the endpoint's fault, never retried.
    Client(Fail),
}

impl<R> Tried<R> {
    /// A request body relay that stopped: the upstream side's failure or the client's.
    pub(crate) fn body_failed(e: RelayError) -> Tried<R> {
        use portcullis_core::LocalReply;
        match e {
            RelayError::TooLarge(limit) => Tried::Client(Fail::Reply(LocalReply::payload_too_large(limit))),
            RelayError::Framing(e) => {
                Tried::Client(Fail::Reply(LocalReply::bad_request(format!("invalid chunked body: {e}"))))
            }
            RelayError::Source(_) => Tried::Client(Fail::Abort),
            RelayError::Dest(e) => {
                tracing::debug!(error = %e, "upstream failed while receiving the body");
                Tried::Failed(UpstreamError::BodyAborted)
            }
        }
    }
}

/// One attempt's facts for the transport.
#[derive(Clone, Copy)]
pub(crate) struct Attempt {
    /// The endpoint's address.
    pub(crate) addr: SocketAddr,
    /// The connection came from the pool (it may have gone bad while idle).
    pub(crate) reused: bool,
    /// The attempt ends by then.
    pub(crate) deadline: Instant,
}

/// The transport step of a forward: what differs between HTTP/1.1 and HTTP/2 upstreams.
pub(crate) trait Transport {
    /// A connection to send on (a pooled HTTP/1.1 connection, a lease on an HTTP/2 one).
    type Conn;
    /// A final response head (and what its body is read from).
    type Resp;

    /// A connection to `addr` already open and reusable, if the pool has one.
    fn checkout(&mut self, pool: &Pool, addr: SocketAddr, plan: &Plan<'_>) -> Option<Self::Conn>;

    /// Opens a fresh connection to `addr`.
    async fn open(
        &mut self,
        pool: &Pool,
        addr: SocketAddr,
        plan: &Plan<'_>,
    ) -> Result<Self::Conn, UpstreamError>;

    /// Sends the request on `conn` and waits for the final response head until `at.deadline`.
    async fn attempt<F: Filter, D: Downstream>(
        &mut self,
        ex: &mut Exchange<'_, F, D>,
        plan: &Plan<'_>,
        conn: &mut Self::Conn,
        at: Attempt,
        head: &mut RequestHead,
    ) -> Tried<Self::Resp>;

    /// The response's status code.
    fn status(resp: &Self::Resp) -> u16;
}

/// The attempt that got a final response.
pub(crate) struct Won<'s, C, R> {
    /// Its connection.
    pub(crate) conn: C,
    /// The response head.
    pub(crate) resp: R,
    /// The endpoint (index in the set).
    pub(crate) ep: usize,
    /// Counts the request as outstanding on the endpoint until dropped.
    pub(crate) tracked: Slot<'s>,
}

impl<F: Filter, D: Downstream> Exchange<'_, F, D> {
    /// Runs attempts over `transport` until one gets a final response or the request fails.
    /// `set` is `plan.set` (borrowed apart from the plan, whose attempts change).
    pub(crate) async fn run_attempts<'s, T: Transport>(
        &mut self,
        transport: &mut T,
        plan: &mut Plan<'_>,
        set: &'s EndpointSet,
        head: &mut RequestHead,
    ) -> Result<Won<'s, T::Conn, T::Resp>, Fail> {
        let pool = &self.state.pool;
        let upstream = plan.upstream;
        // Set after a reused connection turned out dead: the same endpoint on a fresh one.
        let mut stale_on: Option<usize> = None;
        loop {
            // Upstream time: from here until the response head, per attempt.
            let sent_at = Instant::now();
            self.cx.upstream_attempt(sent_at);
            let (ep, fresh_only) = match stale_on.take() {
                Some(ep) => (ep, true),
                None => match plan.attempts.pick(set, plan.key) {
                    Some(ep) => (ep, false),
                    None => return Err(UpstreamError::NoEndpoint.into()),
                },
            };
            let addr = set.eps[ep].addr;
            let tracked = set.track(ep);
            self.cx.upstream_addr = Some(addr);
            let pooled = if fresh_only { None } else { transport.checkout(pool, addr, plan) };
            let failed = match pooled {
                Some(conn) => Ok((conn, true)),
                None => {
                    let Some(_pending) = upstream.begin_connect(set, pool) else {
                        tracing::debug!(upstream = %upstream.name, "upstream circuit open");
                        return Err(UpstreamError::CircuitOpen.into());
                    };
                    transport.open(pool, addr, plan).await.map(|conn| (conn, false))
                }
            };
            let error = match failed {
                Err(e) => e,
                Ok((mut conn, reused)) => {
                    // This attempt's deadline; the upstream is told what is left of it.
                    let try_deadline = plan.try_deadline();
                    let left = try_deadline.saturating_duration_since(Instant::now());
                    stamp_deadline(&mut head.headers, upstream.deadline_header.as_deref(), left);
                    let at = Attempt { addr, reused, deadline: try_deadline };
                    match transport.attempt(self, plan, &mut conn, at, head).await {
                        Tried::Answered(resp) => {
                            if plan.attempts.retries_status(T::status(&resp))
                                && let Some(wait) = plan.attempts.retry(ep)
                            {
                                upstream.report(set, ep, Outcome::Failure);
                                monoio::time::sleep(wait).await;
                                continue;
                            }
                            self.cx.upstream_answered(sent_at);
                            return Ok(Won { conn, resp, ep, tracked });
                        }
                        Tried::Stale => {
                            stale_on = Some(ep);
                            continue;
                        }
                        Tried::Client(fail) => return Err(fail),
                        Tried::Failed(e) => e,
                    }
                }
            };
            upstream.report(set, ep, Outcome::Failure);
            // A retry past the route's deadline could only time out at once.
            if error.retry_safe()
                && Instant::now() < plan.deadline
                && let Some(wait) = plan.attempts.retry(ep)
            {
                monoio::time::sleep(wait).await;
                continue;
            }
            return Err(error.into());
        }
    }
}
