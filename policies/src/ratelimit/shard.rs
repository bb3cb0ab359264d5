//! A shard's rate-limit state, shared by every config generation on that shard: the key tables
//! of each named limit (kept across reloads while the limit is unchanged), the correction
//! channel from the sync thread, the batch clock and the per-shard hit counters.
//!
//! Owns: shard-local state in `Rc`/`RefCell`/`Cell`, reached through a thread-local so each
//! generation's filter finds the tables of the previous one. Must not: cross threads (only the
//! `Send` batch leaves, through a channel) or hold a `RefCell` borrow across an `.await`.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crossbeam_channel::{Receiver, TrySendError};
use portcullis_core::config::LimitConfig;

use super::messages::{Correction, Reply, ToSync, Usage};
use super::service::{Health, Inner, RateLimitService};
use super::table::KeyTable;

/// One named limit's tables on this shard.
#[derive(Debug)]
pub(crate) struct LimitState {
    /// Unique (per shard) id that corrections refer to.
    pub id: u64,
    /// Limit name.
    pub name: Rc<str>,
    name_arc: Arc<str>,
    /// The definition the tables were built for (a changed definition starts fresh).
    config: LimitConfig,
    max_keys: usize,
    /// The buckets.
    pub table: RefCell<KeyTable>,
}

/// The shard's limiter state.
#[derive(Debug)]
pub(crate) struct ShardLimiter {
    service: RateLimitService,
    id: u32,
    replies: Option<Receiver<Reply>>,
    limits: RefCell<HashMap<Rc<str>, Rc<LimitState>>>,
    next_table: Cell<u64>,
    last_cut: Cell<u64>,
    /// A batch was sent and its answer has not arrived yet (one batch in flight at a time, so an
    /// answer always refers to the last cut).
    awaiting: Cell<bool>,
    hits: RefCell<HitCounts>,
    /// Scratch buffer for building keys without allocating.
    pub scratch: RefCell<Vec<u8>>,
}

/// Refusals per (route, limit) since the last batch.
type HitCounts = HashMap<(Rc<str>, Rc<str>), u64>;

thread_local! {
    static SHARD: RefCell<Option<Rc<ShardLimiter>>> = const { RefCell::new(None) };
}

impl ShardLimiter {
    /// This thread's limiter for `service` (created and registered with the sync thread on first
    /// use, or when the service changed).
    pub fn for_thread(service: &RateLimitService) -> Rc<ShardLimiter> {
        SHARD.with(|cell| {
            let mut slot = cell.borrow_mut();
            if let Some(s) = slot.as_ref()
                && s.service.id() == service.id()
            {
                return s.clone();
            }
            let s = Rc::new(ShardLimiter::new(service.clone()));
            *slot = Some(s.clone());
            s
        })
    }

    fn new(service: RateLimitService) -> ShardLimiter {
        let mut id = 0;
        let mut replies = None;
        if let Some(inner) = &service.inner {
            id = inner.shared.next_shard.fetch_add(1, Ordering::Relaxed);
            let (tx, rx) = crossbeam_channel::unbounded();
            if inner.tx.try_send(ToSync::Register { shard: id, replies: tx }).is_ok() {
                replies = Some(rx);
            }
        }
        ShardLimiter {
            service,
            id,
            replies,
            limits: RefCell::new(HashMap::new()),
            next_table: Cell::new(1),
            last_cut: Cell::new(0),
            awaiting: Cell::new(false),
            hits: RefCell::new(HashMap::new()),
            scratch: RefCell::new(Vec::with_capacity(64)),
        }
    }

