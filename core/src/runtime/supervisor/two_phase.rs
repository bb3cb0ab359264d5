//! The two-phase apply of a config generation: build it on the control thread, `Prepare` it on
//! every shard, `Commit` only when every shard has it, otherwise `Abort` it everywhere.
//!
//! Owns: that protocol and its deadline. Must not: load or validate config text (the callers in
//! the supervisor do) or report the outcome (the supervisor's `finish_reload` does).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::{self, Config};
use crate::runtime::shard::{Control, Generation, ShardEvent};
use crate::runtime::status::RunningConfig;

use super::Supervisor;

/// How long shards get to prepare (or commit) a generation before the reload is abandoned.
const SHARD_DEADLINE: Duration = Duration::from_secs(10);

impl<S: Send + Sync + 'static> Supervisor<S> {
    /// Builds a validated config here, prepares it on every shard and commits it only when every
    /// shard has it; otherwise aborts it everywhere and returns every error (on its line when
    /// the source text is known). The running generation is untouched on error.
    pub(super) fn apply(
        &mut self,
        mut cfg: Config,
        text: Option<Arc<str>>,
        source: Arc<str>,
    ) -> Result<u64, config::ConfigErrors> {
        let old = &self.current.config;
        let same_listeners = cfg.listeners.len() == old.listeners.len()
            && cfg.listeners.iter().zip(&old.listeners).all(|(a, b)| a.bind == b.bind && a.name == b.name);
        if !same_listeners {
            tracing::warn!("listener changes need a restart; keeping the running listeners");
            cfg.listeners = old.listeners.clone();
        }
        if cfg.server.shards != old.server.shards || cfg.server.driver != old.server.driver {
            tracing::warn!("server.shards and server.driver changes need a restart");
        }
        let admin_bind = |c: &Config| c.admin.as_ref().map(|a| a.bind.clone());
        if admin_bind(&cfg) != admin_bind(old) {
            tracing::warn!("[admin] bind changes need a restart; the admin listener stays where it is");
        }
        if cfg.access_log.queue != old.access_log.queue {
            tracing::warn!("access_log.queue changes need a restart");
        }
        let located = |errors: Vec<String>| match text.as_deref() {
            Some(t) => config::locate(t, &source, errors),
            None => config::ConfigErrors(
                errors
                    .into_iter()
                    .map(|message| config::ConfigError {
                        file: source.to_string(),
                        path: String::new(),
                        line: None,
                        message,
                    })
                    .collect(),
            ),
        };
        let cfg = Arc::new(cfg);
        let shared = (self.compile)(&cfg).map_err(|e| located(vec![e]))?;
        let next = Arc::new(Generation { id: self.current.id + 1, config: cfg, shared });
        // Phase 1: every shard builds the generation beside the running one.
        while self.events.try_recv().is_ok() {}
        for tx in &self.senders {
            let _ = tx.try_send(Control::Prepare(next.clone()));
        }
        let (prepared, refusals) = self.collect(next.id, false);
        if prepared < self.senders.len() {
            for tx in &self.senders {
                let _ = tx.try_send(Control::Abort(next.id));
            }
            let mut errors: Vec<String> = refusals;
            let silent = self.senders.len() - prepared - errors.len();
            if silent > 0 {
                errors.push(format!(
                    "{silent} shard(s) did not prepare the generation within {SHARD_DEADLINE:?}"
                ));
            }
            tracing::error!(
                generation = next.id,
                "generation {} prepared on {prepared}/{} shards: aborted on every shard",
                next.id,
                self.senders.len()
            );
            return Err(located(errors));
        }
        // Phase 2: every shard has it; switch them all.
        for tx in &self.senders {
            let _ = tx.try_send(Control::Commit(next.id));
        }
        let (committed, _) = self.collect(next.id, true);
        if committed < self.senders.len() {
            tracing::warn!(generation = next.id, committed, "not every shard confirmed the commit in time");
        }
        self.current = next;
        self.status.applied(RunningConfig {
            generation: self.current.id,
            config: self.current.config.clone(),
            text,
            source,
        });
        tracing::info!(
            generation = self.current.id,
            "config generation {} applied on {committed}/{} shards",
            self.current.id,
            self.senders.len()
        );
        Ok(self.current.id)
    }

    /// Waits (up to [`SHARD_DEADLINE`]) for every shard's answer about `generation`: `Prepared`
    /// events, or `Applied` ones when `commit`. Returns how many succeeded and each refusal
    /// (`"shard N: reason"`).
    fn collect(&self, generation: u64, commit: bool) -> (usize, Vec<String>) {
        let mut ok = 0;
        let mut refusals = Vec::new();
        let deadline = Instant::now() + SHARD_DEADLINE;
        while ok + refusals.len() < self.senders.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            let answer = match self.events.recv_timeout(left) {
                Ok(ShardEvent::Prepared { shard, generation: g, error }) if !commit && g == generation => {
                    Some((shard, error))
                }
                Ok(ShardEvent::Applied { shard, generation: g }) if commit && g == generation => {
                    Some((shard, None))
                }
                Ok(_) => None,
                Err(_) => break,
            };
            match answer {
                Some((_, None)) => ok += 1,
                Some((shard, Some(e))) => {
                    tracing::error!(shard, "shard refused generation {generation}: {e}");
                    refusals.push(e);
                }
                None => {}
            }
        }
        (ok, refusals)
    }
}
