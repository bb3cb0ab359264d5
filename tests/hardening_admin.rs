//! Hardening of the admin API and of the listening ports, against the real binary on real
//! sockets: slow clients cannot lock health probes out of the admin API and are cut at the
//! whole-request deadline; an admin bind outside loopback needs a token; `GET /config` hides
//! credentials by meaning (headers, URL userinfo and query values, secret-typed keys); a second
//! `portcullis run` on a port another process serves is refused, naming that process, unless it
//! is a declared hand-over.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::gateway::binary;
use common::{Client, Gateway, LONG, admin, config, get};

const TOKEN: &str = "hardening-token-0123456789";

fn admin_gateway(admin_extra: &str, rest: &str) -> Gateway {
    let rest = format!(
        "[admin]\nbind = \"127.0.0.1:0\"\ntoken = \"{TOKEN}\"\n{admin_extra}\n\n\
         [[upstreams]]\nname = \"app\"\nendpoints = [\"127.0.0.1:9\"]\n\
         [[routes]]\nprefix = \"/\"\nupstream = \"app\"\n{rest}"
    );
    Gateway::start(&config("", &rest).replace("shards = 2", "shards = 1"))
}

/// Sends `bytes` one at a time, `every` apart, until the gateway answers; returns the answer
/// and how long it took.
fn trickle_until_answered(a: SocketAddr, bytes: &[u8], every: Duration) -> (common::Response, Duration) {
    // Timed from before the connection exists, so never less than the gateway's own deadline.
    let start = Instant::now();
    let mut c = Client::connect(a);
    let reader = c.stream().try_clone().expect("clone");
    let answered = Arc::new(AtomicBool::new(false));
    let done = answered.clone();
    let bytes = bytes.to_vec();
    let sender = std::thread::spawn(move || {
        let mut out = reader;
        for b in bytes.iter().cycle() {
            if done.load(Ordering::Relaxed) || out.write_all(&[*b]).is_err() {
                break;
            }
            std::thread::sleep(every);
        }
    });
    let r = c.read_response();
    let took = start.elapsed();
    answered.store(true, Ordering::Relaxed);
    let _ = sender.join();
    (r, took)
}

#[test]
fn a_trickled_head_or_body_is_cut_at_the_whole_request_deadline() {
    let gw = admin_gateway("request_timeout = \"2s\"", "");
    let a = gw.admin.expect("admin address");
    // One byte every 300 ms: a per-read timeout would never fire; the whole-request one does.
    let (r, took) =
        trickle_until_answered(a, b"GET /healthz HTTP/1.1\r\nX-Slow: aaaaaaaa", Duration::from_millis(300));
    assert_eq!(r.status, 408, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "request_timeout");
    assert!(took >= Duration::from_millis(1900), "cut at the deadline, not before: {took:?}");
    assert!(took < Duration::from_secs(10), "cut at the 2 s deadline: {took:?}");

    let mut c = Client::connect(a);
    c.send(
        format!("POST /config HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 1000\r\n\r\n")
            .as_bytes(),
    );
    let writer = c.stream().try_clone().expect("clone");
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let body = std::thread::spawn(move || {
        let mut w = writer;
        while !stop2.load(Ordering::Relaxed) && w.write_all(b"#").is_ok() {
            std::thread::sleep(Duration::from_millis(300));
        }
    });
    let r = c.read_response();
    stop.store(true, Ordering::Relaxed);
    let _ = body.join();
    assert_eq!(
        (r.status, r.json()["error"]["code"].as_str()),
        (408, Some("request_timeout")),
        "{}",
        r.text()
    );
}

