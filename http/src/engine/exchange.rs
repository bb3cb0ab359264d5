//! The state one forwarded request works on (`Exchange`: the shard, its generation, the client
//! side, the context) and the response stage shared by every forward path: report the outcome,
//! run the chain's response phase, send the response through the `Downstream`.
//!
//! Owns: `Exchange`, `After`, and the response step of a proxied request. Must not: pick
//! endpoints or talk to upstreams (that is `forward`), or frame responses (the `Downstream`).

use portcullis_core::pipeline::{Cx, Filter, ResponseHead};

use crate::body::RelayLimits;
use crate::engine::downstream::{Downstream, Sent, UpBody, UpSource};
use crate::forward::error::Fail;
use crate::forward::plan::Plan;
use crate::shard::state::{ShardGen, ShardState};
use crate::upstream::Outcome;

/// What happens to the client connection after an exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum After {
    /// Read the next request.
    KeepAlive,
    /// Close it.
    Close,
}

/// The state one forwarded exchange works on.
pub(crate) struct Exchange<'a, F, D> {
    pub(crate) state: &'a ShardState<F>,
    pub(crate) sg: &'a ShardGen<F>,
    pub(crate) down: &'a mut D,
    pub(crate) cx: &'a mut Cx,
    /// The client sent `TE: trailers`.
    pub(crate) te_trailers: bool,
}

impl<F: Filter, D: Downstream> Exchange<'_, F, D> {
    /// Takes a final response head from endpoint `ep`: reports the outcome, runs the response
    /// phase of the chain, and records the status.
    pub(crate) fn response_head(&mut self, plan: &Plan<'_>, ep: usize, resp_head: &mut ResponseHead) {
        let outcome = if resp_head.status >= 500 { Outcome::Failure } else { Outcome::Success };
        plan.upstream.report(&plan.set, ep, outcome);
        self.sg.chain.on_response(resp_head, self.cx);
        if let Some(v) = &self.cx.alt_svc {
            // The edge advertises its own HTTP/3 endpoint, never an upstream's.
            resp_head.headers.set("alt-svc", v.clone());
        }
        self.cx.status = resp_head.status;
    }

    /// Sends a proxied response to the client and records the bytes sent.
    pub(crate) async fn send_response<R: UpSource>(
        &mut self,
        resp_head: &ResponseHead,
        body: UpBody<'_, R>,
        keep: bool,
        limits: RelayLimits,
    ) -> Result<Sent, Fail> {
        let limits = RelayLimits { max_bytes: u64::MAX, ..limits };
        match self.down.send_response(resp_head, body, keep, limits).await {
            Ok(sent) => {
                (self.cx.bytes_out, self.cx.head_sent) = (sent.bytes, sent.head_at);
                Ok(sent)
            }
            Err(e) => {
                tracing::debug!(error = %e, "response body relay failed");
                Err(Fail::Abort)
            }
        }
    }
}
