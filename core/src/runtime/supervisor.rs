//! The supervisor: the control thread beside the shards. It binds listeners, starts the shards,
//! reloads the config on SIGHUP or a file change, and drains on SIGTERM/SIGINT.
//!
//! A reload is two-phase: validate and build everything here (the caller's compile step builds
//! certificates, keys and filter chains), send `Prepare` to every shard, and `Commit` only when
//! every shard built the generation; otherwise every shard gets `Abort` and keeps the running
//! generation. A refused reload changes nothing and is reported (log, counter, sd_notify status).
//!
//! Commands also arrive from the admin API (`POST /config`, `POST /drain`) through a
//! [`SupervisorHandle`]; they take the same path as the signals. The service manager is told
//! about readiness, reloads and stopping (`sd_notify`), and pinged when it set a watchdog.
//!
//! Owns: process lifecycle and config hot swap. Must not: serve requests or block a shard.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

use crate::config::{self, Config};

use super::listener;
use super::notify;
use super::ring::{self, Driver};
use super::shard::{self, Control, Generation, ShardCtx, ShardEvent};
use super::status::{RunningConfig, Status};

mod two_phase;

/// Something the control loop is asked to do.
#[derive(Debug)]
pub enum Command {
    /// A signal arrived (SIGHUP reloads; SIGINT/SIGTERM drain and exit).
    Signal(i32),
    /// Validate this config text and apply it like a reload; the answer is the new generation or
    /// every error (as `portcullis check` prints them).
    Apply {
        /// The TOML text.
        text: String,
        /// Where the answer goes.
        reply: mpsc::Sender<Result<u64, config::ConfigErrors>>,
    },
    /// Drain and exit, like SIGTERM.
    Drain,
    /// Run this on the control loop (a config source applying a revision it read).
    Source(SourceJob),
}

/// The body of a [`SourceJob`].
pub type SourceWork = Box<dyn FnOnce(&mut dyn SourceTarget) + Send>;

/// Work a config source runs on the control loop, with the loop's [`SourceTarget`].
pub struct SourceJob(pub SourceWork);

impl std::fmt::Debug for SourceJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SourceJob")
    }
}

/// What a config source may do on the control loop.
pub trait SourceTarget {
    /// Validates and builds `text` (with `prepare` run on the parsed config first, see
    /// [`config::load_str_with`]) and applies it with the two-phase apply; `source` names it in
    /// errors and in the admin API.
    fn apply_source(
        &mut self,
        text: &str,
        source: &str,
        prepare: &mut dyn FnMut(&mut Config) -> Vec<(String, String)>,
    ) -> Result<u64, config::ConfigErrors>;
}

impl<S: Send + Sync + 'static> SourceTarget for Supervisor<S> {
    fn apply_source(
        &mut self,
        text: &str,
        source: &str,
        prepare: &mut dyn FnMut(&mut Config) -> Vec<(String, String)>,
    ) -> Result<u64, config::ConfigErrors> {
        Supervisor::apply_source(self, text, source, prepare)
    }
}

/// A handle other threads (the admin API) use to reach the control loop and read the status.
#[derive(Clone, Debug)]
pub struct SupervisorHandle {
    commands: mpsc::Sender<Command>,
    /// Shared operational state.
    pub status: Arc<Status>,
}

impl SupervisorHandle {
    /// Applies `text` as the new config (waits up to `timeout` for the control loop's answer).
    pub fn apply(
        &self,
        text: String,
        timeout: Duration,
    ) -> Result<Result<u64, config::ConfigErrors>, String> {
        let (tx, rx) = mpsc::channel();
        self.commands
            .send(Command::Apply { text, reply: tx })
            .map_err(|_| "the gateway is stopping".to_owned())?;
        rx.recv_timeout(timeout).map_err(|_| "no answer from the control loop".to_owned())
    }

    /// Starts draining (the process exits when done).
    pub fn drain(&self) -> bool {
        self.commands.send(Command::Drain).is_ok()
    }
}

/// The `MONOTONIC_USEC=` value systemd wants with `RELOADING=1`.
fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the valid timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000 + (ts.tv_nsec as u64) / 1000
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// io_uring was required but is unavailable.
    #[error(transparent)]
    Uring(#[from] ring::UringUnavailable),
    /// A socket or thread could not be created.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// Compiling the config (e.g. the route table) failed.
    #[error("config cannot be compiled: {0}")]
    Compile(String),
    /// A shard failed before becoming ready.
    #[error("shard {0} failed to start: {1}")]
    Shard(usize, String),
    /// Building the config (certificates, keys, filter chains) failed, each error on its line.
    #[error("invalid config ({n} error(s)):\n{0}", n = .0.len())]
    Config(config::ConfigErrors),
}

