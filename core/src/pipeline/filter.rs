//! The filter contract every policy implements and the engine drives.
//!
//! Owns: `Filter` and `Flow`. Must not: know any concrete filter (dispatch over concrete
//! filters is a closed enum in the policies crate, so no future is boxed on the hot path).

use super::cx::Cx;
use super::head::{RequestHead, ResponseHead};
use crate::error::LocalReply;

/// What a request phase decided.
#[derive(Debug)]
pub enum Flow {
    /// Pass the request on to the next filter (and finally the upstream).
    Continue,
    /// Answer now with a local reply; later filters and the upstream are skipped, but the
    /// response phases of the filters already entered still run.
    Respond(LocalReply),
}

/// A policy in the request chain. One instance per shard per config generation, so it may hold
/// shard-local state in `Cell`/`RefCell` (never borrowed across an `.await`).
///
/// `async fn` is used without a `Send` bound on purpose: every future stays on its shard.
#[allow(async_fn_in_trait)]
pub trait Filter {
    /// Request phase: inspect or change the request, or answer early.
    async fn on_request(&self, req: &mut RequestHead, cx: &mut Cx) -> Flow;

    /// Response phase: runs for every filter whose request phase was entered, in reverse order,
    /// on upstream responses and on local replies alike.
    fn on_response(&self, _resp: &mut ResponseHead, _cx: &mut Cx) {}

    /// Log phase: runs once per request after the response is written, always.
    fn on_log(&self, _cx: &Cx) {}

    /// Housekeeping: called on each shard about every 250 ms on the current generation's
    /// filters (e.g. hand buffered access log lines to their writer). Must be cheap.
    fn on_tick(&self) {}
}

/// The empty chain: every request continues.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoFilters;

impl Filter for NoFilters {
    async fn on_request(&self, _req: &mut RequestHead, _cx: &mut Cx) -> Flow {
        Flow::Continue
    }
}
