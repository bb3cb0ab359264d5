//! How a forward stops short, and the one place upstream failures become replies: `Fail` (an
//! upstream failure, a refused request, or an abort) and `UpstreamError`, which knows whether a
//! retry is safe and turns itself into the one JSON local reply.
//!
//! Owns: `Fail`, `UpstreamError` and the text of every upstream failure reply. Must not: do I/O
//! or decide whether attempts are left (that is `Attempts`).

use portcullis_core::LocalReply;

/// Why forwarding stopped.
pub(crate) enum Fail {
    /// The upstream failed before anything reached the client: answer with its reply.
    Upstream(UpstreamError),
    /// The request was refused before anything reached the client: answer with this reply.
    Reply(LocalReply),
    /// The response was already started or the client broke: close the connection.
    Abort,
}

impl From<UpstreamError> for Fail {
    fn from(e: UpstreamError) -> Fail {
        Fail::Upstream(e)
    }
}

/// An upstream failure of one attempt (or of the whole forward).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum UpstreamError {
    /// The upstream has no endpoint to send to.
    NoEndpoint,
    /// The circuit breaker refused (in-flight or pending-connect limit).
    CircuitOpen,
    /// TCP connect timed out.
    ConnectTimeout,
    /// TCP connect was refused or the endpoint is unreachable.
    ConnectFailed,
    /// The TLS handshake timed out.
    TlsTimeout,
    /// The upstream's certificate did not verify.
    TlsCertificate,
    /// The TLS handshake failed otherwise.
    TlsHandshake,
    /// The HTTP/2 handshake timed out.
    H2HandshakeTimeout,
    /// The HTTP/2 handshake failed.
    H2HandshakeFailed,
    /// Writing the request to the connection failed.
    WriteFailed,
    /// The connection closed before a complete response head (`partial`: after some of it).
    Closed {
        /// Part of a response arrived: the request was processed, never sent again.
        partial: bool,
    },
    /// The HTTP/2 connection refused or could not take the stream.
    StreamRefused,
    /// The HTTP/2 stream ended before a response head.
    StreamClosed,
    /// No response head by the attempt's deadline.
    Timeout,
    /// The response head did not parse.
    BadResponse,
    /// `101 Switching Protocols` to a request that asked for no upgrade.
    UnaskedUpgrade,
    /// The upstream broke while receiving the request body: the client's body is partly read,
    /// so the client connection closes after the reply.
    BodyAborted,
    /// The upstream broke at the end of a request body it received whole.
    BodyEnd,
    /// A WebSocket upgrade routed to an HTTP/2 upstream.
    UpgradeNeedsH1,
}

impl UpstreamError {
    /// Whether the request may go again to another endpoint (when attempts and budget are
    /// left): true for failures before the upstream can have acted on the request.
    pub(crate) fn retry_safe(self) -> bool {
        use UpstreamError as E;
        match self {
            E::ConnectTimeout | E::ConnectFailed | E::TlsTimeout | E::TlsCertificate | E::TlsHandshake => {
                true
            }
            E::H2HandshakeTimeout | E::H2HandshakeFailed | E::WriteFailed | E::StreamRefused => true,
            E::Closed { partial } => !partial,
            E::StreamClosed | E::Timeout => true,
            E::NoEndpoint | E::CircuitOpen | E::BadResponse | E::UnaskedUpgrade => false,
            E::BodyAborted | E::BodyEnd | E::UpgradeNeedsH1 => false,
        }
    }

    /// The local reply (one JSON error shape) for this failure.
    pub(crate) fn reply(self) -> LocalReply {
        use UpstreamError as E;
        let reset = |what| LocalReply::bad_gateway("upstream_reset", what);
        match self {
            E::NoEndpoint => LocalReply::unavailable("no_upstream_endpoint", "upstream has no endpoints"),
            E::CircuitOpen => {
                LocalReply::unavailable("upstream_circuit_open", "upstream is at its concurrency limit")
            }
            E::ConnectTimeout => LocalReply::gateway_timeout("upstream connect timed out"),
            E::ConnectFailed => {
                LocalReply::bad_gateway("upstream_connect_failed", "upstream refused or unreachable")
            }
            E::TlsTimeout => LocalReply::gateway_timeout("upstream TLS handshake timed out"),
            E::TlsCertificate => {
                LocalReply::bad_gateway("upstream_tls_failed", "upstream certificate could not be verified")
            }
            E::TlsHandshake => {
                LocalReply::bad_gateway("upstream_tls_failed", "upstream TLS handshake failed")
            }
            E::H2HandshakeTimeout => LocalReply::gateway_timeout("upstream HTTP/2 handshake timed out"),
            E::H2HandshakeFailed => {
                LocalReply::bad_gateway("upstream_connect_failed", "upstream HTTP/2 handshake failed")
            }
            E::WriteFailed => reset("upstream connection failed"),
            E::Closed { .. } => reset("upstream closed the connection"),
            E::StreamRefused => reset("upstream refused the HTTP/2 stream"),
            E::StreamClosed => reset("upstream closed the stream"),
            E::Timeout => LocalReply::gateway_timeout("upstream did not answer in time"),
            E::BadResponse => {
                LocalReply::bad_gateway("upstream_bad_response", "upstream sent an invalid response")
            }
            E::UnaskedUpgrade => {
                LocalReply::bad_gateway("upstream_bad_response", "upstream switched protocols unasked")
            }
            E::BodyAborted => reset("upstream failed while receiving the body").closing(),
            E::BodyEnd => reset("upstream failed while receiving the body"),
            E::UpgradeNeedsH1 => {
                LocalReply::bad_gateway("upstream_protocol", "WebSocket upgrades need an HTTP/1.1 upstream")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::UpstreamError as E;

    #[test]
    fn only_failures_before_the_upstream_acted_are_retry_safe() {
        assert!(E::ConnectFailed.retry_safe());
        assert!(E::Closed { partial: false }.retry_safe());
        assert!(!E::Closed { partial: true }.retry_safe());
        assert!(!E::BadResponse.retry_safe());
        assert!(!E::BodyAborted.retry_safe());
    }

    #[test]
    fn replies_keep_their_status_and_code() {
        assert_eq!((E::Timeout.reply().status, E::Timeout.reply().code), (504, "upstream_timeout"));
        assert_eq!(E::NoEndpoint.reply().status, 503);
        assert_eq!(E::StreamRefused.reply().code, "upstream_reset");
        assert!(E::BodyAborted.reply().close);
        assert!(!E::BodyEnd.reply().close);
    }
}