    /// The tables for the limits of a new generation: the previous ones where the definition is
    /// unchanged, fresh ones otherwise. Limits no longer configured are forgotten (their memory
    /// goes when the last generation using them ends).
    pub fn adopt(&self, wanted: &[(&str, &LimitConfig)], max_keys: usize) -> Vec<Rc<LimitState>> {
        let mut old = self.limits.borrow_mut();
        let mut next = HashMap::with_capacity(wanted.len());
        let mut out = Vec::with_capacity(wanted.len());
        for &(name, cfg) in wanted {
            let state = match old.remove(name) {
                Some(s) if s.config == *cfg && s.max_keys == max_keys => s,
                _ => {
                    let id = self.next_table.get();
                    self.next_table.set(id + 1);
                    Rc::new(LimitState {
                        id,
                        name: Rc::from(name),
                        name_arc: Arc::from(name),
                        config: cfg.clone(),
                        max_keys,
                        table: RefCell::new(KeyTable::new(max_keys)),
                    })
                }
            };
            next.insert(state.name.clone(), state.clone());
            out.push(state);
        }
        *old = next;
        out
    }

    /// Redis health as the shards see it.
    pub fn health(&self) -> Health {
        self.service.health()
    }

    fn inner(&self) -> Option<&Inner> {
        self.service.inner.as_deref()
    }

    /// Counts a refusal by the fail-closed mode.
    pub fn count_fail_closed(&self) {
        if let Some(i) = self.inner() {
            i.shared.fail_closed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts one limit hit for (route, limit).
    pub fn count_hit(&self, route: &Rc<str>, limit: &Rc<str>) {
        *self.hits.borrow_mut().entry((route.clone(), limit.clone())).or_default() += 1;
    }

    /// How long a share learned for a key stays valid while the key is unused on this shard.
    pub fn stale_ns(&self) -> u64 {
        self.inner().map_or(u64::MAX, |i| i.stale_ns)
    }

    /// Request-path housekeeping before the checks: applies any corrections that arrived
    /// (never waits).
    pub fn apply_replies(&self, now: u64) {
        if let Some(rx) = &self.replies {
            while let Ok(reply) = rx.try_recv() {
                if reply.answer {
                    self.awaiting.set(false);
                } else if self.awaiting.get() {
                    // Usage of this shard is on its way to the global state but not in it yet:
                    // the answer to that batch will correct these keys.
                    continue;
                }
                self.apply(reply.list, now);
            }
        }
    }

    /// Request-path housekeeping after the checks: once per sync interval, when the previous
    /// batch has been answered, hands the usage since the last batch (this request's included)
    /// to the sync thread.
    pub fn report_if_due(&self, now: u64) {
        let Some(inner) = self.inner() else { return };
        let since = now.saturating_sub(self.last_cut.get());
        if since < inner.sync_interval_ns {
            return;
        }
        // The answer to the last batch is late: wait for it (for a while; a lost answer must not
        // stop reporting for good).
        if self.awaiting.get() && since < inner.sync_interval_ns.saturating_mul(100).max(1_000_000_000) {
            return;
        }
        self.last_cut.set(now);
        let mut usage = Vec::new();
        for state in self.limits.borrow().values() {
            state.table.borrow_mut().cut(|key, b| {
                usage.push(Usage {
                    table: state.id,
                    limit: state.name_arc.clone(),
                    key: key.into(),
                    used: b.used,
                    demand: b.demand,
                    interval: b.params.interval,
                    tolerance: b.params.tolerance,
                })
            });
        }
        let hits: Vec<_> = self
            .hits
            .borrow_mut()
            .drain()
            .map(|((route, limit), n)| (Arc::from(&*route), Arc::from(&*limit), n))
            .collect();
        if usage.is_empty() && hits.is_empty() {
            return;
        }
        match inner.tx.try_send(ToSync::Batch { shard: self.id, usage, hits }) {
            Ok(()) => self.awaiting.set(self.replies.is_some()),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                inner.shared.dropped_batches.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn apply(&self, list: Vec<Correction>, now: u64) {
        let limits = self.limits.borrow();
        for c in list {
            if let Some(state) = limits.values().find(|s| s.id == c.table) {
                state.table.borrow_mut().correct(&c.key, c.tokens, c.share, now);
            }
        }
    }
}
