//! `portcullis run --source etcd://...` against a real etcd (Debian's `etcd-server`, started
//! here on free ports): the document and the files it names are served from one revision, every
//! new revision is applied within a second, a bad revision is refused with its key and line while
//! the old one serves, etcd going away changes nothing served, and a restart without etcd serves
//! the state directory's revision.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use common::{LONG, Upstream, gateway::binary};

/// A free TCP port on 127.0.0.1 (bound, then released for the child to take).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Lines a child writes to one of its pipes, with a wait for a line containing a needle.
#[derive(Default)]
struct Lines {
    lines: Mutex<Vec<String>>,
    cond: Condvar,
}

impl Lines {
    fn follow(pipe: impl std::io::Read + Send + 'static) -> Arc<Lines> {
        let lines = Arc::new(Lines::default());
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                sink.lines.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(line);
                sink.cond.notify_all();
            }
        });
        lines
    }

    fn mark(&self) -> usize {
        self.lines.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len()
    }

    fn wait_after(&self, mark: usize, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let mut lines = self.lines.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        loop {
            if let Some(l) = lines.iter().skip(mark).find(|l| l.contains(needle)) {
                return l.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no line containing {needle:?} within {timeout:?}:\n{}",
                lines.join("\n")
            );
            lines = self.cond.wait_timeout(lines, left).unwrap_or_else(std::sync::PoisonError::into_inner).0;
        }
    }
}

/// One etcd member on free ports, killed when dropped.
struct Etcd {
    child: Child,
    name: String,
    client: SocketAddr,
    peer: u16,
    cluster: String,
    log: Arc<Lines>,
    dir: Arc<tempfile::TempDir>,
}

impl Etcd {
    /// A one-member cluster, ready.
    fn start() -> Etcd {
        Etcd::cluster(1).pop().expect("one member")
    }

    /// An `n`-member cluster, every member ready.
    fn cluster(n: usize) -> Vec<Etcd> {
        let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let cluster: Vec<String> =
            ports.iter().enumerate().map(|(i, (_, peer))| format!("m{i}=http://127.0.0.1:{peer}")).collect();
        let cluster = cluster.join(",");
        let members: Vec<Etcd> = ports
            .iter()
            .enumerate()
            .map(|(i, (client, peer))| Etcd::spawn(&format!("m{i}"), *client, *peer, &cluster, dir.clone()))
            .collect();
        for m in &members {
            m.log.wait_after(0, "ready to serve client requests", LONG);
        }
        members
    }

