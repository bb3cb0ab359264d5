//! The sync thread beside the shards: every `sync_interval` it folds the shards' batches per
//! key, runs one atomic Lua script on Redis for the whole batch, and sends each shard the global
//! state of its keys. It owns reconnection with backoff and the health flag.
//!
//! Owns: the Redis connection, the Lua script, gateway-level aggregation, health transitions
//! (each logged once) and the hit counters. Must not: touch shard state (it only sends messages)
//! or ever block a shard (shards never wait for it).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use portcullis_core::config::RateLimitConfig;

use super::service::{Correction, HEALTH_DOWN, HEALTH_LOCAL, HEALTH_UP, Shared, ToSync, Usage, clock_ns};
use crate::redis::{Conn, Value};

/// The reconciliation script (one EVALSHA per batch).
const SCRIPT: &str = include_str!("script.lua");
/// Most keys per script call (bounds one call's time and reply size).
const MAX_KEYS_PER_CALL: usize = 2000;
/// Reconnect backoff bounds.
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// How long the sync thread sleeps when there is nothing to do.
const IDLE_WAIT: Duration = Duration::from_secs(1);

struct Settings {
    redis: Option<String>,
    interval: Duration,
    timeout: Duration,
    prefix: String,
    gateway: String,
    window_us: u64,
}

/// One key of the gateway-level batch: the sum over shards, and which shard tables asked.
struct Agg {
    limit: Arc<str>,
    key: Box<[u8]>,
    used: u64,
    demand: u64,
    interval: u64,
    tolerance: u64,
    parts: Vec<(u32, u64, u32)>,
}

struct Sync {
    s: Settings,
    rx: Receiver<ToSync>,
    shared: Arc<Shared>,
    replies: HashMap<u32, Sender<Vec<Correction>>>,
    conn: Option<Conn>,
    sha: String,
    backoff: Duration,
    next_attempt: Instant,
    down_since: Option<Instant>,
}

