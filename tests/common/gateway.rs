//! The real `portcullis` binary under test: started with a temporary config file, ready once it
//! has printed its `listening <name> <addr>` lines, with its stderr log collected by a
//! background thread so tests can wait for log lines (reload applied/refused, draining).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long the gateway may take to become ready (a loaded machine, a debug build).
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The gateway binary built by Cargo for these tests.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_portcullis")
}

/// A config with two shards, no CPU pinning, no file watching (reloads happen on SIGHUP only, so
/// generation numbers are predictable), one listener on a free port, `http` as the `[http]`
/// section and `rest` (upstreams, routes, other sections) after it.
pub fn config(http: &str, rest: &str) -> String {
    format!(
        "[server]\nshards = 2\npin_cpus = false\nwatch_config = false\ndrain_timeout = \"10s\"\n\n\
         [[listeners]]\nbind = \"127.0.0.1:0\"\n\n[http]\n{http}\n\n{rest}\n"
    )
}

/// A one-shard gateway with the admin API (bearer `token`) and one catch-all route (extra keys
/// `route`) to the upstream `app` (`upstream` = the rest of its table).
pub fn app_gateway(token: &str, upstream: &str, route: &str) -> Gateway {
    let rest = format!(
        "[admin]\nbind = \"127.0.0.1:0\"\ntoken = \"{token}\"\n\n[[upstreams]]\nname = \"app\"\n{upstream}\n\
         [[routes]]\nprefix = \"/\"\nupstream = \"app\"\n{route}"
    );
    Gateway::start(&config("", &rest).replace("shards = 2", "shards = 1"))
}

#[derive(Default)]
struct LogState {
    lines: Vec<String>,
    closed: bool,
}

#[derive(Default)]
struct Logs {
    state: Mutex<LogState>,
    cond: Condvar,
}

/// A running gateway process; killed when dropped.
pub struct Gateway {
    child: Child,
    /// Address of the first listener.
    pub addr: SocketAddr,
    /// Every listener, by name, in config order.
    pub listeners: Vec<(String, SocketAddr)>,
    /// The admin API address, when the config has `[admin]` (printed as `admin <addr>`).
    pub admin: Option<SocketAddr>,
    config_path: PathBuf,
    _dir: tempfile::TempDir,
    logs: Arc<Logs>,
    exit: Option<ExitStatus>,
}

/// Removes ANSI colour sequences from a log line.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

impl Gateway {
    /// Writes `toml` to a temporary file, starts `portcullis run` on it and waits until it prints
    /// one `listening` line per `[[listeners]]` table.
    pub fn start(toml: &str) -> Gateway {
        Gateway::start_with_env(toml, &[])
    }