    fn spawn(name: &str, client: u16, peer: u16, cluster: &str, dir: Arc<tempfile::TempDir>) -> Etcd {
        let c = format!("http://127.0.0.1:{client}");
        let p = format!("http://127.0.0.1:{peer}");
        let mut child = Command::new("etcd")
            .args(["--name", name, "--data-dir"])
            .arg(dir.path().join(name))
            .args(["--listen-client-urls", &c, "--advertise-client-urls", &c])
            .args(["--listen-peer-urls", &p, "--initial-advertise-peer-urls", &p])
            .args(["--initial-cluster", cluster, "--initial-cluster-state", "new"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start etcd (Debian package etcd-server)");
        let log = Lines::follow(child.stderr.take().expect("stderr"));
        let client = SocketAddr::from(([127, 0, 0, 1], client));
        Etcd { child, name: name.to_owned(), client, peer, cluster: cluster.to_owned(), log, dir }
    }

    /// Restarts a killed member on the same ports and data; waits until it is ready.
    fn restart(&mut self) {
        self.kill();
        *self = Etcd::spawn(
            &self.name.clone(),
            self.client.port(),
            self.peer,
            &self.cluster.clone(),
            self.dir.clone(),
        );
        self.log.wait_after(0, "ready to serve client requests", LONG);
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Writes every `(key, value)` in one transaction; returns the new revision.
    fn put_all(&self, puts: &[(&str, &str)]) -> i64 {
        let ops: Vec<serde_json::Value> = puts
            .iter()
            .map(|(k, v)| serde_json::json!({"request_put": {"key": B64.encode(k), "value": B64.encode(v)}}))
            .collect();
        let body = serde_json::json!({ "success": ops }).to_string();
        let req = format!(
            "POST /v3/kv/txn HTTP/1.1\r\nHost: etcd\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        // A member answers 503 while the cluster elects a new leader (after a kill): retry.
        let deadline = Instant::now() + LONG;
        let resp = loop {
            let resp = common::Client::connect(self.client).request(req.as_bytes());
            if resp.status != 503 || Instant::now() > deadline {
                break resp;
            }
        };
        assert_eq!(resp.status, 200, "{}", resp.text());
        let rev = &resp.json()["header"]["revision"];
        rev.as_str().and_then(|r| r.parse().ok()).expect("revision")
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A gateway run with `--source`, killed when dropped.
struct Node {
    child: Child,
    addr: SocketAddr,
    log: Arc<Lines>,
}

impl Node {
    fn start(source: &str, state: &Path) -> Node {
        Node::start_named(source, state, "gw-a")
    }

    fn start_named(source: &str, state: &Path, name: &str) -> Node {
        let mut child = Command::new(binary())
            .args(["--log", "info", "run", "--source", source, "--node-name", name, "--state-dir"])
            .arg(state)
            .env("NO_COLOR", "1")
            .env_remove("PORTCULLIS_LOG")
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn portcullis");
        let log = Lines::follow(child.stderr.take().expect("stderr"));
        let out = Lines::follow(child.stdout.take().expect("stdout"));
        let line = out.wait_after(0, "listening ", LONG);
        let addr = line.split_whitespace().nth(2).and_then(|a| a.parse().ok()).expect("listening address");
        Node { child, addr, log }
    }

    fn version(&self) -> Option<String> {
        common::get(self.addr, "/").header("x-version").map(str::to_owned)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The config document: two shards, the upstream's address in a file stored beside it.
fn document(version: &str) -> String {
    format!(
        "[server]\nshards = 2\npin_cpus = false\n\n[[listeners]]\nbind = \"127.0.0.1:0\"\n\n\
         [[upstreams]]\nname = \"app\"\nendpoints_file = \"upstreams/app.txt\"\n\n\
         [[routes]]\nname = \"all\"\nprefix = \"/\"\nupstream = \"app\"\n\
         response_headers = {{ set = {{ x-version = \"{version}\" }} }}\n"
    )
}

/// The etcd endpoints of `members`, comma-separated.
fn endpoints(members: &[Etcd]) -> String {
    members.iter().map(|m| m.client.to_string()).collect::<Vec<_>>().join(",")
}

/// p50 and max of `times`, for the figures printed.
fn p50_max(mut times: Vec<Duration>) -> (Duration, Duration) {
    times.sort();
    (times[times.len() / 2], times[times.len() - 1])
}

fn push(etcd: &Etcd, doc: &str, endpoints: &str) -> i64 {
    etcd.put_all(&[("/fleet/t/config.toml", doc), ("/fleet/t/files/upstreams/app.txt", endpoints)])
}

/// `portcullis fleet status --source SOURCE`, polled (bounded) until a line contains `needle`.
fn fleet_status_shows(source: &str, needle: &str) -> String {
    let deadline = Instant::now() + LONG;
    loop {
        let out = Command::new(binary())
            .args(["fleet", "status", "--source", source])
            .output()
            .expect("fleet status");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if let Some(line) = text.lines().find(|l| l.contains(needle)) {
            return line.to_owned();
        }
        assert!(Instant::now() < deadline, "fleet status never showed {needle:?}:\n{text}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits (bounded) until `node` serves `version`; returns how long that took.
fn served_within(node: &Node, version: &str, bound: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if node.version().as_deref() == Some(version) {
            return start.elapsed();
        }
        assert!(start.elapsed() < bound, "{version} not served within {bound:?}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn a_gateway_follows_etcd_refuses_bad_revisions_and_survives_etcd_going_away() {
    let up = Upstream::echo("app");
    let eps = format!("{}\n", up.addr);
    let mut etcd = Etcd::start();
    let state = tempfile::tempdir().expect("state dir");
    let source = format!("etcd://127.0.0.1:{},{}/fleet/t", free_port(), etcd.client);
    let first = push(&etcd, &document("1"), &eps);
    let node = Node::start(&source, state.path());
    assert_eq!(node.version().as_deref(), Some("1"));
    node.log.wait_after(0, "from etcd", LONG);
    let line = fleet_status_shows(&source, "gw-a");
    assert!(line.contains(&format!("revision {first}  generation 1")) && line.ends_with(" ok"), "{line}");

    // Every push is served within a second (the first endpoint listed is dead: the client
    // moved to the second one).
    let mut times = Vec::new();
    let mut last = first;
    for i in 2..22 {
        last = push(&etcd, &document(&i.to_string()), &eps);
        times.push(served_within(&node, &i.to_string(), Duration::from_secs(1)));
    }
    let (p50, max) = p50_max(times);
    println!("etcd push to served (20 pushes, 2 shards): p50 {p50:?}, max {max:?}");

    // A revision that does not validate is refused with its key and line; the old one serves.
    let mark = node.log.mark();
    let bad = document("bad").replace("upstream = \"app\"", "upstream = \"ghost\"");
    let rev = push(&etcd, &bad, &eps);
    let line = node.log.wait_after(mark, "config reload refused", LONG);
    assert!(
        line.contains(&format!(
            "routes[0].upstream: unknown upstream \"ghost\" (etcd:/fleet/t/config.toml@{rev}:15)"
        )),
        "{line}"
    );
    node.log.wait_after(mark, &format!("etcd revision {rev} refused"), LONG);
    assert_eq!(node.version().as_deref(), Some("21"));
    // Fleet status shows the gateway still on the last good revision, and why it refused.
    let line =
        fleet_status_shows(&source, &format!("REFUSED newer revision: revision {rev}: routes[0].upstream"));
    assert!(
        line.starts_with("gw-a  host ") && line.contains(&format!("revision {last}  generation 21")),
        "{line}"
    );
    // So is one naming a file the revision does not hold.
    let mark = node.log.mark();
    let rev = etcd.put_all(&[(
        "/fleet/t/config.toml",
        &document("nofile").replace("upstreams/app.txt", "upstreams/other.txt"),
    )]);
    let line = node.log.wait_after(mark, "config reload refused", LONG);
    assert!(line.contains("upstreams[0].endpoints_file: upstreams/other.txt is not stored"), "{line}");
    assert!(line.contains(&format!("@{rev}:")), "{line}");
    assert_eq!(node.version().as_deref(), Some("21"));

    // etcd goes away: the gateway keeps serving what it has.
    push(&etcd, &document("22"), &eps);
    served_within(&node, "22", LONG);
    let mark = node.log.mark();
    etcd.kill();
    node.log.wait_after(mark, "reconnecting", LONG);
    for _ in 0..20 {
        assert_eq!(node.version().as_deref(), Some("22"));
    }

    // Restarted while etcd is down: it serves the state directory's committed revision.
    drop(node);
    let node = Node::start(&source, state.path());
    node.log.wait_after(0, "from the state directory", LONG);
    assert_eq!(node.version().as_deref(), Some("22"));

    // etcd comes back: the gateway catches up with the next push.
    etcd.restart();
    push(&etcd, &document("23"), &eps);
    served_within(&node, "23", LONG);
}

#[test]
fn a_three_member_cluster_losing_a_member_keeps_pushing() {
    let up = Upstream::echo("app");
    let eps = format!("{}\n", up.addr);
    let mut members = Etcd::cluster(3);
    let state = tempfile::tempdir().expect("state dir");
    let source = format!("etcd://{}/fleet/t", endpoints(&members));
    push(&members[1], &document("1"), &eps);
    let node = Node::start(&source, state.path());
    assert_eq!(node.version().as_deref(), Some("1"));

    let mut times = Vec::new();
    for i in 2..7 {
        push(&members[1], &document(&i.to_string()), &eps);
        times.push(served_within(&node, &i.to_string(), Duration::from_secs(1)));
    }
    // The gateway reads from the first member listed: kill it. Pushes through the others still
    // reach the gateway, each within a second.
    let mark = node.log.mark();
    members[0].kill();
    for i in 7..17 {
        push(&members[1 + i % 2], &document(&i.to_string()), &eps);
        let took = served_within(&node, &i.to_string(), Duration::from_secs(2));
        times.push(took);
    }
    node.log.wait_after(mark, "reconnecting", LONG);
    for _ in 0..10 {
        assert_eq!(node.version().as_deref(), Some("16"));
    }
    let (p50, max) = p50_max(times.clone());
    println!("3-member etcd, member 0 killed after 5 of 15 pushes: push to served p50 {p50:?}, max {max:?}");
    assert!(max < Duration::from_secs(1), "every push served within a second: {times:?}");

    // The killed member comes back; the fleet goes on.
    members[0].restart();
    push(&members[0], &document("17"), &eps);
    served_within(&node, "17", LONG);
}

#[test]
#[ignore = "a figure, not a check: cargo test --test fleet_etcd twenty -- --ignored --nocapture"]
fn twenty_gateways_follow_fifty_pushes() {
    let up = Upstream::echo("app");
    let eps = format!("{}\n", up.addr);
    let etcd = Etcd::start();
    let source = format!("etcd://{}/fleet/t", etcd.client);
    let doc = |v: &str| document(v).replace("shards = 2", "shards = 1");
    push(&etcd, &doc("1"), &eps);
    let states: Vec<tempfile::TempDir> = (0..20).map(|_| tempfile::tempdir().expect("state")).collect();
    let nodes: Vec<Node> = states
        .iter()
        .enumerate()
        .map(|(i, st)| Node::start_named(&source, st.path(), &format!("gw-{i}")))
        .collect();
    let mut all = Vec::new();
    for i in 2..52 {
        let v = i.to_string();
        push(&etcd, &doc(&v), &eps);
        let t0 = Instant::now();
        for n in &nodes {
            served_within(n, &v, LONG);
        }
        all.push(t0.elapsed());
    }
    all.sort();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    println!(
        "20 gateways (1 shard each, debug build), 50 pushes, push returned -> every gateway serving: \
         p50 {:?}, p99 {:?}, max {:?} (polled one gateway after another)",
        pct(0.5),
        pct(0.99),
        all[all.len() - 1]
    );
    let line = fleet_status_shows(&source, "gw-19");
    assert!(line.contains(" ok"), "{line}");
}

/// `portcullis push ...` run in `dir`: (exit code, stdout, stderr).
fn push_cmd(dir: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(binary())
        .arg("push")
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("push");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

#[test]
fn push_validates_uploads_whole_and_rolls_back() {
    let up = Upstream::echo("app");
    let etcd = Etcd::start();
    let source = format!("etcd://{}/fleet/t", etcd.client);
    let dir = tempfile::tempdir().expect("dir");
    std::fs::create_dir_all(dir.path().join("upstreams")).expect("mkdir");
    std::fs::write(dir.path().join("upstreams/app.txt"), format!("{}\n", up.addr)).expect("endpoints file");
    let file = dir.path().join("gw.toml");

    std::fs::write(&file, document("p1")).expect("write");
    let (code, out, err) = push_cmd(dir.path(), &["--source", &source, "gw.toml"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.starts_with("pushed 2 key(s) as revision "), "the document and its file: {out}");
    let state = tempfile::tempdir().expect("state");
    let node = Node::start(&source, state.path());
    assert_eq!(node.version().as_deref(), Some("p1"));

    std::fs::write(&file, document("p2")).expect("write");
    assert_eq!(push_cmd(dir.path(), &["--source", &source, "gw.toml"]).0, Some(0));
    served_within(&node, "p2", LONG);

    // A file `run` would refuse is refused before anything is written, with file:line.
    std::fs::write(&file, document("p3").replace("upstream = \"app\"", "upstream = \"ghost\""))
        .expect("write");
    let (code, _, err) = push_cmd(dir.path(), &["--source", &source, "gw.toml"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("routes[0].upstream: unknown upstream \"ghost\" (gw.toml:15)"), "{err}");
    assert!(err.contains("nothing pushed"), "{err}");
    assert_eq!(node.version().as_deref(), Some("p2"));

    // Rollback re-publishes the version before the current one.
    let (code, out, err) = push_cmd(dir.path(), &["--source", &source, "--rollback"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.starts_with("pushed 2 key(s)"), "{out}");
    served_within(&node, "p1", LONG);
}
