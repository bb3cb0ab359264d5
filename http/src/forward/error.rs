//! How a forward stops short: the reply to send (nothing reached the client yet) or an abort,
//! and the replies for upstream failures that every forward path shares.
//!
//! Owns: `Fail` and the upstream failure replies. Must not: do I/O.

use portcullis_core::LocalReply;

use crate::upstream::ConnectError;

/// Why forwarding stopped.
pub(crate) enum Fail {
    /// Nothing was sent to the client yet: answer with this reply.
    Reply(LocalReply),
    /// The response was already started or the client broke: close the connection.
    Abort,
}

pub(crate) fn connect_reply(e: ConnectError) -> Fail {
    match e {
        ConnectError::Timeout(addr) => {
            tracing::debug!(%addr, "upstream connect timeout");
            Fail::Reply(LocalReply::gateway_timeout("upstream connect timed out"))
        }
        ConnectError::Io(addr, err) => {
            tracing::debug!(%addr, error = %err, "upstream connect failed");
            Fail::Reply(LocalReply::bad_gateway("upstream_connect_failed", "upstream refused or unreachable"))
        }
    }
}

/// The reply when the upstream has no endpoint to send to.
pub(crate) fn no_endpoint() -> LocalReply {
    LocalReply::unavailable("no_upstream_endpoint", "upstream has no endpoints")
}

/// The circuit breaker's refusal: 503 with its own code.
pub(crate) fn circuit_open(upstream: &str) -> LocalReply {
    tracing::debug!(upstream, "upstream circuit open");
    LocalReply::unavailable("upstream_circuit_open", "upstream is at its concurrency limit")
}
