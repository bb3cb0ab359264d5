//! `AuthService`: the process-wide auth background thread and the shared state it keeps fresh:
//! JWKS key sets fetched from `jwks_uri`s (scheduled refreshes honouring `Cache-Control`, and
//! single-flight re-fetches on unknown `kid`s), hot-reloaded API key files, and the handle on
//! the revocation list (its own thread, see `revocation`).
//!
//! Owns: the thread, its schedule and the `ArcSwap`s shards read without locks. Must not: be
//! called on the request path except to read a key set (`ArcSwap::load`), read a generation
//! counter, or send a re-fetch request for an unknown `kid` (rare, rate-limited per shard).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use portcullis_core::config::{ApiKeyEntry, JwksRefreshConfig, RevocationConfig};

use super::fetch::Fetcher;
use super::keys::KeySet;
use super::revocation::Revocations;

/// The key set of one `jwks_uri`, shared by every shard and generation that uses it.
#[derive(Debug)]
pub struct RemoteKeys {
    /// The JWKS address.
    pub uri: String,
    ca_file: Option<String>,
    refresh: JwksRefreshConfig,
    keys: ArcSwap<KeySet>,
    fetches: AtomicU64,
    generation: AtomicU64,
}

impl RemoteKeys {
    /// The current key set (lock-free).
    pub fn current(&self) -> Arc<KeySet> {
        self.keys.load_full()
    }

    /// Successful and failed fetch attempts so far.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// Bumped each time a fetch installs a new key set.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Least time between two unknown-`kid` re-fetches.
    pub fn unknown_kid_interval(&self) -> Duration {
        self.refresh.unknown_kid_interval.0
    }
}

/// One API key's record (thread-safe; shards derive their own `Identity` from it).
pub type ApiKeyRecord = ApiKeyEntry;

/// The keys of one API keys file, reloaded when the file changes.
#[derive(Debug)]
pub struct KeysFile {
    /// The file.
    pub path: PathBuf,
    interval: Duration,
    table: ArcSwap<Vec<ApiKeyRecord>>,
    generation: AtomicU64,
    /// Modification time and size of the file as last read (only the auth thread and the
    /// first load touch it).
    stamp: Mutex<Option<(SystemTime, u64)>>,
}

impl KeysFile {
    /// The keys as last read (lock-free).
    pub fn current(&self) -> Arc<Vec<ApiKeyRecord>> {
        self.table.load_full()
    }

    /// Bumped on every successful reload.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Reads and parses the file now; on error the previous keys stay.
    fn reload(&self) -> Result<(), String> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct File {
            #[serde(default)]
            keys: Vec<ApiKeyEntry>,
        }
        let before = stamp(&self.path);
        if let Ok(mut s) = self.stamp.lock() {
            *s = before;
        }
        let text = std::fs::read_to_string(&self.path).map_err(|e| e.to_string())?;
        let file: File = toml::from_str(&text).map_err(|e| e.to_string())?;
        for (i, k) in file.keys.iter().enumerate() {
            if !portcullis_core::config::is_sha256_hex(&k.sha256) || k.consumer.is_empty() {
                return Err(format!(
                    "keys[{i}]: sha256 must be 64 lowercase hex digits and consumer non-empty"
                ));
            }
        }
        self.table.store(Arc::new(file.keys));
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }
}

/// A message to the background thread.
#[derive(Debug)]
pub enum Msg {
    /// Fetch this issuer's keys on its schedule from now on.
    Watch(Weak<RemoteKeys>),
    /// A shard saw an unknown `kid`: re-fetch (at most once per interval) and drop the sender
    /// when done, which wakes every waiter.
    Refetch(Weak<RemoteKeys>, async_channel::Sender<()>),
    /// Watch this API keys file.
    WatchFile(Weak<KeysFile>),
}

#[derive(Debug, Default)]
struct Registry {
    remotes: HashMap<String, Weak<RemoteKeys>>,
    files: HashMap<PathBuf, Weak<KeysFile>>,
    revocations: Weak<Revocations>,
    tx: Option<Sender<Msg>>,
}

/// Handle on the auth background thread (cheap to clone, `Send + Sync`). The thread starts
/// with the first issuer or keys file registered, so a gateway without auth runs none.
#[derive(Clone, Debug, Default)]
pub struct AuthService {
    registry: Arc<Mutex<Registry>>,
}

impl AuthService {
    /// A service with no thread yet.
    pub fn new() -> AuthService {
        AuthService::default()
    }

    fn sender(reg: &mut Registry) -> Result<Sender<Msg>, String> {
        if let Some(tx) = &reg.tx {
            return Ok(tx.clone());
        }
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("portcullis-auth".to_owned())
            .spawn(move || run(rx))
            .map_err(|e| format!("cannot start the auth thread: {e}"))?;
        reg.tx = Some(tx.clone());
        Ok(tx)
    }