/// How many shards `server` asks for: `shards`, or one per CPU this process may run on.
pub fn shard_count(server: &crate::config::ServerConfig) -> usize {
    match server.shards {
        0 => shard::allowed_cpus().len().max(1),
        n => n,
    }
}

/// Turns a validated config into the immutable data shared by all shards for one generation,
/// building (and checking) everything a shard will build from it; an error reads
/// `"key.path: reason"` so it can be placed on its line.
pub type CompileFn<S> = dyn Fn(&Arc<Config>) -> Result<S, String> + Send + Sync;

/// A running gateway: shards plus the control loop.
pub struct Supervisor<S> {
    config_path: Option<PathBuf>,
    current: Arc<Generation<S>>,
    compile: Box<CompileFn<S>>,
    senders: Vec<async_channel::Sender<Control<S>>>,
    events: mpsc::Receiver<ShardEvent>,
    handles: Vec<JoinHandle<()>>,
    file_stamp: Option<FileStamp>,
    commands: mpsc::Receiver<Command>,
    commands_tx: mpsc::Sender<Command>,
    /// Certificate and key files named by the config, with their last seen stamps.
    extra_stamps: Vec<(PathBuf, Option<FileStamp>)>,
    signals_handle: signal_hook::iterator::Handle,
    status: Arc<Status>,
    watchdog: Option<Duration>,
    /// Addresses actually bound, in listener order.
    pub bound: Vec<SocketAddr>,
    /// The driver the shards run.
    pub driver: Driver,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
}

fn stamp(path: &std::path::Path) -> Option<FileStamp> {
    let m = std::fs::metadata(path).ok()?;
    Some(FileStamp { modified: m.modified().ok(), len: m.len() })
}

fn stamps(cfg: &Config) -> Vec<(PathBuf, Option<FileStamp>)> {
    cfg.watched_files()
        .into_iter()
        .map(|p| {
            let s = stamp(&p);
            (p, s)
        })
        .collect()
}

