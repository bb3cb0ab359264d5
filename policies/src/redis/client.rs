//! One Redis deployment as a background thread sees it: a single server or a Redis Cluster
//! (found from seed nodes), with optional AUTH. Commands carry the slot of their keys; a batch is
//! pipelined per node (one write, one round trip per node), `MOVED` and `ASK` redirections are
//! followed, and the slot map is re-read (`CLUSTER SLOTS`) on start, after a redirection and after
//! a node failed. A node that failed is skipped (its commands fail at once) for a backoff, so one
//! dead master never stalls the commands bound for the others.
//!
//! Owns: connections per node, the slot map, redirections and per-node backoff. Must not: run on
//! a shard (it blocks) or know what the commands mean.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::resp::{Conn, Value};
use super::slot::{SLOTS, parse_slots};

/// Where the password comes from (never the config text itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Password {
    /// An environment variable's value.
    Env(String),
    /// A file's content, trailing newline removed (read at each connect: rotation needs no restart).
    File(PathBuf),
}

impl Password {
    fn read(&self) -> io::Result<String> {
        match self {
            Password::Env(name) => std::env::var(name).map_err(|_| {
                io::Error::new(io::ErrorKind::NotFound, format!("environment variable {name} is not set"))
            }),
            Password::File(path) => std::fs::read_to_string(path)
                .map(|s| s.trim_end_matches(['\r', '\n']).to_owned())
                .map_err(|e| io::Error::new(e.kind(), format!("cannot read {}: {e}", path.display()))),
        }
    }
}

/// A Redis deployment: its address(es), whether it is a cluster, credentials and timeout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Target {
    /// The server (`host:port`), or the cluster's seed nodes.
    pub nodes: Vec<String>,
    /// True for a Redis Cluster.
    pub cluster: bool,
    /// ACL user name (`AUTH user password`); None with a password = the default user.
    pub username: Option<String>,
    /// Password source; None = no AUTH.
    pub password: Option<Password>,
    /// Connect, read and write timeout of one exchange.
    pub timeout: Duration,
    /// TLS to every node, trusting the CA certificates (PEM) in this file.
    pub tls_ca: Option<PathBuf>,
}

impl Target {
    /// Names the deployment for logs (addresses only, never credentials).
    pub(crate) fn describe(&self) -> String {
        if self.cluster { format!("cluster {}", self.nodes.join(",")) } else { self.nodes.join(",") }
    }
}

/// One command and the slot its keys hash to (ignored for a single server).
pub(crate) struct Cmd {
    /// Slot of the command's keys.
    pub slot: u16,
    /// The command and its arguments.
    pub args: Vec<Vec<u8>>,
}

/// Redirections followed per command before giving up.
const MAX_REDIRECTS: usize = 3;
/// Per-node backoff bounds after a failure.
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// Least time between two topology reads (unless the map is empty).
const REFRESH_EVERY: Duration = Duration::from_millis(100);

/// Per-node state.
#[derive(Default)]
struct Node {
    conn: Option<Conn>,
    down_until: Option<Instant>,
    backoff: Duration,
}

/// The client (one per background thread).
pub(crate) struct Client {
    target: Target,
    nodes: HashMap<String, Node>,
    /// Slot -> master address (cluster only; empty until the first topology read).
    slots: Vec<Option<std::sync::Arc<str>>>,
    /// The TLS client settings, built on first use (None: plain TCP).
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    stale: bool,
    last_refresh: Option<Instant>,
}

/// TLS client settings trusting only the CA certificates in `ca` (PEM).
fn tls_config(ca: &std::path::Path) -> io::Result<std::sync::Arc<rustls::ClientConfig>> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(ca)
        .map_err(|e| io::Error::other(format!("cannot read {}: {e}", ca.display())))?;
    for cert in certs {
        let cert = cert.map_err(|e| io::Error::other(format!("{}: {e}", ca.display())))?;
        roots.add(cert).map_err(|e| io::Error::other(format!("{}: {e}", ca.display())))?;
    }
    if roots.is_empty() {
        return Err(io::Error::other(format!("{}: no CA certificate", ca.display())));
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(std::sync::Arc::new(cfg))
}

fn copy(e: &io::Error) -> io::Error {
    io::Error::new(e.kind(), e.to_string())
}

impl Client {
    /// A client for `target`; connects lazily.
    pub(crate) fn new(target: Target) -> Client {
        Client {
            target,
            nodes: HashMap::new(),
            slots: Vec::new(),
            tls: None,
            stale: true,
            last_refresh: None,
        }
    }

    /// The deployment.
    pub(crate) fn target(&self) -> &Target {
        &self.target
    }