    /// The shared key set of `uri` (created and scheduled on first use; later generations and
    /// other shards get the same one), plus a sender for re-fetch requests. Build time only.
    pub fn remote(
        &self,
        uri: &str,
        ca_file: Option<&str>,
        refresh: &JwksRefreshConfig,
    ) -> Result<(Arc<RemoteKeys>, Sender<Msg>), String> {
        let mut reg = self.registry.lock().map_err(|_| "auth registry poisoned".to_owned())?;
        let id = format!("{uri}\n{ca_file:?}\n{refresh:?}");
        let tx = Self::sender(&mut reg)?;
        if let Some(existing) = reg.remotes.get(&id).and_then(Weak::upgrade) {
            return Ok((existing, tx));
        }
        if let Some(ca) = ca_file {
            std::fs::metadata(ca).map_err(|e| format!("cannot read {ca}: {e}"))?;
        }
        let remote = Arc::new(RemoteKeys {
            uri: uri.to_owned(),
            ca_file: ca_file.map(str::to_owned),
            refresh: refresh.clone(),
            keys: ArcSwap::from_pointee(KeySet::default()),
            fetches: AtomicU64::new(0),
            generation: AtomicU64::new(0),
        });
        reg.remotes.retain(|_, w| w.strong_count() > 0);
        reg.remotes.insert(id, Arc::downgrade(&remote));
        tx.send(Msg::Watch(Arc::downgrade(&remote))).map_err(|_| "the auth thread is gone".to_owned())?;
        Ok((remote, tx))
    }

    /// The process-wide revocation list for `cfg` (its thread starts on first use; later
    /// generations with the same settings share it). Build time only.
    pub fn revocations(&self, cfg: &RevocationConfig) -> Result<Arc<Revocations>, String> {
        let mut reg = self.registry.lock().map_err(|_| "auth registry poisoned".to_owned())?;
        if let Some(existing) = reg.revocations.upgrade().filter(|r| r.cfg == *cfg) {
            return Ok(existing);
        }
        let r = Revocations::start(cfg)?;
        reg.revocations = Arc::downgrade(&r);
        Ok(r)
    }

    /// The shared, watched API keys file at `path`, read once now so the first requests see it.
    pub fn keys_file(&self, path: &str, interval: Duration) -> Result<Arc<KeysFile>, String> {
        let mut reg = self.registry.lock().map_err(|_| "auth registry poisoned".to_owned())?;
        let key = PathBuf::from(path);
        if let Some(existing) = reg.files.get(&key).and_then(Weak::upgrade) {
            return Ok(existing);
        }
        let file = Arc::new(KeysFile {
            path: key.clone(),
            interval,
            table: ArcSwap::from_pointee(Vec::new()),
            generation: AtomicU64::new(0),
            stamp: Mutex::new(None),
        });
        file.reload().map_err(|e| format!("{path}: {e}"))?;
        let tx = Self::sender(&mut reg)?;
        reg.files.retain(|_, w| w.strong_count() > 0);
        reg.files.insert(key, Arc::downgrade(&file));
        tx.send(Msg::WatchFile(Arc::downgrade(&file))).map_err(|_| "the auth thread is gone".to_owned())?;
        Ok(file)
    }
}

/// Schedule of one remote on the background thread.
struct Tracked {
    remote: Weak<RemoteKeys>,
    fetcher: Option<Fetcher>,
    next_due: Instant,
    /// Last fetch caused by an unknown `kid` (scheduled refreshes do not count).
    last_kid_fetch: Option<Instant>,
    waiters: Vec<async_channel::Sender<()>>,
}

struct WatchedFile {
    file: Weak<KeysFile>,
    next_check: Instant,
}

