//! Watching a stream for the client's reset while its exchange runs: the exchange future and
//! `SendResponse::poll_reset` are polled together on the stream's task, and a reset drops the
//! exchange at once (its upstream request is abandoned: an HTTP/1.1 upstream connection is
//! closed, an HTTP/2 upstream stream is reset), so a client that resets its streams cannot keep
//! more exchanges running upstream than its stream limit.
//!
//! Owns: racing one exchange against its stream's reset. Must not: log or answer anything (the
//! stream task does, as the client's cancellation).

use std::cell::RefCell;
use std::future::{Future, poll_fn};
use std::pin::pin;
use std::task::Poll;

use bytes::Bytes;
use h2::Reason;
use h2::server::SendResponse;

/// Runs `exchange` until it ends (`Ok`) or the client resets the stream (`Err` with the reason;
/// `exchange` is dropped unfinished). Once the response has started, `poll_reset` on the
/// `SendResponse` no longer waits for a reset (the library refuses it then); a reset is still
/// seen when the task wakes for other reasons, and the response's own frames fail at once.
pub async fn until_reset<T>(
    respond: &RefCell<SendResponse<Bytes>>,
    exchange: impl Future<Output = T>,
) -> Result<T, Reason> {
    let mut exchange = pin!(exchange);
    poll_fn(|cx| {
        if let Poll::Ready(out) = exchange.as_mut().poll(cx) {
            return Poll::Ready(Ok(out));
        }
        // Same task as the exchange: if the library keeps one waker for the stream's send side,
        // either registration wakes this task, which polls both again.
        match respond.borrow_mut().poll_reset(cx) {
            Poll::Ready(Ok(reason)) => Poll::Ready(Err(reason)),
            // Response started (the library refuses to wait through `SendResponse` then) or the
            // connection failed: the exchange itself sees either.
            Poll::Ready(Err(_)) | Poll::Pending => Poll::Pending,
        }
    })
    .await
}
