//! Real Redis deployments beyond one plain server, for the rate-limit and revocation tests: a
//! three-master Redis Cluster on free ports (created with `redis-cli --cluster create`, ready
//! once every node reports `cluster_state:ok`), whose masters can be killed and restarted with
//! their node config (they rejoin with their slots), and a server that requires `AUTH`.
//! `.ci/test` installs `redis-server` and `redis-tools` (redis-cli) when missing.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::redis::{command, ping};

/// How long a node or the cluster may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port()
}

/// One redis-server process started with extra arguments; killed when dropped.
pub struct Node {
    /// Where it listens.
    pub addr: SocketAddr,
    args: Vec<String>,
    child: Option<Child>,
}

impl Node {
    /// Starts redis-server on a free port with `args` added, waiting until it accepts
    /// connections (`ready` decides, e.g. a PING with or without AUTH).
    pub fn start(args: &[String], ready: impl Fn(SocketAddr) -> bool) -> Node {
        Node::start_with(|_| args.to_vec(), ready)
    }

    /// Like `start`, the arguments made from the chosen port (e.g. `--port 0 --tls-port P`:
    /// later arguments win).
    pub fn start_with(args: impl FnOnce(u16) -> Vec<String>, ready: impl Fn(SocketAddr) -> bool) -> Node {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let mut n = Node { addr, args: args(addr.port()), child: None };
        n.restart(ready);
        n
    }

    /// (Re)starts the process on its port.
    pub fn restart(&mut self, ready: impl Fn(SocketAddr) -> bool) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new("redis-server")
            .args(["--port", &self.addr.port().to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start redis-server ({e}); apt-get install redis-server"));
        self.child = Some(child);
        let deadline = Instant::now() + READY_TIMEOUT;
        while !ready(self.addr) {
            assert!(Instant::now() < deadline, "redis-server on {} never became ready", self.addr);
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGKILL, waiting until it is gone.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The whole `CLUSTER INFO` reply of `addr`.
fn cluster_info(addr: SocketAddr) -> String {
    // `command` returns the first line only: read the whole bulk reply through redis-cli.
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &addr.port().to_string(), "CLUSTER", "INFO"])
        .output()
        .expect("redis-cli (apt-get install redis-tools)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A three-master Redis Cluster (no replicas).
pub struct Cluster {
    /// The masters, in slot order: node 0 serves 0-5460, 1 5461-10922, 2 10923-16383.
    pub nodes: Vec<Node>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts three cluster-enabled nodes, creates the cluster, waits for `cluster_state:ok`
    /// on every node.
    pub fn start() -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let nodes: Vec<Node> = (0..3)
            .map(|i| {
                let conf: PathBuf = dir.path().join(format!("nodes-{i}.conf"));
                let args = vec![
                    "--cluster-enabled".into(),
                    "yes".into(),
                    "--cluster-config-file".into(),
                    conf.display().to_string(),
                    "--cluster-node-timeout".into(),
                    "1000".into(),
                    "--dir".into(),
                    dir.path().display().to_string(),
                ];
                Node::start(&args, ping)
            })
            .collect();
        let addrs: Vec<String> = nodes.iter().map(|n| n.addr.to_string()).collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli (apt-get install redis-tools)");
        assert!(out.status.success(), "cluster create: {}", String::from_utf8_lossy(&out.stdout));
        let c = Cluster { nodes, _dir: dir };
        c.wait_ok();
        c
    }

    /// Waits until every running node reports `cluster_state:ok`.
    pub fn wait_ok(&self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        for n in self.nodes.iter().filter(|n| n.child.is_some()) {
            while !cluster_info(n.addr).contains("cluster_state:ok") {
                assert!(Instant::now() < deadline, "cluster never became ok: {}", cluster_info(n.addr));
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// The seed list for `redis_cluster = [...]`.
    pub fn seeds_toml(&self) -> String {
        let list: Vec<String> = self.nodes.iter().map(|n| format!("\"{}\"", n.addr)).collect();
        format!("[{}]", list.join(", "))
    }

    /// Keys held by each master.
    pub fn dbsizes(&self) -> Vec<i64> {
        self.nodes
            .iter()
            .map(|n| command(n.addr, &["DBSIZE"]).trim_start_matches(':').parse().unwrap_or(-1))
            .collect()
    }
}

/// CRC16 (XMODEM) slot of `key` (whole key; callers pass the hash tag's content).
pub fn slot(key: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in key {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
        }
    }
    crc % 16384
}

/// Which of the three masters serves `slot`, as `redis-cli --cluster create` splits them.
pub fn master_of(slot: u16) -> usize {
    match slot {
        0..=5460 => 0,
        5461..=10922 => 1,
        _ => 2,
    }
}

/// The slot of the gateway's Redis keys for limit `limit` keyed by one header value `value`
/// (`<prefix>:{<limit>:<hex of 'h', u32 length, value>}`).
pub fn header_key_slot(limit: &str, value: &str) -> u16 {
    let mut raw = vec![b'h'];
    raw.extend_from_slice(&(value.len() as u32).to_be_bytes());
    raw.extend_from_slice(value.as_bytes());
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    slot(format!("{limit}:{hex}").as_bytes())
}

/// Sends `AUTH user password` (or `AUTH password` with no user) then one command on a new
/// connection; returns the first line of each reply.
pub fn authed(addr: SocketAddr, user: Option<&str>, password: &str, args: &[&str]) -> (String, String) {
    use std::io::{BufRead, BufReader, Write};
    let mut s =
        std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect to redis");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let encode = |args: &[&str]| {
        let mut out = format!("*{}\r\n", args.len());
        for a in args {
            out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        out
    };
    let auth: Vec<&str> = match user {
        Some(u) => vec!["AUTH", u, password],
        None => vec!["AUTH", password],
    };
    s.write_all(format!("{}{}", encode(&auth), encode(args)).as_bytes()).expect("write to redis");
    let mut r = BufReader::new(s);
    let line = |r: &mut BufReader<std::net::TcpStream>| {
        let mut l = String::new();
        r.read_line(&mut l).expect("redis reply");
        l.trim_end().to_owned()
    };
    let first = line(&mut r);
    let second = line(&mut r);
    (first, second)
}