/// The background loop: wait for a message or the next due time, then do what is due.
fn run(rx: Receiver<Msg>) {
    let mut remotes: Vec<Tracked> = Vec::new();
    let mut files: Vec<WatchedFile> = Vec::new();
    loop {
        let now = Instant::now();
        let next = remotes
            .iter()
            .map(|t| t.next_due)
            .chain(files.iter().map(|f| f.next_check))
            .min()
            .unwrap_or(now + Duration::from_secs(3600));
        let wait = next.saturating_duration_since(now);
        let first = match rx.recv_timeout(wait) {
            Ok(msg) => Some(msg),
            Err(RecvTimeoutError::Timeout) => None,
            // Every handle is gone: keep what is still in use fresh, then stop.
            Err(RecvTimeoutError::Disconnected) => {
                if remotes.iter().all(|t| t.remote.strong_count() == 0)
                    && files.iter().all(|f| f.file.strong_count() == 0)
                {
                    return;
                }
                std::thread::sleep(wait.min(Duration::from_secs(1)));
                None
            }
        };
        // Take everything queued so concurrent re-fetch requests share one fetch.
        for msg in first.into_iter().chain(std::iter::from_fn(|| rx.try_recv().ok())) {
            match msg {
                Msg::Watch(w) => {
                    if !remotes.iter().any(|t| t.remote.ptr_eq(&w)) {
                        remotes.push(Tracked {
                            remote: w,
                            fetcher: None,
                            next_due: Instant::now(),
                            last_kid_fetch: None,
                            waiters: Vec::new(),
                        });
                    }
                }
                Msg::Refetch(w, reply) => {
                    if let Some(t) = remotes.iter_mut().find(|t| t.remote.ptr_eq(&w)) {
                        t.waiters.push(reply);
                    }
                }
                Msg::WatchFile(w) => {
                    if !files.iter().any(|f| f.file.ptr_eq(&w)) {
                        files.push(WatchedFile { file: w, next_check: Instant::now() });
                    }
                }
            }
        }
        remotes.retain(|t| t.remote.strong_count() > 0);
        files.retain(|f| f.file.strong_count() > 0);
        for t in &mut remotes {
            service_remote(t);
        }
        for f in &mut files {
            service_file(f);
        }
    }
}

fn service_remote(t: &mut Tracked) {
    let Some(remote) = t.remote.upgrade() else { return };
    let now = Instant::now();
    let due = now >= t.next_due;
    let refetch_allowed =
        t.last_kid_fetch.is_none_or(|at| now.duration_since(at) >= remote.refresh.unknown_kid_interval.0);
    if !due && !t.waiters.is_empty() && refetch_allowed {
        t.last_kid_fetch = Some(now);
        fetch(t, &remote);
    } else if due {
        fetch(t, &remote);
    }
    // Dropping the senders wakes every waiting request, fetched or not.
    t.waiters.clear();
}

fn fetch(t: &mut Tracked, remote: &RemoteKeys) {
    let r = &remote.refresh;
    remote.fetches.fetch_add(1, Ordering::Relaxed);
    if t.fetcher.is_none() {
        let ca = match &remote.ca_file {
            Some(path) => match std::fs::read(path) {
                Ok(pem) => Some(pem),
                Err(e) => {
                    tracing::warn!(uri = %remote.uri, ca_file = %path, error = %e, "cannot read the JWKS CA file");
                    t.next_due = Instant::now() + r.retry_interval.0;
                    return;
                }
            },
            None => None,
        };
        match Fetcher::new(r.timeout.0, ca.as_deref()) {
            Ok(f) => t.fetcher = Some(f),
            Err(e) => {
                tracing::warn!(uri = %remote.uri, error = %e, "cannot set up the JWKS client");
                t.next_due = Instant::now() + r.retry_interval.0;
                return;
            }
        }
    }
    let Some(fetcher) = &t.fetcher else { return };
    let result =
        fetcher.get(&remote.uri).and_then(|f| KeySet::from_jwks(&f.body).map(|set| (set, f.max_age)));
    match result {
        Ok((set, max_age)) if !set.keys.is_empty() => {
            let every = max_age.unwrap_or(r.default_interval.0).clamp(r.min_interval.0, r.max_interval.0);
            let n = set.keys.len();
            remote.keys.store(Arc::new(set));
            remote.generation.fetch_add(1, Ordering::AcqRel);
            tracing::info!(uri = %remote.uri, keys = n, refresh_in = ?every, "JWKS fetched");
            t.next_due = Instant::now() + every;
        }
        Ok(_) => {
            tracing::warn!(uri = %remote.uri, "JWKS has no usable signing key; keeping the last good set");
            t.next_due = Instant::now() + r.retry_interval.0;
        }
        Err(e) => {
            tracing::warn!(uri = %remote.uri, error = %e, "JWKS fetch failed; keeping the last good set");
            t.next_due = Instant::now() + r.retry_interval.0;
        }
    }
}

fn stamp(path: &std::path::Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

fn service_file(f: &mut WatchedFile) {
    let Some(file) = f.file.upgrade() else { return };
    let now = Instant::now();
    if now < f.next_check {
        return;
    }
    f.next_check = now + file.interval;
    let current = stamp(&file.path);
    if file.stamp.lock().map_or(true, |s| *s == current) {
        return;
    }
    match file.reload() {
        Ok(()) => {
            tracing::info!(path = %file.path.display(), keys = file.current().len(), "API keys reloaded")
        }
        Err(e) => {
            tracing::warn!(path = %file.path.display(), error = %e, "API keys file refused; keeping the last good keys")
        }
    }
}