    /// The masters currently known (the server itself when not a cluster).
    pub(crate) fn masters(&self) -> Vec<String> {
        if !self.target.cluster {
            return self.target.nodes.clone();
        }
        let mut m: Vec<String> = self.slots.iter().flatten().map(|a| a.to_string()).collect();
        m.sort_unstable();
        m.dedup();
        m
    }

    /// Reads the slot map when it is unknown or stale (at most every `REFRESH_EVERY` unless
    /// unknown). A no-op for a single server.
    pub(crate) fn refresh_if_needed(&mut self) -> io::Result<()> {
        if !self.target.cluster || !self.stale {
            return Ok(());
        }
        let known = !self.slots.is_empty();
        if known && self.last_refresh.is_some_and(|t| t.elapsed() < REFRESH_EVERY) {
            return Ok(());
        }
        self.last_refresh = Some(Instant::now());
        let mut candidates = self.masters();
        for seed in &self.target.nodes {
            if !candidates.contains(seed) {
                candidates.push(seed.clone());
            }
        }
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no cluster node to ask");
        for addr in candidates {
            let reply = self.conn(&addr).and_then(|c| c.command(&["CLUSTER", "SLOTS"]));
            let host = addr.rsplit_once(':').map_or(addr.as_str(), |(h, _)| h).trim_matches(['[', ']']);
            match reply.and_then(|v| parse_slots(v, host)) {
                Ok(ranges) if !ranges.is_empty() => {
                    let mut slots = vec![None; SLOTS];
                    for r in ranges {
                        let a: std::sync::Arc<str> = r.addr.into();
                        for s in &mut slots[usize::from(r.start)..=usize::from(r.end)] {
                            *s = Some(a.clone());
                        }
                    }
                    self.slots = slots;
                    self.stale = false;
                    return Ok(());
                }
                Ok(_) => last = io::Error::other(format!("{addr}: CLUSTER SLOTS lists no slot")),
                Err(e) => {
                    self.node_failed(&addr);
                    last = e;
                }
            }
        }
        Err(last)
    }

    /// A (connected, authenticated) connection to `addr`, unless the node is backing off.
    fn conn(&mut self, addr: &str) -> io::Result<&mut Conn> {
        let connected = self.nodes.get(addr).is_some_and(|n| n.conn.is_some());
        if !connected {
            if let Some(until) = self.nodes.get(addr).and_then(|n| n.down_until)
                && Instant::now() < until
            {
                return Err(io::Error::new(io::ErrorKind::NotConnected, format!("{addr} is backing off")));
            }
            if self.tls.is_none()
                && let Some(ca) = &self.target.tls_ca
            {
                self.tls = Some(tls_config(ca)?);
            }
            let mut c = Conn::connect(addr, self.target.timeout, self.tls.as_ref())?;
            if let Some(p) = &self.target.password {
                c.auth(self.target.username.as_deref(), &p.read()?)?;
            }
            self.nodes.entry(addr.to_owned()).or_default().conn = Some(c);
        }
        self.nodes
            .get_mut(addr)
            .and_then(|n| n.conn.as_mut())
            .ok_or_else(|| io::Error::other("no connection"))
    }

    /// Forgets `addr`'s connection and backs off from it; a cluster re-reads its topology.
    fn node_failed(&mut self, addr: &str) {
        let node = self.nodes.entry(addr.to_owned()).or_default();
        self.stale = true;
        if node.conn.is_none() && node.down_until.is_some_and(|t| Instant::now() < t) {
            return; // already backing off: this failure was the skip itself
        }
        node.conn = None;
        node.backoff = (node.backoff * 2).clamp(BACKOFF_MIN, BACKOFF_MAX);
        node.down_until = Some(Instant::now() + node.backoff);
        self.stale = true;
    }

    fn node_ok(&mut self, addr: &str) {
        if let Some(node) = self.nodes.get_mut(addr) {
            node.backoff = Duration::ZERO;
            node.down_until = None;
        }
    }

    fn route(&self, slot: u16) -> io::Result<String> {
        if !self.target.cluster {
            return self.target.nodes.first().cloned().ok_or_else(|| io::Error::other("no redis address"));
        }
        match self.slots.get(usize::from(slot)) {
            Some(Some(a)) => Ok(a.to_string()),
            _ => Err(io::Error::new(
                io::ErrorKind::NotConnected,
                format!("slot {slot} is served by no known node"),
            )),
        }
    }