    /// Like [`Gateway::start`] with extra environment variables for the process.
    pub fn start_with_env(toml: &str, env: &[(&str, &str)]) -> Gateway {
        let dir = tempfile::tempdir().expect("temp dir");
        let config_path = dir.path().join("gateway.toml");
        std::fs::write(&config_path, toml).expect("write the config");
        let mut child = Command::new(binary())
            .args(["--log", "info", "run", "--config"])
            .arg(&config_path)
            .env("NO_COLOR", "1")
            .env_remove("PORTCULLIS_LOG")
            .env_remove("NOTIFY_SOCKET")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn portcullis");

        let logs = Arc::new(Logs::default());
        let stderr = child.stderr.take().expect("stderr");
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut st = sink.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                st.lines.push(strip_ansi(&line));
                sink.cond.notify_all();
            }
            sink.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner).closed = true;
            sink.cond.notify_all();
        });
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    // Keep draining so the child never blocks on a full pipe.
                    continue;
                }
            }
        });

        let expected = toml.matches("[[listeners]]").count().max(1);
        let mut listeners = Vec::new();
        let deadline = Instant::now() + START_TIMEOUT;
        let mut gw = Gateway {
            child,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            listeners: Vec::new(),
            admin: None,
            config_path,
            _dir: dir,
            logs,
            exit: None,
        };
        while listeners.len() < expected {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    let mut parts = line.split_whitespace();
                    let first = parts.next();
                    if first == Some("admin") {
                        gw.admin = parts.next().and_then(|a| a.parse().ok());
                    }
                    if first == Some("listening") {
                        let name = parts.next().expect("listener name").to_owned();
                        let addr = parts.next().expect("listener address").parse().expect("address");
                        listeners.push((name, addr));
                    }
                }
                Err(e) => {
                    let status = gw.child.try_wait().ok().flatten();
                    panic!(
                        "the gateway did not become ready ({e}; exit status {status:?}); log:\n{}",
                        gw.logs().join("\n")
                    );
                }
            }
        }
        gw.addr = listeners[0].1;
        gw.listeners = listeners;
        gw
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The config file the gateway was started with (and re-reads on reload).
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// Sends a signal by name (`HUP`, `TERM`, `INT`) once the gateway catches it.
    ///
    /// The gateway prints its `listening` lines before its control loop installs the signal
    /// handlers, and until then SIGHUP/SIGTERM have their default action (terminate): see
    /// `sighup_right_after_readiness_reloads_instead_of_killing` in
    /// `reload_and_drain.rs`. So this first waits, polling `SigCgt` in
    /// `/proc/<pid>/status`, until SIGHUP, SIGINT and SIGTERM are caught.
    pub fn signal(&self, name: &str) {
        self.wait_signal_handlers();
        self.signal_now(name);
    }

    /// Waits until the process catches SIGHUP (1), SIGINT (2) and SIGTERM (15).
    pub fn wait_signal_handlers(&self) {
        let wanted: u64 = [libc::SIGHUP, libc::SIGINT, libc::SIGTERM].iter().map(|s| 1u64 << (s - 1)).sum();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if self.caught_signals() & wanted == wanted {
                return;
            }
            assert!(Instant::now() < deadline, "the gateway never installed its signal handlers");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// The `SigCgt` mask (bit N-1 set = signal N is caught).
    pub fn caught_signals(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("SigCgt:"))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .unwrap_or(0)
    }

    /// Sends a signal by name (`HUP`, `TERM`, `INT`) right away.
    pub fn signal_now(&self, name: &str) {
        let sig = match name {
            "HUP" => libc::SIGHUP,
            "INT" => libc::SIGINT,
            "TERM" => libc::SIGTERM,
            other => panic!("unsupported signal {other}"),
        };
        let pid = libc::pid_t::try_from(self.pid()).expect("pid fits");
        // SAFETY: kill(2) with our own child's pid and a valid signal number.
        let rc = unsafe { libc::kill(pid, sig) };
        assert_eq!(rc, 0, "kill({pid}, {name}) failed: {}", std::io::Error::last_os_error());
    }

    /// Replaces the config file atomically (write then rename), without signalling.
    pub fn write_config(&self, toml: &str) {
        let tmp = self.config_path.with_extension("toml.new");
        std::fs::write(&tmp, toml).expect("write the new config");
        std::fs::rename(&tmp, &self.config_path).expect("replace the config");
    }

    /// Replaces the config file and sends SIGHUP; waits for `config generation <generation>
    /// applied on N/N shards` and returns that line.
    pub fn reload(&self, toml: &str, generation: u64) -> String {
        self.write_config(toml);
        self.signal("HUP");
        let line = self.wait_for_log(&format!("config generation {generation} applied"), START_TIMEOUT);
        let applied = line.rsplit("applied on ").next().unwrap_or_default();
        let (done, total) = applied.split_once('/').expect("N/M shards");
        let total = total.split_whitespace().next().unwrap_or_default();
        assert_eq!(done, total, "generation applied on every shard: {line}");
        line
    }

    /// Every log line so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner).lines.clone()
    }

    /// Number of log lines so far (a mark for [`Gateway::wait_for_log_after`]).
    pub fn log_mark(&self) -> usize {
        self.logs.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner).lines.len()
    }

    /// Waits for a log line containing `needle`; returns it.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> String {
        self.wait_for_log_after(0, needle, timeout)
    }

    /// Waits for a log line containing `needle` among lines after `mark`; returns it.
    pub fn wait_for_log_after(&self, mark: usize, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let mut st = self.logs.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        loop {
            if let Some(line) = st.lines.iter().skip(mark).find(|l| l.contains(needle)) {
                return line.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || st.closed {
                let why = if st.closed { "the gateway closed its log (exited)" } else { "timed out" };
                let log = st.lines.join("\n");
                drop(st);
                panic!("no log line containing {needle:?} within {timeout:?} ({why}); log:\n{log}");
            }
            st = self.logs.cond.wait_timeout(st, left).unwrap_or_else(std::sync::PoisonError::into_inner).0;
        }
    }

    /// The exit status if the process has exited.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().expect("try_wait");
        }
        self.exit
    }

    /// Waits for the process to exit (polling, bounded by `timeout`).
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        if let Some(s) = self.exit {
            return s;
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                self.exit = Some(s);
                return s;
            }
            assert!(Instant::now() < deadline, "the gateway did not exit within {timeout:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Resident set size in KiB (`VmRSS` from `/proc/<pid>/status`).
    pub fn rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("read /proc status");
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS line");
        line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("VmRSS value")
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if self.exit.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            let lines = self.logs();
            let tail = &lines[lines.len().saturating_sub(40)..];
            eprintln!("--- gateway log (last {} lines) ---\n{}", tail.len(), tail.join("\n"));
        }
    }
}
