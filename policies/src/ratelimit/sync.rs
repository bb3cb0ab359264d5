//! The sync thread beside the shards: every `sync_interval` it folds the shards' batches per key,
//! charges them to the global buckets (Redis: the reconciliation script, one call per cluster
//! slot; no Redis, or Redis down with fail-open: this process's own buckets in `LocalStore`), and
//! answers every shard that sent a batch with the global state of its keys, split by demand.
//!
//! Owns: gateway-level aggregation, the split of a key's allowance among shards, health
//! transitions (each logged once), probing a down Redis, and the hit counters. Must not: touch
//! shard state (it only sends messages) or ever block a shard (shards never wait for it).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use portcullis_core::config::RateLimitConfig;

use super::gcra::Gcra;
use super::local_store::LocalStore;
use super::messages::{
    Correction, HEALTH_DOWN, HEALTH_LOCAL, HEALTH_UP, Reply, Shared, ToSync, Usage, clock_ns,
};
use super::redis_store::{KeyIn, RedisStore};
use crate::redis::{Client, Target};

/// Probe backoff bounds while Redis is down and no traffic asks for it.
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// How long the sync thread sleeps when there is nothing to do.
const IDLE_WAIT: Duration = Duration::from_secs(1);

/// How long a gateway's (and a shard's) demand counts towards its share of a key.
pub(crate) fn demand_window(interval: Duration) -> Duration {
    (interval * 20).max(Duration::from_millis(200))
}

/// One key of the gateway-level batch: the sum over shards, and which shard tables asked.
struct Agg {
    limit: Arc<str>,
    key: Box<[u8]>,
    used: u64,
    demand: u64,
    gcra: Gcra,
    /// (shard, table, demand), one entry per shard table.
    parts: Vec<(u32, u64, u64)>,
}

/// (limit, key): how the sync thread names one key.
type KeyId = (Arc<str>, Box<[u8]>);

type Batch = HashMap<KeyId, Agg>;

/// A shard table that recently asked for a key: it holds part of the key's allowance.
struct Holder {
    shard: u32,
    table: u64,
    /// Demand, decayed over the demand window.
    weight: f64,
    /// When it last asked (ns) and when `weight` was last decayed.
    last: u64,
    decayed: u64,
}

/// Sweep holders of idle keys at most this often (ns).
const SWEEP_EVERY_NS: u64 = 1_000_000_000;

struct Sync {
    interval: Duration,
    /// Gateways sharing the limits: each local admission counts this many times locally.
    charge: u64,
    rx: Receiver<ToSync>,
    shared: Arc<Shared>,
    replies: HashMap<u32, Sender<Reply>>,
    redis: Option<RedisStore>,
    local: LocalStore,
    /// Per key: the shard tables holding part of its allowance (asked within the window).
    holders: HashMap<KeyId, Vec<Holder>>,
    window_ns: u64,
    last_sweep: u64,
    down_since: Option<Instant>,
    next_probe: Instant,
    backoff: Duration,
}

/// Starts the thread; with Redis configured, waits (up to the timeout) for the first probe so
/// the health flag is meaningful before the gateway serves.
pub(crate) fn spawn(cfg: &RateLimitConfig, rx: Receiver<ToSync>, shared: Arc<Shared>) -> std::io::Result<()> {
    let interval = cfg.sync_interval.0.max(Duration::from_millis(1));
    let redis = cfg.has_redis().then(|| {
        let target = Target::from_config(
            cfg.redis.as_deref(),
            &cfg.redis_cluster,
            cfg.redis_username.as_deref(),
            cfg.redis_password_env.as_deref(),
            cfg.redis_password_file.as_deref(),
            cfg.redis_tls_ca_file.as_deref(),
            cfg.redis_timeout.0,
        );
        let gateway = format!("{}-{:016x}", std::process::id(), fastrand::u64(..));
        let window_us = u64::try_from(demand_window(interval).as_micros()).unwrap_or(u64::MAX);
        RedisStore::new(Client::new(target), cfg.key_prefix.clone(), gateway, window_us)
    });
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let wait = cfg.redis_timeout.0 * 4 + Duration::from_millis(500);
    let has_redis = redis.is_some();
    let mut sync = Sync {
        interval,
        charge: u64::from(cfg.gateways.max(1)),
        rx,
        shared,
        replies: HashMap::new(),
        redis,
        local: LocalStore::default(),
        holders: HashMap::new(),
        window_ns: u64::try_from(demand_window(interval).as_nanos()).unwrap_or(u64::MAX),
        last_sweep: 0,
        down_since: None,
        next_probe: Instant::now(),
        backoff: BACKOFF_MIN,
    };
    std::thread::Builder::new().name("ratelimit-sync".into()).spawn(move || {
        if sync.redis.is_some() {
            sync.probe();
        } else {
            sync.shared.health.store(HEALTH_LOCAL, Ordering::Relaxed);
        }
        let _ = ready_tx.send(());
        sync.run();
    })?;
    if has_redis {
        let _ = ready_rx.recv_timeout(wait);
    }
    Ok(())
}

