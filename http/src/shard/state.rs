//! The state of one shard, shared by every connection and request on it: the config generation
//! new requests start on, the upstream pool, the drain flag and the live counters (requests in
//! flight are counted in one place for every protocol: `begin_request`).
//!
//! Owns: shard-local state (`Rc`, `Cell`, `RefCell`; never shared across threads). Must not:
//! accept, parse or forward anything (it is the leaf every stage reads).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use portcullis_core::config::Config;
use portcullis_core::runtime::Generation;

use crate::compiled::Compiled;
use crate::h1::request::HeadLimits;
use crate::spare::Spares;
use crate::upstream::{Pool, Upstream};

/// One config generation as a shard runs it: the shared compiled data plus shard-local state
/// built from it (the filter chain, round-robin cursors).
pub struct ShardGen<F> {
    /// The generation (config + compiled route table).
    pub generation: Arc<Generation<Compiled>>,
    /// The filter chain, built on this shard.
    pub chain: F,
    /// Upstreams by config index.
    pub upstreams: Vec<Upstream>,
    /// Head limits from `[http]`.
    pub head_limits: HeadLimits,
    /// Per listener: the `Alt-Svc` value advertising its HTTP/3 endpoint, if it has one.
    pub alt_svc: Vec<Option<Bytes>>,
}

impl<F> ShardGen<F> {
    /// The configuration of this generation.
    pub fn config(&self) -> &Config {
        &self.generation.config
    }
}

/// Builds a shard's filter chain from a config (called once per shard per generation).
pub type BuildChain<F> = dyn Fn(&Config) -> Result<F, String>;

/// One request in flight on its shard (the drain waits until none is left).
pub struct Inflight<'a>(&'a Cell<usize>);

impl Drop for Inflight<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

/// All state of one shard.
pub struct ShardState<F> {
    /// Shard index.
    pub id: usize,
    current: RefCell<Rc<ShardGen<F>>>,
    /// Idle upstream connections.
    pub pool: Pool,
    /// Set once draining starts: no new requests on kept-alive connections.
    pub draining: Cell<bool>,
    /// Requests currently being handled (counted by `begin_request`).
    inflight: Cell<usize>,
    /// Open client connections over TCP (HTTP/1.x and HTTP/2).
    pub connections: Cell<usize>,
    /// Of those, HTTP/2 connections.
    pub h2_connections: Cell<usize>,
    /// Open HTTP/3 connections (counted by the QUIC listener).
    pub h3_connections: Cell<usize>,
    /// Write buffers and header lists lent to connections for one exchange at a time.
    pub(crate) spares: Spares,
    /// Called once when the shard starts draining (other protocols' listeners stop here).
    pub on_drain: RefCell<Vec<Box<dyn FnOnce()>>>,
}

impl<F> ShardState<F> {
    /// A fresh shard state serving `first`.
    pub(crate) fn new(id: usize, first: ShardGen<F>) -> ShardState<F> {
        ShardState {
            id,
            current: RefCell::new(Rc::new(first)),
            pool: Pool::default(),
            draining: Cell::new(false),
            inflight: Cell::new(0),
            connections: Cell::new(0),
            h2_connections: Cell::new(0),
            h3_connections: Cell::new(0),
            spares: Spares::default(),
            on_drain: RefCell::new(Vec::new()),
        }
    }

    /// The generation new requests start on (in-flight requests keep theirs).
    pub fn current(&self) -> Rc<ShardGen<F>> {
        self.current.borrow().clone()
    }

    /// Counts one request (or other work the drain must wait for) as in flight until the
    /// returned guard drops: the one in-flight count of every protocol.
    pub fn begin_request(&self) -> Inflight<'_> {
        self.inflight.set(self.inflight.get() + 1);
        Inflight(&self.inflight)
    }

    /// Requests in flight now.
    pub fn inflight(&self) -> usize {
        self.inflight.get()
    }

    /// Makes `next` the generation new requests start on.
    pub(crate) fn set_current(&self, next: ShardGen<F>) {
        *self.current.borrow_mut() = Rc::new(next);
    }
}
