//! The etcd watcher: a control thread that keeps one gateway on the newest revision of its
//! prefix. It reads the prefix whole, hands each new revision to the control loop (two-phase
//! apply), records the committed one in the state directory, then watches for the next change;
//! when etcd goes away it keeps the running config and reconnects with backoff, trying every
//! endpoint.
//!
//! Owns: that loop and its backoff. Must not: run on a shard, or apply a config other than
//! through the control loop.

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::{Etcd, EtcdSpec, Kv, Report, Reporter, Revision, Snapshot, StateDir};
use crate::runtime::supervisor::{Command, SourceJob};

/// Shortest and longest wait between reconnection attempts.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(2));

/// Starts the watcher thread. `applied` is what the gateway serves now: the keys of the
/// revision it started on when they came from etcd (`None` after a start from the state
/// directory, so the first successful read is applied). `report` is what the gateway serves
/// now; every applied or refused revision updates it and hands it to `reporter`, when given.
pub fn spawn_watcher(
    spec: EtcdSpec,
    state: StateDir,
    mut client: Etcd,
    applied: Option<(i64, Vec<Kv>)>,
    commands: mpsc::Sender<Command>,
    (report, reporter): (Report, Option<Reporter>),
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name("etcd-watch".into()).spawn(move || {
        let mut w = Watcher { spec, state, commands, seen: applied, report, reporter };
        w.run(&mut client);
    })
}

struct Watcher {
    spec: EtcdSpec,
    state: StateDir,
    commands: mpsc::Sender<Command>,
    /// The last revision handed to the control loop (applied or refused) and its keys.
    seen: Option<(i64, Vec<Kv>)>,
    /// What this gateway serves, as reported to the fleet.
    report: Report,
    reporter: Option<Reporter>,
}

impl Watcher {
    fn run(&mut self, client: &mut Etcd) {
        let range = self.spec.config_range();
        let mut backoff = BACKOFF.0;
        let mut down = false;
        loop {
            // Catch up: the newest revision, whole.
            let snap = match client.range_keys(&range, None) {
                Ok(s) => s,
                Err(e) => {
                    if !down {
                        tracing::warn!("etcd: {e}; keeping the running config, reconnecting");
                        down = true;
                    }
                    client.rotate();
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(BACKOFF.1);
                    continue;
                }
            };
            if down {
                // `down` is set again by the next failure, below, before it is read.
                tracing::info!(
                    endpoint = client.endpoint(),
                    revision = snap.revision,
                    "etcd reachable again"
                );
            }
            backoff = BACKOFF.0;
            let from = snap.revision + 1;
            if !self.offer(snap) {
                return;
            }
            let mut watch = match client.watch(&range, from) {
                Ok(w) => w,
                Err(e) => {
                    tracing::warn!("etcd watch: {e}; reconnecting");
                    down = true;
                    client.rotate();
                    std::thread::sleep(backoff);
                    continue;
                }
            };
            let opened = std::time::Instant::now();
            loop {
                let rev = match watch.next_change() {
                    Ok(rev) => rev,
                    Err(e) if opened.elapsed() >= super::etcd::WATCH_RENEW => {
                        tracing::debug!("etcd watch renewed after {:?}: {e}", super::etcd::WATCH_RENEW);
                        break;
                    }
                    Err(e) => {
                        tracing::warn!("etcd watch: {e}; reconnecting");
                        down = true;
                        break;
                    }
                };
                match client.range_keys(&range, Some(rev)) {
                    Ok(snap) => {
                        if !self.offer(snap) {
                            return;
                        }
                    }
                    Err(e) => {
                        tracing::warn!("etcd: {e}; reconnecting");
                        down = true;
                        break;
                    }
                }
            }
        }
    }

    /// Applies `snap` when its keys differ from the last revision handed over; false when the
    /// control loop is gone (the gateway is stopping).
    fn offer(&mut self, snap: Snapshot) -> bool {
        let keys = self.spec.config_kvs(&snap);
        if self.seen.as_ref().is_some_and(|(_, k)| *k == keys) {
            return true;
        }
        let rev = self.spec.config_revision(&snap, self.seen.as_ref().map(|(r, _)| *r));
        self.seen = Some((rev, keys));
        let revision = match Revision::from_snapshot(&self.spec, &self.state, &snap, rev) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(revision = rev, "etcd revision {rev} refused: {e}; the running config stays");
                self.publish(Err(format!("revision {rev}: {e}")));
                return true;
            }
        };
        let (tx, rx) = mpsc::channel();
        let state = self.state.clone();
        let files_prefix = self.spec.files_prefix();
        let job = SourceJob(Box::new(move |target| {
            let result =
                target.apply_source(&revision.text, &revision.name, &mut revision.rebase(&files_prefix));
            match &result {
                Ok(generation) => {
                    if let Err(e) = state.commit(revision.rev) {
                        tracing::error!(
                            "cannot record revision {} in the state directory: {e}",
                            revision.rev
                        );
                    }
                    tracing::info!(
                        revision = revision.rev,
                        generation,
                        "etcd revision {} applied as generation {generation}",
                        revision.rev
                    );
                }
                Err(errors) => {
                    state.discard(revision.rev);
                    tracing::error!(
                        revision = revision.rev,
                        "etcd revision {} refused ({} error(s)); the running config stays",
                        revision.rev,
                        errors.len()
                    );
                }
            }
            let _ = tx.send(match result {
                Ok(generation) => Ok((revision.rev, generation)),
                Err(errors) => Err(format!(
                    "revision {}: {}",
                    revision.rev,
                    errors.0.first().map(ToString::to_string).unwrap_or_default()
                )),
            });
        }));
        if self.commands.send(Command::Source(job)).is_err() {
            return false;
        }
        // One revision at a time: wait until the control loop has applied or refused it.
        match rx.recv() {
            Ok(result) => {
                self.publish(result);
                true
            }
            Err(_) => false,
        }
    }

    /// Updates the fleet report with the outcome of a revision.
    fn publish(&mut self, outcome: Result<(i64, u64), String>) {
        match outcome {
            Ok((revision, generation)) => {
                self.report.revision = revision;
                self.report.generation = generation;
                self.report.applied_unix = crate::runtime::unix_now();
                self.report.error = None;
            }
            Err(e) => self.report.error = Some(e),
        }
        if let Some(r) = &self.reporter {
            r.update(self.report.clone());
        }
    }
}