impl Sync {
    fn run(&mut self) {
        let mut batch: Batch = HashMap::new();
        let mut senders: Vec<u32> = Vec::new();
        loop {
            let tick = Instant::now();
            // Block while idle (no batches): no wake-ups on an idle gateway.
            let wait = if self.redis.is_some() && self.down_since.is_some() {
                self.next_probe.saturating_duration_since(tick).min(IDLE_WAIT)
            } else {
                IDLE_WAIT
            };
            match self.rx.recv_timeout(wait) {
                Ok(msg) => self.take(msg, &mut batch, &mut senders),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            while let Ok(msg) = self.rx.try_recv() {
                self.take(msg, &mut batch, &mut senders);
            }
            if batch.is_empty() {
                if self.down_since.is_some() && Instant::now() >= self.next_probe {
                    self.probe();
                }
            } else {
                self.reconcile(&mut batch, &mut senders);
            }
            // Every batch is answered (possibly with nothing): a shard sends its next one then.
            for shard in senders.drain(..) {
                if let Some(tx) = self.replies.get(&shard) {
                    let _ = tx.send(Reply { answer: true, list: Vec::new() });
                }
            }
            batch.clear();
            // Pace: at most one reconciliation per interval.
            if let Some(rest) = self.interval.checked_sub(tick.elapsed()) {
                std::thread::sleep(rest);
            }
        }
    }

    fn take(&mut self, msg: ToSync, batch: &mut Batch, senders: &mut Vec<u32>) {
        match msg {
            ToSync::Register { shard, replies } => {
                self.replies.insert(shard, replies);
            }
            ToSync::Batch { shard, usage, hits } => {
                if !senders.contains(&shard) {
                    senders.push(shard);
                }
                if !hits.is_empty()
                    && let Ok(mut h) = self.shared.hits.lock()
                {
                    for (route, limit, n) in hits {
                        *h.entry((route.to_string(), limit.to_string())).or_default() += n;
                    }
                }
                for Usage { table, limit, key, used, demand, interval, tolerance } in usage {
                    let agg = batch.entry((limit.clone(), key.clone())).or_insert_with(|| Agg {
                        limit,
                        key,
                        used: 0,
                        demand: 0,
                        gcra: Gcra { interval, tolerance },
                        parts: Vec::new(),
                    });
                    agg.used += u64::from(used);
                    agg.demand += u64::from(demand);
                    agg.gcra = Gcra { interval: interval.max(1), tolerance };
                    match agg.parts.iter_mut().find(|p| p.0 == shard && p.1 == table) {
                        Some(p) => p.2 += u64::from(demand),
                        None => agg.parts.push((shard, table, u64::from(demand))),
                    }
                }
            }
        }
    }

    /// Checks Redis answers (every master of a cluster) and sets the health.
    fn probe(&mut self) {
        let Some(store) = self.redis.as_mut() else { return };
        match store.probe() {
            Ok(()) => self.redis_ok(),
            Err(e) => self.redis_failed(&e.to_string()),
        }
    }

    fn redis_ok(&mut self) {
        self.backoff = BACKOFF_MIN;
        let was = self.shared.health.swap(HEALTH_UP, Ordering::Relaxed);
        let redis = self.redis.as_ref().map(RedisStore::describe).unwrap_or_default();
        if let Some(since) = self.down_since.take() {
            tracing::warn!(redis = %redis, down_ms = since.elapsed().as_millis() as u64, "rate limit: redis reachable again, global limits restored");
        } else if was != HEALTH_UP {
            tracing::info!(redis = %redis, "rate limit: connected to redis");
        }
    }

    fn redis_failed(&mut self, why: &str) {
        self.shared.redis_errors.fetch_add(1, Ordering::Relaxed);
        self.shared.health.store(HEALTH_DOWN, Ordering::Relaxed);
        if self.down_since.is_none() {
            self.down_since = Some(Instant::now());
            let redis = self.redis.as_ref().map(RedisStore::describe).unwrap_or_default();
            tracing::error!(
                redis = %redis,
                "rate limit: redis unavailable ({why}); fail mode applies until it answers again"
            );
        }
        self.next_probe = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }

    fn reconcile(&mut self, batch: &mut Batch, senders: &mut Vec<u32>) {
        let aggs: Vec<Agg> = batch.drain().map(|(_, a)| a).collect();
        // Per key: (requests this gateway may admit, its share of the rate), None = not known.
        let mut global: Vec<Option<(f64, f64)>> = vec![None; aggs.len()];
        if let Some(store) = self.redis.as_mut() {
            let keys: Vec<KeyIn<'_>> = aggs
                .iter()
                .map(|a| KeyIn {
                    limit: &a.limit,
                    key: &a.key,
                    interval: a.gcra.interval,
                    tolerance: a.gcra.tolerance,
                    used: a.used,
                    demand: a.demand,
                })
                .collect();
            let (outs, error) = store.reconcile(&keys);
            let now = clock_ns(Instant::now());
            for ((a, out), g) in aggs.iter().zip(outs).zip(global.iter_mut()) {
                if let Some((lag_us, share_ppm)) = out {
                    let tat = now.saturating_add(u64::try_from(lag_us).unwrap_or(0).saturating_mul(1000));
                    let avail = a.gcra.available(tat, now);
                    let share = (share_ppm as f64 / 1e6).clamp(0.0, 1.0);
                    // At least one request when the global bucket has one (a small share would
                    // otherwise wait for its refill); the debt it may cause is repaid.
                    *g = Some(((share * avail).max(avail.min(1.0)), share.max(1e-6)));
                }
            }
            match error {
                None => {
                    self.shared.batches.fetch_add(1, Ordering::Relaxed);
                    if self.down_since.is_some() || self.shared.health.load(Ordering::Relaxed) != HEALTH_UP {
                        self.redis_ok();
                    }
                }
                Some(e) => {
                    self.shared.dropped_batches.fetch_add(1, Ordering::Relaxed);
                    self.redis_failed(&e);
                }
            }
        }
        // No Redis, or this key's Redis call failed: this process's own buckets.
        let now = clock_ns(Instant::now());
        let charge = self.charge;
        for (a, g) in aggs.iter().zip(global.iter_mut()) {
            if g.is_none() {
                let tat = self.local.charge(&a.limit, &a.key, a.gcra.interval, a.used, charge, now);
                *g = Some((a.gcra.available(tat, now) / charge as f64, 1.0 / charge as f64));
            }
        }
        let mut out: HashMap<u32, Vec<Correction>> = HashMap::new();
        let window = self.window_ns;
        if now.saturating_sub(self.last_sweep) >= SWEEP_EVERY_NS {
            self.last_sweep = now;
            self.holders.retain(|_, hs| hs.iter().any(|h| now.saturating_sub(h.last) <= window));
        }
        for (a, g) in aggs.iter().zip(global) {
            let Some((tokens, share)) = g else { continue };
            let hs = self.holders.entry((a.limit.clone(), a.key.clone())).or_default();
            hs.retain(|h| now.saturating_sub(h.last) <= window);
            for h in hs.iter_mut() {
                let dt = now.saturating_sub(h.decayed) as f64;
                h.weight *= (-dt / window as f64).exp();
                h.decayed = now;
            }
            for &(shard, table, demand) in &a.parts {
                match hs.iter_mut().find(|h| h.shard == shard && h.table == table) {
                    Some(h) => {
                        h.weight += demand as f64;
                        h.last = now;
                    }
                    None => hs.push(Holder { shard, table, weight: demand as f64, last: now, decayed: now }),
                }
            }
            split(&a.key, hs, tokens, share, &mut out);
        }
        for (shard, list) in out {
            let answer = senders.contains(&shard);
            if let Some(tx) = self.replies.get(&shard) {
                let _ = tx.send(Reply { answer, list });
            }
            senders.retain(|s| *s != shard);
        }
    }
}

/// Splits a gateway's `tokens` (requests it may admit now) and `share` (of the key's rate) among
/// the shard tables that asked, in proportion to their demand. Whole requests go by largest
/// remainder, so the shards together hold exactly `tokens` (a shard holds a whole request rather
/// than every shard holding a fraction of one).
fn split(key: &[u8], holders: &[Holder], tokens: f64, share: f64, out: &mut HashMap<u32, Vec<Correction>>) {
    let n = holders.len();
    if n == 0 {
        return;
    }
    let total: f64 = holders.iter().map(|h| h.weight).sum();
    let frac: Vec<f64> =
        holders.iter().map(|h| if total <= 0.0 { 1.0 / n as f64 } else { h.weight / total }).collect();
    let mut mine: Vec<f64> = frac.iter().map(|f| tokens * f).collect();
    if tokens >= 1.0 {
        let whole = tokens.floor();
        let rest = tokens - whole;
        let exact: Vec<f64> = frac.iter().map(|f| whole * f).collect();
        let mut base: Vec<f64> = exact.iter().map(|e| e.floor()).collect();
        let left = (whole - base.iter().sum::<f64>()).round().max(0.0) as usize;
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&x, &y| (exact[y] - base[y]).total_cmp(&(exact[x] - base[x])));
        for &i in order.iter().take(left) {
            base[i] += 1.0;
        }
        mine = base.iter().zip(&frac).map(|(b, f)| b + rest * f).collect();
    }
    for ((h, f), tokens) in holders.iter().zip(&frac).zip(mine) {
        out.entry(h.shard).or_default().push(Correction {
            table: h.table,
            key: key.into(),
            tokens,
            share: share * f,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holders(parts: &[(u32, u64)]) -> Vec<Holder> {
        parts
            .iter()
            .map(|&(shard, d)| Holder { shard, table: 1, weight: d as f64, last: 0, decayed: 0 })
            .collect()
    }

    fn tokens(out: &HashMap<u32, Vec<Correction>>, shard: u32) -> f64 {
        out[&shard][0].tokens
    }

    #[test]
    fn split_gives_whole_requests_and_sums_to_the_allowance() {
        let mut out = HashMap::new();
        split(b"k", &holders(&[(0, 1), (1, 1), (2, 1)]), 2.5, 1.0, &mut out);
        let t: Vec<f64> = (0..3).map(|s| tokens(&out, s)).collect();
        assert!((t.iter().sum::<f64>() - 2.5).abs() < 1e-9, "{t:?}");
        assert_eq!(t.iter().filter(|x| **x >= 1.0).count(), 2, "two whole requests: {t:?}");
        let mut out = HashMap::new();
        split(b"k", &holders(&[(0, 3), (1, 1)]), 4.0, 0.5, &mut out);
        assert_eq!((tokens(&out, 0), tokens(&out, 1)), (3.0, 1.0));
        assert!((out[&0][0].share - 0.375).abs() < 1e-9);
        let mut out = HashMap::new();
        split(b"k", &holders(&[(0, 1), (1, 1)]), -2.0, 1.0, &mut out);
        assert_eq!((tokens(&out, 0), tokens(&out, 1)), (-1.0, -1.0), "a debt is shared too");
    }
}