/// Starts the thread; with Redis configured, waits (up to the timeout) for the first connection
/// attempt so the health flag is meaningful before the gateway serves.
pub(crate) fn spawn(cfg: &RateLimitConfig, rx: Receiver<ToSync>, shared: Arc<Shared>) -> std::io::Result<()> {
    let interval = cfg.sync_interval.0.max(Duration::from_millis(1));
    let settings = Settings {
        redis: cfg.redis.clone(),
        interval,
        timeout: cfg.redis_timeout.0.max(Duration::from_millis(1)),
        prefix: cfg.key_prefix.clone(),
        gateway: format!("{}-{:016x}", std::process::id(), fastrand::u64(..)),
        window_us: u64::try_from((interval * 20).max(Duration::from_millis(200)).as_micros())
            .unwrap_or(u64::MAX),
    };
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let wait = settings.timeout + Duration::from_millis(500);
    let has_redis = settings.redis.is_some();
    std::thread::Builder::new().name("ratelimit-sync".into()).spawn(move || {
        let mut sync = Sync {
            s: settings,
            rx,
            shared,
            replies: HashMap::new(),
            conn: None,
            sha: String::new(),
            backoff: BACKOFF_MIN,
            next_attempt: Instant::now(),
            down_since: None,
        };
        if sync.s.redis.is_some() {
            sync.reconnect();
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
        let mut batch: HashMap<(Arc<str>, Box<[u8]>), Agg> = HashMap::new();
        loop {
            let tick = Instant::now();
            // Block while idle (no batches): no wake-ups on an idle gateway.
            let wait = if self.s.redis.is_some() && self.conn.is_none() {
                self.next_attempt.saturating_duration_since(tick).min(IDLE_WAIT)
            } else {
                IDLE_WAIT
            };
            match self.rx.recv_timeout(wait) {
                Ok(msg) => self.take(msg, &mut batch),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            while let Ok(msg) = self.rx.try_recv() {
                self.take(msg, &mut batch);
            }
            if self.s.redis.is_some() {
                if self.conn.is_none() && Instant::now() >= self.next_attempt {
                    self.reconnect();
                }
                if !batch.is_empty() {
                    if self.conn.is_some() {
                        self.reconcile(&mut batch);
                    } else {
                        self.shared.dropped_batches.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            batch.clear();
            // Pace: at most one reconciliation per interval.
            if let Some(rest) = self.s.interval.checked_sub(tick.elapsed()) {
                std::thread::sleep(rest);
            }
        }
    }

    fn take(&mut self, msg: ToSync, batch: &mut HashMap<(Arc<str>, Box<[u8]>), Agg>) {
        match msg {
            ToSync::Register { shard, replies } => {
                self.replies.insert(shard, replies);
            }
            ToSync::Batch { shard, usage, hits } => {
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
                        interval,
                        tolerance,
                        parts: Vec::new(),
                    });
                    agg.used += u64::from(used);
                    agg.demand += u64::from(demand);
                    agg.interval = interval;
                    agg.tolerance = tolerance;
                    agg.parts.push((shard, table, demand));
                }
            }
        }
    }

    fn reconnect(&mut self) {
        let Some(addr) = self.s.redis.clone() else { return };
        let attempt = Conn::connect(&addr, self.s.timeout).and_then(|mut c| {
            match c.command(&[b"SCRIPT".as_slice(), b"LOAD", SCRIPT.as_bytes()])? {
                Value::Bulk(Some(sha)) => Ok((c, String::from_utf8_lossy(&sha).into_owned())),
                other => Err(std::io::Error::other(format!("SCRIPT LOAD answered {other:?}"))),
            }
        });
        match attempt {
            Ok((conn, sha)) => {
                self.conn = Some(conn);
                self.sha = sha;
                self.backoff = BACKOFF_MIN;
                // Health first: the log line announces a state shards already see.
                self.shared.health.store(HEALTH_UP, Ordering::Relaxed);
                if let Some(since) = self.down_since.take() {
                    tracing::warn!(redis = %addr, down_ms = since.elapsed().as_millis() as u64, "rate limit: redis reachable again, global limits restored");
                } else {
                    tracing::info!(redis = %addr, "rate limit: connected to redis");
                }
            }
            Err(e) => self.failed(&format!("cannot connect: {e}")),
        }
    }

    fn failed(&mut self, why: &str) {
        self.conn = None;
        self.shared.redis_errors.fetch_add(1, Ordering::Relaxed);
        self.shared.health.store(HEALTH_DOWN, Ordering::Relaxed);
        if self.down_since.is_none() {
            self.down_since = Some(Instant::now());
            tracing::error!(
                redis = self.s.redis.as_deref().unwrap_or(""),
                "rate limit: redis unavailable ({why}); fail mode applies until it answers again"
            );
        }
        self.next_attempt = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }

    fn redis_key(&self, limit: &str, key: &[u8], suffix: &str) -> String {
        let mut k = String::with_capacity(self.s.prefix.len() + limit.len() + key.len() * 2 + 8);
        let _ = write!(k, "{}:{{{}:", self.s.prefix, limit);
        for b in key {
            let _ = write!(k, "{b:02x}");
        }
        k.push('}');
        k.push_str(suffix);
        k
    }

    fn reconcile(&mut self, batch: &mut HashMap<(Arc<str>, Box<[u8]>), Agg>) {
        let aggs: Vec<Agg> = batch.drain().map(|(_, a)| a).collect();
        let mut out: HashMap<u32, Vec<Correction>> = HashMap::new();
        for chunk in aggs.chunks(MAX_KEYS_PER_CALL) {
            let mut args: Vec<Vec<u8>> = Vec::with_capacity(5 + chunk.len() * 6);
            args.push(b"EVALSHA".to_vec());
            args.push(self.sha.clone().into_bytes());
            args.push((chunk.len() * 2).to_string().into_bytes());
            for a in chunk {
                args.push(self.redis_key(&a.limit, &a.key, ":tat").into_bytes());
                args.push(self.redis_key(&a.limit, &a.key, ":gw").into_bytes());
            }
            args.push(self.s.gateway.clone().into_bytes());
            args.push(self.s.window_us.to_string().into_bytes());
            for a in chunk {
                for n in [a.interval, a.tolerance, a.used, a.demand] {
                    args.push(n.to_string().into_bytes());
                }
            }
            let Some(conn) = self.conn.as_mut() else { return };
            let mut reply = conn.command(&args);
            if let Ok(Value::Error(e)) = &reply
                && e.starts_with("NOSCRIPT")
            {
                args[0] = b"EVAL".to_vec();
                args[1] = SCRIPT.as_bytes().to_vec();
                reply = conn.command(&args);
            }
            let rows = match reply {
                Ok(Value::Array(Some(rows))) if rows.len() == chunk.len() => rows,
                Ok(other) => return self.failed(&format!("unexpected script reply {other:?}")),
                Err(e) => return self.failed(&e.to_string()),
            };
            let now = clock_ns(Instant::now());
            self.shared.batches.fetch_add(1, Ordering::Relaxed);
            for (a, row) in chunk.iter().zip(rows) {
                let (lag_us, share_ppm) = match row {
                    Value::Array(Some(v)) => match v.as_slice() {
                        [Value::Int(l), Value::Int(s)] => (*l, *s),
                        _ => continue,
                    },
                    _ => continue,
                };
                let global_tat = now.saturating_add(u64::try_from(lag_us).unwrap_or(0).saturating_mul(1000));
                let gw_share = (share_ppm as f64 / 1e6).clamp(0.0, 1.0);
                let local_demand: u64 = a.parts.iter().map(|p| u64::from(p.2)).sum();
                for &(shard, table, demand) in &a.parts {
                    let share = if local_demand == 0 {
                        gw_share / a.parts.len() as f64
                    } else {
                        gw_share * demand as f64 / local_demand as f64
                    };
                    out.entry(shard).or_default().push(Correction {
                        table,
                        key: a.key.clone(),
                        global_tat,
                        share,
                    });
                }
            }
        }
        for (shard, list) in out {
            if let Some(tx) = self.replies.get(&shard) {
                let _ = tx.send(list);
            }
        }
    }
}
