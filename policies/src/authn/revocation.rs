//! Token revocation: a denylist of JWT `jti`s and subjects kept in Redis, read by ONE background
//! thread per process every `sync_interval` and published to the shards without locks.
//!
//! Redis data model (two sorted sets; the score is the unix second until which the entry counts,
//! normally the token's `exp`, `+inf` for "until removed"):
//! `ZADD <prefix>jti <exp> <jti>` revokes one token, `ZADD <prefix>sub <until> <sub>` every token
//! of a subject. The thread reads the live members (`ZRANGEBYSCORE <key> <now - grace> +inf`);
//! it never writes. When Redis is unreachable the last list read stays in force (logged once per
//! outage).
//!
//! Publication: the thread stores a new `Denylist` in an `ArcSwap` and then bumps an atomic
//! generation; each shard compares the generation (one atomic load per check) and takes its own
//! `Arc` copy only when it moved.
//!
//! Owns: the thread, its Redis connection and the shared snapshot. Must not: run on a shard, write
//! to Redis, or decide what a revoked token means (the authn filter answers 401).

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use portcullis_core::config::RevocationConfig;

use super::cache::unix_now;
use crate::redis::{Client, Cmd, Target, Value, key_slot};

/// Entries stay in force this long past their score (covers issuers' `exp` leeway).
const GRACE_SECS: u64 = 300;

/// One snapshot of the denylist.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Denylist {
    jti: HashSet<Box<[u8]>>,
    sub: HashSet<Box<[u8]>>,
}

impl Denylist {
    /// True when the token id or the subject is listed.
    pub fn revoked(&self, jti: Option<&[u8]>, sub: Option<&[u8]>) -> bool {
        jti.is_some_and(|j| self.jti.contains(j)) || sub.is_some_and(|s| self.sub.contains(s))
    }

    /// Entries (`jti`s plus subjects).
    pub fn len(&self) -> usize {
        self.jti.len() + self.sub.len()
    }

    /// True when nothing is revoked.
    pub fn is_empty(&self) -> bool {
        self.jti.is_empty() && self.sub.is_empty()
    }
}

/// The process-wide denylist the thread keeps fresh.
#[derive(Debug)]
pub struct Revocations {
    /// The settings this thread was started with.
    pub cfg: RevocationConfig,
    list: ArcSwap<Denylist>,
    generation: AtomicU64,
    syncs: AtomicU64,
}

impl Revocations {
    /// Creates the shared list and starts its thread; waits (up to the timeout) for the first
    /// read so revocations hold from the first request when Redis is up.
    pub fn start(cfg: &RevocationConfig) -> Result<Arc<Revocations>, String> {
        let shared = Arc::new(Revocations {
            cfg: cfg.clone(),
            list: ArcSwap::from_pointee(Denylist::default()),
            generation: AtomicU64::new(0),
            syncs: AtomicU64::new(0),
        });
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let weak = Arc::downgrade(&shared);
        std::thread::Builder::new()
            .name("portcullis-revocation".to_owned())
            .spawn(move || run(&weak, ready_tx))
            .map_err(|e| format!("cannot start the revocation thread: {e}"))?;
        let _ = ready_rx.recv_timeout(cfg.timeout.0 * 3 + Duration::from_millis(500));
        Ok(shared)
    }

    /// The current snapshot (lock-free).
    pub fn current(&self) -> Arc<Denylist> {
        self.list.load_full()
    }

    /// Bumped each time a changed list is published.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Successful reads from Redis so far.
    pub fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }

    /// The Redis deployment this list lives in.
    fn target(&self) -> Target {
        let c = &self.cfg;
        Target::from_config(
            Some(c.redis.as_str()).filter(|r| !r.is_empty()),
            &c.cluster,
            c.username.as_deref(),
            c.password_env.as_deref(),
            c.password_file.as_deref(),
            c.tls_ca_file.as_deref(),
            c.timeout.0,
        )
    }

    /// One read of both sets (each routed to its slot's node on a cluster); publishes the list
    /// when it changed.
    fn sync(&self, client: &mut Client) -> io::Result<()> {
        let min = unix_now().saturating_sub(GRACE_SECS).to_string();
        let p = &self.cfg.key_prefix;
        let cmds: Vec<Cmd> = ["jti", "sub"]
            .iter()
            .map(|which| {
                let key = format!("{p}{which}");
                Cmd {
                    slot: key_slot(key.as_bytes()),
                    args: vec![
                        b"ZRANGEBYSCORE".to_vec(),
                        key.into_bytes(),
                        min.clone().into_bytes(),
                        b"+inf".to_vec(),
                    ],
                }
            })
            .collect();
        let mut replies = client.run(&cmds).into_iter();
        let mut next = || replies.next().unwrap_or_else(|| Err(io::Error::other("missing reply")));
        let jti = members(next()?)?;
        let sub = members(next()?)?;
        let list = Denylist { jti, sub };
        if **self.list.load() != list {
            tracing::info!(entries = list.len(), "revocation list updated");
            self.list.store(Arc::new(list));
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
        self.syncs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

fn members(v: Value) -> io::Result<HashSet<Box<[u8]>>> {
    match v {
        Value::Array(Some(items)) => Ok(items
            .into_iter()
            .filter_map(|i| match i {
                Value::Bulk(Some(b)) => Some(b.into_boxed_slice()),
                _ => None,
            })
            .collect()),
        Value::Array(None) => Ok(HashSet::new()),
        Value::Error(e) => Err(io::Error::other(e)),
        other => Err(io::Error::new(io::ErrorKind::InvalidData, format!("unexpected reply {other:?}"))),
    }
}

/// The thread: read, publish, sleep, until every shard has dropped the shared list.
fn run(shared: &Weak<Revocations>, ready: std::sync::mpsc::Sender<()>) {
    let Some(mut client) = shared.upgrade().map(|r| Client::new(r.target())) else { return };
    let mut down = false;
    let mut ready = Some(ready);
    loop {
        let Some(r) = shared.upgrade() else { return };
        match r.sync(&mut client) {
            Ok(()) if down => {
                down = false;
                tracing::info!(redis = %client.target().describe(), "revocation list reachable again");
            }
            Ok(()) => {}
            Err(e) => {
                if !down {
                    down = true;
                    tracing::warn!(redis = %client.target().describe(), error = %e, "cannot read the revocation list; keeping the last one");
                }
            }
        }
        if let Some(tx) = ready.take() {
            let _ = tx.send(());
        }
        let every = r.cfg.sync_interval.0;
        drop(r);
        std::thread::sleep(every);
    }
}

/// A shard's view: its own `Arc` of the snapshot, refreshed when the generation moves.
#[derive(Debug)]
pub(super) struct ShardDenylist {
    shared: Arc<Revocations>,
    seen: Cell<u64>,
    local: RefCell<Arc<Denylist>>,
}

impl ShardDenylist {
    /// A view of `shared` as of now.
    pub(super) fn new(shared: Arc<Revocations>) -> ShardDenylist {
        let seen = shared.generation();
        let local = shared.current();
        ShardDenylist { shared, seen: Cell::new(seen), local: RefCell::new(local) }
    }

    /// True when `jti` or `sub` is revoked (one atomic load when nothing changed).
    pub(super) fn revoked(&self, jti: Option<&[u8]>, sub: Option<&[u8]>) -> bool {
        let g = self.shared.generation();
        if g != self.seen.get() {
            *self.local.borrow_mut() = self.shared.current();
            self.seen.set(g);
        }
        let list = self.local.borrow();
        !list.is_empty() && list.revoked(jti, sub)
    }
}