#[test]
fn slow_clients_filling_the_admin_table_cannot_lock_health_probes_out() {
    let gw = admin_gateway("request_timeout = \"3s\"", "");
    let a = gw.admin.expect("admin address");
    // 40 attackers (the table holds 32), each trickling a head one byte every 200 ms and
    // reconnecting whenever it is cut, for as long as the probes run.
    let stop = Arc::new(AtomicBool::new(false));
    let connected = Arc::new(AtomicUsize::new(0));
    let attackers: Vec<_> = (0..40)
        .map(|_| {
            let (stop, connected) = (stop.clone(), connected.clone());
            std::thread::spawn(move || {
                let mut first = true;
                while !stop.load(Ordering::Relaxed) {
                    let Ok(mut s) = TcpStream::connect(a) else { continue };
                    if first {
                        connected.fetch_add(1, Ordering::Relaxed);
                        first = false;
                    }
                    for b in b"GET /metrics HTTP/1.1\r\nX-Slow: ".iter().cycle() {
                        if stop.load(Ordering::Relaxed) || s.write_all(&[*b]).is_err() {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(200));
                    }
                }
            })
        })
        .collect();
    let deadline = Instant::now() + LONG;
    while connected.load(Ordering::Relaxed) < 40 && Instant::now() < deadline {
        std::thread::yield_now();
    }
    assert_eq!(connected.load(Ordering::Relaxed), 40, "every attacker connected");
    // Let the table fill and the trickles run past one deadline (3 s) so reconnects churn too.
    let until = Instant::now() + Duration::from_secs(4);
    let mut probes = 0;
    let (mut refused, mut attempts) = (0, 0);
    while Instant::now() < until || probes < 20 {
        for path in ["/healthz", "/readyz"] {
            // Like a liveness probe with a failure threshold of 3: a probe arriving while every
            // slot holds a connection that must not be cut is refused (README, Hardening: ~5 %
            // in a reconnect flood on a saturated machine); it must get in on a retry.
            let (status, tries) = probe(a, path);
            assert_eq!(status, Some(200), "probe {probes} of {path}: {tries} attempts refused");
            (refused, attempts) = (refused + tries - 1, attempts + tries);
        }
        probes += 1;
    }
    assert!(refused * 5 <= attempts, "{refused} of {attempts} probe attempts refused");
    // A token holder gets in too.
    let m = admin(a, "GET", "/metrics", Some(TOKEN), b"");
    assert_eq!(m.status, 200);
    stop.store(true, Ordering::Relaxed);
    for t in attackers {
        let _ = t.join();
    }
}

/// One health probe of `path` with up to three attempts (a refused connection is retried):
/// the status of the first answer, and how many attempts it took.
fn probe(a: SocketAddr, path: &str) -> (Option<u16>, usize) {
    for tries in 1..=3 {
        let answer = TcpStream::connect(a).and_then(|mut s| {
            s.set_read_timeout(Some(LONG))?;
            s.write_all(
                format!("GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n").as_bytes(),
            )?;
            let mut line = String::new();
            BufReader::new(s).read_line(&mut line)?;
            Ok(line)
        });
        if let Ok(line) = answer {
            let status = line.split(' ').nth(1).and_then(|c| c.parse().ok());
            if status.is_some() {
                return (status, tries);
            }
        }
    }
    (None, 3)
}

#[test]
fn an_oversized_admin_head_gets_431_with_its_reason_phrase() {
    let gw = admin_gateway("", "");
    let a = gw.admin.expect("admin address");
    let big = format!("GET /healthz HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(20 * 1024));
    let r = Client::connect(a).request(big.as_bytes());
    assert_eq!((r.status, r.reason.as_str()), (431, "Request Header Fields Too Large"));
    assert_eq!(r.json()["error"]["code"], "header_too_large");
}

fn write_config(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("gateway.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

#[test]
fn check_refuses_an_admin_bind_outside_loopback_without_a_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    for bind in ["0.0.0.0:9901", "[::]:9901", "192.0.2.1:9901"] {
        let text = format!(
            "[[listeners]]\nbind = \"127.0.0.1:0\"\n\n[admin]\nbind = \"{bind}\"\n\n\
             [[upstreams]]\nname = \"app\"\nendpoints = [\"127.0.0.1:9\"]\n"
        );
        let path = write_config(dir.path(), &text);
        let out = Command::new(binary())
            .args(["check", "--config"])
            .arg(&path)
            .env("NO_COLOR", "1")
            .output()
            .expect("run check");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{bind}: {err}");
        let line = format!("error: admin.bind: bind {}", bind.parse::<SocketAddr>().expect("addr"));
        assert!(err.contains(&line), "{bind}: {err}");
        assert!(err.contains("not a loopback address and [admin] has no token"), "{err}");
        assert!(err.contains(&format!("({}:5)", path.display())), "file:line: {err}");
        let with_token = text.replace("[admin]\n", &format!("[admin]\ntoken = \"{TOKEN}\"\n"));
        let path = write_config(dir.path(), &with_token);
        let ok = Command::new(binary()).args(["check", "--config"]).arg(&path).output().expect("run check");
        assert!(ok.status.success(), "{bind} with a token: {}", String::from_utf8_lossy(&ok.stderr));
    }
}

#[test]
fn get_config_hides_credential_headers_url_secrets_and_secret_fields() {
    let rest = "request_headers = { set = { authorization = \"Bearer upstream-secret-1\", \
                x-api-key = \"upstream-secret-2\", cookie = \"sid=upstream-secret-3\", \
                x-partner-key-id = \"upstream-secret-4\", x-tenant = \"acme\" } }\n\
                [auth]\n[auth.api_keys]\nfrom = [{ header = \"x-partner-key-id\" }]\n\
                keys = [{ sha256 = \"5e884898da28047151d0e56f8dc62927\
                73603d0d6aabbdd62a11ef721d1542d8\", consumer = \"c\" }]\n\
                [[auth.jwt]]\nname = \"corp\"\nissuer = \"https://id.example\"\nalgorithms = [\"RS256\"]\n\
                jwks_uri = \"http://127.0.0.1:9/jwks.json?access_token=upstream-secret-5\"\n\
                [[auth.jwt]]\nname = \"hs\"\nissuer = \"https://hs.example\"\nalgorithms = [\"HS256\"]\n\
                [[auth.jwt.keys]]\nsecret = \"upstream-secret-6-long-enough-for-hs256\"\n";
    let gw = admin_gateway("", &format!("auth = \"optional\"\n{rest}"));
    let a = gw.admin.expect("admin address");
    let r = admin(a, "GET", "/config", Some(TOKEN), b"");
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    assert!(!text.contains("upstream-secret") && !text.contains(TOKEN), "a secret leaked: {text}");
    let v = r.json();
    let set = &v["config"]["routes"][0]["request_headers"]["set"];
    for name in ["authorization", "x-api-key", "cookie", "x-partner-key-id"] {
        assert_eq!(set[name], "<redacted>", "{name}");
    }
    assert_eq!(set["x-tenant"], "acme", "ordinary headers stay readable");
    assert_eq!(
        v["config"]["auth"]["jwt"][0]["jwks_uri"],
        "http://127.0.0.1:9/jwks.json?access_token=<redacted>"
    );
    assert_eq!(v["config"]["auth"]["jwt"][1]["keys"], "<redacted>");
    assert_eq!(v["config"]["admin"]["token"], "<redacted>");
}

/// A free TCP port on 127.0.0.1 (bound and released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// Runs `portcullis run` on `config` and returns its exit code and stderr, failing if it
/// becomes ready instead of exiting.
fn run_expecting_refusal(config: &Path, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut child = Command::new(binary())
        .args(["run", "--config"])
        .arg(config)
        .env("NO_COLOR", "1")
        .env_remove("NOTIFY_SOCKET")
        .env_remove(portcullis_handover_env())
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            text.push_str(&line);
            text.push('\n');
        }
        let _ = tx.send(text);
    });
    let Ok(err) = rx.recv_timeout(LONG) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the second process did not exit");
    };
    let status = child.wait().expect("wait");
    (status.code(), err)
}

