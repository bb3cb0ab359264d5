//! Watching a stream for the client's reset while its exchange runs: the exchange future and
//! `SendResponse::poll_reset` are polled together on the stream's task, and a reset drops the
//! exchange at once (its upstream request is abandoned: an HTTP/1.1 upstream connection is
//! closed, an HTTP/2 upstream stream is reset), so a client that resets its streams cannot keep
//! more exchanges running upstream than its stream limit.
//!
//! Owns: racing one exchange against its stream's reset. Must not: log or answer anything (the
//! stream task does, as the client's cancellation).

use std::cell::RefCell;
use std::task::{Context, Poll};

use bytes::Bytes;
use h2::server::SendResponse;

/// A poll for the client's reset of the stream behind `respond`, for
/// `engine::stream::StreamRequest::run_until`, which polls it on the exchange's own task after
/// each poll of the exchange: `Ready` once the client reset the stream (the exchange is then
/// dropped unfinished). Once the response has started, `poll_reset` on the `SendResponse` no
/// longer waits for a reset (the library refuses it then); a reset is still seen when the task
/// wakes for other reasons, and the response's own frames fail at once.
pub fn reset_watch(respond: &RefCell<SendResponse<Bytes>>) -> impl FnMut(&mut Context<'_>) -> Poll<()> + '_ {
    move |cx| match respond.borrow_mut().poll_reset(cx) {
        Poll::Ready(Ok(_reason)) => Poll::Ready(()),
        // Response started (the library refuses to wait through `SendResponse` then) or the
        // connection failed: the exchange itself sees either.
        Poll::Ready(Err(_)) | Poll::Pending => Poll::Pending,
    }
}