impl<S: Send + Sync + 'static> Supervisor<S> {
    /// Probes the driver, binds every listener on every shard, starts the shards and waits
    /// until all of them are listening.
    pub fn start<F, Fut>(
        config_path: Option<PathBuf>,
        config: Config,
        compile: Box<CompileFn<S>>,
        shard_main: F,
    ) -> Result<Supervisor<S>, StartError>
    where
        F: Fn(ShardCtx<S>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()>,
    {
        // Signal handlers go in before anything can announce readiness: a SIGHUP sent the moment
        // `listening` is printed must reload, not kill the process with the default action.
        let (cmd_tx, cmd_rx) = mpsc::channel();
        let mut signals = signal_hook::iterator::Signals::new([SIGHUP, SIGINT, SIGTERM])?;
        let signals_handle = signals.handle();
        let sig_tx = cmd_tx.clone();
        std::thread::Builder::new().name("signals".into()).spawn(move || {
            for s in signals.forever() {
                if sig_tx.send(Command::Signal(s)).is_err() {
                    break;
                }
            }
        })?;
        let config = Arc::new(config);
        let (driver, fallback) = ring::choose_driver(config.server.driver, config.server.ring_entries)?;
        if let Some(why) = fallback {
            tracing::warn!(
                "!!! {why}. FALLING BACK TO EPOLL: expect noticeably higher CPU per request. \
                 Set server.driver = \"io_uring\" to refuse to start instead."
            );
        }
        let allowed = shard::allowed_cpus();
        let n = shard_count(&config.server);
        let cpus: Vec<Option<usize>> = (0..n)
            .map(|i| {
                if config.server.pin_cpus && !allowed.is_empty() {
                    Some(allowed[i % allowed.len()])
                } else {
                    None
                }
            })
            .collect();
        let text: Option<Arc<str>> =
            config_path.as_deref().and_then(|p| std::fs::read_to_string(p).ok()).map(Arc::from);
        let source: Arc<str> =
            config_path.as_deref().map_or_else(|| "built-in".into(), |p| p.display().to_string().into());
        let shared = match compile(&config) {
            Ok(s) => s,
            Err(e) => match text.as_deref() {
                Some(t) => return Err(StartError::Config(config::locate(t, &source, [e]))),
                None => return Err(StartError::Compile(e)),
            },
        };
        let current = Arc::new(Generation { id: 1, config: config.clone(), shared });
        let status =
            Arc::new(Status::new(n, RunningConfig { generation: 1, config: config.clone(), text, source }));

        let addrs: Vec<(SocketAddr, u32)> =
            config.listeners.iter().filter_map(|l| l.addr.map(|a| (a, l.backlog))).collect();
        let (per_shard, bound) = listener::bind_all(&addrs, n)?;
        // HTTP/3 listeners get one UDP socket per shard on the TCP listener's actual port.
        let mut udp_per_shard: Vec<Vec<Option<std::net::UdpSocket>>> =
            (0..n).map(|_| Vec::with_capacity(bound.len())).collect();
        for (l, addr) in config.listeners.iter().zip(&bound) {
            let quic = l.http3.as_ref().is_some_and(|h| h.enabled);
            let mut socks = if quic { listener::bind_udp_all(*addr, n)? } else { Vec::new() }.into_iter();
            for slot in &mut udp_per_shard {
                slot.push(socks.next());
            }
        }

        let (ev_tx, ev_rx) = mpsc::channel();
        let mut senders = Vec::with_capacity(n);
        let mut contexts = Vec::with_capacity(n);
        for (id, (listeners, udp)) in per_shard.into_iter().zip(udp_per_shard).enumerate() {
            let (tx, rx) = async_channel::unbounded();
            senders.push(tx);
            contexts.push(ShardCtx {
                id,
                cpu: cpus[id],
                listeners,
                udp,
                initial: current.clone(),
                control: rx,
                events: ev_tx.clone(),
                status: status.clone(),
            });
        }
        drop(ev_tx);
        let handles = shard::spawn_shards(driver, cpus, contexts, Arc::new(shard_main))?;
        let file_stamp = config_path.as_deref().and_then(stamp);
        let extra_stamps = stamps(&config);
        let sup = Supervisor {
            config_path,
            current,
            compile,
            senders,
            events: ev_rx,
            handles,
            file_stamp,
            commands: cmd_rx,
            commands_tx: cmd_tx,
            extra_stamps,
            signals_handle,
            status,
            watchdog: notify::watchdog_interval(),
            bound,
            driver,
        };

        let mut ready = 0;
        while ready < n {
            match sup.events.recv_timeout(Duration::from_secs(10)) {
                Ok(ShardEvent::Ready { shard }) => {
                    if let Some(g) = sup.status.shard(shard) {
                        g.ready.store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                    ready += 1;
                }
                Ok(_) => {}
                Err(_) => {
                    let dead = sup.handles.iter().position(|h| h.is_finished()).unwrap_or(ready);
                    return Err(StartError::Shard(dead, "did not become ready".to_owned()));
                }
            }
        }
        tracing::info!(shards = n, driver = %driver.describe(), "all shards listening");
        Ok(sup)
    }

    /// Number of shards.
    pub fn shard_count(&self) -> usize {
        self.senders.len()
    }

    /// The generation currently applied.
    pub fn generation(&self) -> u64 {
        self.current.id
    }

    /// The shared operational state.
    pub fn status(&self) -> &Arc<Status> {
        &self.status
    }

    /// A handle for other threads (the admin API).
    pub fn handle(&self) -> SupervisorHandle {
        SupervisorHandle { commands: self.commands_tx.clone(), status: self.status.clone() }
    }

    /// Re-reads the config file; applies it if valid, otherwise logs every error and keeps the
    /// running config. Returns whether a new generation was applied.
    pub fn reload(&mut self) -> bool {
        let Some(path) = self.config_path.clone() else {
            tracing::warn!(
                "reload requested but the config comes from no file (built-in, or a config store the \
                 gateway follows by itself); nothing to re-read"
            );
            return false;
        };
        self.file_stamp = stamp(&path);
        let name = path.display().to_string();
        let loaded = match std::fs::read_to_string(&path) {
            Ok(text) => config::load_str(&text, &name).map(|cfg| (cfg, Some(Arc::from(text)))),
            Err(_) => config::load_file(&path).map(|cfg| (cfg, None)),
        };
        notify::notify_or_log(&format!("RELOADING=1\nMONOTONIC_USEC={}", monotonic_usec()));
        let result = match loaded {
            Ok((cfg, text)) => {
                self.extra_stamps = stamps(&cfg);
                self.apply(cfg, text, name.into())
            }
            Err(errors) => Err(errors),
        };
        if result.is_err() {
            self.extra_stamps = stamps(&self.current.config);
        }
        self.finish_reload(result).is_ok()
    }

    /// Logs, counts and announces (sd_notify `READY=1`, then a `STATUS=` line) the end of a reload.
    fn finish_reload(&self, result: Result<u64, config::ConfigErrors>) -> Result<u64, config::ConfigErrors> {
        match &result {
            Ok(generation) => {
                notify::notify_or_log("READY=1");
                notify::notify_or_log(&format!("STATUS=serving config generation {generation}"));
            }
            Err(errors) => {
                self.refuse(errors);
                let first = errors.0.first().map(ToString::to_string).unwrap_or_default();
                notify::notify_or_log("READY=1");
                notify::notify_or_log(&format!(
                    "STATUS=config reload refused ({} error(s): {}); serving generation {}",
                    errors.len(),
                    first.replace('\n', " "),
                    self.current.id
                ));
            }
        }
        result
    }

    /// Validates `text` (named `POST /config` in errors) and applies it like a reload.
    pub fn apply_text(&mut self, text: String) -> Result<u64, config::ConfigErrors> {
        notify::notify_or_log(&format!("RELOADING=1\nMONOTONIC_USEC={}", monotonic_usec()));
        let result = match config::load_str(&text, "POST /config") {
            Ok(cfg) => {
                let stamps_before = std::mem::replace(&mut self.extra_stamps, stamps(&cfg));
                let r = self.apply(cfg, Some(Arc::from(text)), "POST /config".into());
                if r.is_err() {
                    self.extra_stamps = stamps_before;
                }
                r
            }
            Err(errors) => Err(errors),
        };
        self.finish_reload(result)
    }

    /// Validates `text` (named `source` in errors and in the admin API) with `prepare` run on the
    /// parsed config first (see [`config::load_str_with`]), and applies it like a reload. Used by
    /// config sources other than a file (e.g. a store that hands over one revision at a time).
    pub fn apply_source(
        &mut self,
        text: &str,
        source: &str,
        prepare: impl FnOnce(&mut Config) -> Vec<(String, String)>,
    ) -> Result<u64, config::ConfigErrors> {
        notify::notify_or_log(&format!("RELOADING=1\nMONOTONIC_USEC={}", monotonic_usec()));
        let result = match config::load_str_with(text, source, prepare) {
            Ok(cfg) => self.apply(cfg, Some(Arc::from(text)), source.into()),
            Err(errors) => Err(errors),
        };
        self.finish_reload(result)
    }

    /// A sender that feeds this supervisor's control loop (signals, the admin API, sources).
    pub fn command_sender(&self) -> mpsc::Sender<Command> {
        self.commands_tx.clone()
    }

    fn refuse(&self, errors: &config::ConfigErrors) {
        for e in &errors.0 {
            tracing::error!("config reload refused: {e}");
        }
        tracing::error!(
            generation = self.current.id,
            "config reload refused ({} errors); the running config stays",
            errors.0.len()
        );
        self.status.refused(errors.0.iter().map(|e| e.to_string()).collect());
    }

    fn file_changed(&self) -> bool {
        match &self.config_path {
            Some(p) => stamp(p) != self.file_stamp || self.extra_stamps.iter().any(|(f, s)| stamp(f) != *s),
            None => false,
        }
    }

    /// Runs the control loop until SIGTERM/SIGINT, then drains every shard and joins them.
    /// Returns the number of requests abandoned at the drain deadline.
    pub fn run(mut self) -> std::io::Result<usize> {
        loop {
            let server = &self.current.config.server;
            let mut tick = if server.watch_config && self.config_path.is_some() {
                server.watch_interval.0
            } else {
                Duration::from_secs(3600)
            };
            if let Some(w) = self.watchdog {
                tick = tick.min(w / 3);
                notify::notify_or_log("WATCHDOG=1");
            }
            match self.commands.recv_timeout(tick) {
                Ok(Command::Signal(SIGHUP)) => {
                    tracing::info!("SIGHUP: reloading config");
                    self.reload();
                }
                Ok(Command::Signal(_)) => break,
                Ok(Command::Apply { text, reply }) => {
                    tracing::info!("admin API: applying a posted config");
                    let _ = reply.send(self.apply_text(text));
                }
                Ok(Command::Source(job)) => (job.0)(&mut self),
                Ok(Command::Drain) => {
                    tracing::info!("admin API: drain requested");
                    break;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if self.current.config.server.watch_config && self.file_changed() {
                        tracing::info!("config file changed: reloading");
                        self.reload();
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
            // Drain events (e.g. late acks) so the queue stays short.
            while self.events.try_recv().is_ok() {}
        }
        self.signals_handle.close();
        Ok(self.shutdown())
    }

    /// Drains all shards (stop accepting, finish in-flight requests up to the drain timeout)
    /// and joins their threads.
    pub fn shutdown(self) -> usize {
        let timeout = self.current.config.server.drain_timeout.0;
        self.status.set_draining();
        notify::notify_or_log("STOPPING=1");
        tracing::info!(?timeout, "draining");
        for tx in &self.senders {
            let _ = tx.try_send(Control::Drain(timeout));
        }
        let mut abandoned = 0;
        let mut drained = 0;
        let deadline = Instant::now() + timeout + Duration::from_secs(5);
        while drained < self.senders.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(ShardEvent::Drained { abandoned: a, .. }) => {
                    drained += 1;
                    abandoned += a;
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        for h in self.handles {
            let _ = h.join();
        }
        tracing::info!(abandoned, "drained; exiting");
        abandoned
    }
}