    /// Runs every command (pipelined per node, redirections followed); one result per command,
    /// in order. A Redis error reply other than a redirection is `Ok(Value::Error)`.
    pub(crate) fn run(&mut self, cmds: &[Cmd]) -> Vec<io::Result<Value>> {
        let _ = self.refresh_if_needed();
        let mut results: Vec<Option<io::Result<Value>>> = cmds.iter().map(|_| None).collect();
        // (command index, redirected address, ASK) still to run.
        let mut pending: Vec<(usize, Option<String>, bool)> =
            (0..cmds.len()).map(|i| (i, None, false)).collect();
        for _ in 0..=MAX_REDIRECTS {
            if pending.is_empty() {
                break;
            }
            let mut by_node: BTreeMap<String, Vec<(usize, bool)>> = BTreeMap::new();
            for (i, to, ask) in pending.drain(..) {
                match to.map_or_else(|| self.route(cmds[i].slot), Ok) {
                    Ok(addr) => by_node.entry(addr).or_default().push((i, ask)),
                    Err(e) => {
                        self.stale = true;
                        results[i] = Some(Err(e));
                    }
                }
            }
            for (addr, items) in by_node {
                let mut batch: Vec<&[Vec<u8>]> = Vec::with_capacity(items.len());
                let asking = [b"ASKING".to_vec()];
                for &(i, ask) in &items {
                    if ask {
                        batch.push(&asking);
                    }
                    batch.push(&cmds[i].args);
                }
                let replies = self.conn(&addr).and_then(|c| c.pipeline(&batch));
                let replies = match replies {
                    Ok(r) => {
                        self.node_ok(&addr);
                        r
                    }
                    Err(e) => {
                        self.node_failed(&addr);
                        let e = io::Error::new(e.kind(), format!("{addr}: {e}"));
                        for &(i, _) in &items {
                            results[i] = Some(Err(copy(&e)));
                        }
                        continue;
                    }
                };
                let mut replies = replies.into_iter();
                for &(i, ask) in &items {
                    if ask {
                        let _ = replies.next();
                    }
                    match replies.next() {
                        Some(Value::Error(e)) if e.starts_with("MOVED ") || e.starts_with("ASK ") => {
                            let mut parts = e.split_whitespace();
                            let kind = parts.next().unwrap_or_default();
                            let to = parts.nth(1).unwrap_or_default().to_owned();
                            if kind == "MOVED" {
                                self.stale = true;
                                if let Some(s) = self.slots.get_mut(usize::from(cmds[i].slot)) {
                                    *s = Some(to.as_str().into());
                                }
                            }
                            pending.push((i, Some(to), kind == "ASK"));
                        }
                        Some(v) => results[i] = Some(Ok(v)),
                        None => results[i] = Some(Err(io::Error::other("missing reply"))),
                    }
                }
            }
        }
        for (i, ..) in pending {
            results[i] = Some(Err(io::Error::other("too many cluster redirections")));
        }
        results.into_iter().map(|r| r.unwrap_or_else(|| Err(io::Error::other("not run")))).collect()
    }

    /// PINGs every master (after reading the topology): Ok when all answer.
    pub(crate) fn ping_all(&mut self) -> io::Result<()> {
        self.refresh_if_needed()?;
        for addr in self.masters() {
            let reply = self.conn(&addr).and_then(|c| c.command(&["PING"]));
            match reply {
                Ok(Value::Simple(_)) => self.node_ok(&addr),
                Ok(other) => {
                    self.node_failed(&addr);
                    return Err(io::Error::other(format!("{addr}: PING answered {other:?}")));
                }
                Err(e) => {
                    self.node_failed(&addr);
                    return Err(io::Error::new(e.kind(), format!("{addr}: {e}")));
                }
            }
        }
        Ok(())
    }
}

impl Target {
    /// A target from a section's Redis keys (already validated: one of `server` or `cluster`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn from_config(
        server: Option<&str>,
        cluster: &[String],
        username: Option<&str>,
        password_env: Option<&str>,
        password_file: Option<&str>,
        tls_ca: Option<&str>,
        timeout: Duration,
    ) -> Target {
        let password = match (password_env, password_file) {
            (Some(e), _) => Some(Password::Env(e.to_owned())),
            (None, Some(f)) => Some(Password::File(PathBuf::from(f))),
            (None, None) => None,
        };
        let (nodes, is_cluster) = match server {
            Some(s) if cluster.is_empty() => (vec![s.to_owned()], false),
            _ => (cluster.to_vec(), true),
        };
        Target {
            nodes,
            cluster: is_cluster,
            username: username.map(str::to_owned),
            password,
            timeout: timeout.max(Duration::from_millis(1)),
            tls_ca: tls_ca.map(PathBuf::from),
        }
    }
}