fn portcullis_handover_env() -> &'static str {
    "PORTCULLIS_HANDOVER_FROM"
}

/// A gateway config listening on `port` with its admin API on `admin_port` (0 = any).
fn fixed_port_config(port: u16, admin_port: u16) -> String {
    let rest = format!(
        "[admin]\nbind = \"127.0.0.1:{admin_port}\"\ntoken = \"{TOKEN}\"\n\n\
         [[upstreams]]\nname = \"app\"\nendpoints = [\"127.0.0.1:9\"]\n\
         [[routes]]\nprefix = \"/\"\nupstream = \"app\"\n"
    );
    config("", &rest)
        .replace("bind = \"127.0.0.1:0\"\n\n[http]", &format!("bind = \"127.0.0.1:{port}\"\n\n[http]"))
}

#[test]
fn a_second_run_on_a_served_port_is_refused_naming_the_holder_unless_it_is_a_handover() {
    let (port, admin_port) = (free_port(), free_port());
    let text = fixed_port_config(port, admin_port);
    let first = Gateway::start(&text);
    assert_eq!((first.addr.port(), first.admin.map(|a| a.port())), (port, Some(admin_port)));
    let holder = format!("PID {} (portcullis)", first.pid());
    let dir = tempfile::tempdir().expect("tempdir");

    // The same gateway port (admin elsewhere): refused, naming the port and the holder.
    let path = write_config(dir.path(), &fixed_port_config(port, 0));
    let (code, err) = run_expecting_refusal(&path, &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!("port {port} (127.0.0.1:{port}/tcp) is already served by {holder}")),
        "{err}"
    );
    assert!(err.contains("PORTCULLIS_HANDOVER_FROM"), "the way to hand over is named: {err}");

    // A hand-over naming another process is refused too.
    let (code, err) = run_expecting_refusal(&path, &[(portcullis_handover_env(), "1")]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains(&holder), "{err}");

    // The same admin port: the admin bind fails and says who holds it.
    let other = write_config(dir.path(), &fixed_port_config(0, admin_port));
    let (code, err) = run_expecting_refusal(&other, &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains(&format!("port {admin_port} is held by {holder}")), "{err}");

    // The declared hand-over starts beside the first process, then the first one drains away.
    let pid = first.pid().to_string();
    let second = Gateway::start_with_env(&fixed_port_config(port, 0), &[(portcullis_handover_env(), &pid)]);
    assert_eq!(second.addr.port(), port);
    second.wait_for_log("taking the port over", LONG);
    let mut first = first;
    first.signal("TERM");
    first.wait_exit(LONG);
    assert_eq!(get(second.addr, "/").status, 502, "the new process serves the port alone");
}
