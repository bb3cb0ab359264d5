//! The access log (JSON lines written off the shards, reopened on SIGUSR1) and W3C trace
//! context, through the real binary.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Gateway, LONG, Upstream, config, request};
use serde_json::Value;

const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// Waits until `path` holds at least `n` lines; returns them parsed as JSON.
fn lines(path: &Path, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + LONG;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.lines().count() >= n {
            assert!(text.ends_with('\n'), "whole lines only: {text:?}");
            return text
                .lines()
                .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
                .collect();
        }
        assert!(Instant::now() < deadline, "{} has {} lines, want {n}", path.display(), text.lines().count());
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn gateway(dir: &Path, app: std::net::SocketAddr, query: &str) -> Gateway {
    let log = dir.join("access.log");
    let rest = format!(
        "[access_log]\nenabled = true\npath = \"{}\"\nquery = \"{query}\"\n\n\
         [[upstreams]]\nname = \"app\"\nendpoints = [\"{app}\"]\n\
         [[routes]]\nname = \"users\"\npath = \"/users/{{id}}\"\nupstream = \"app\"\n",
        log.display()
    );
    Gateway::start(&config("", &rest))
}

#[test]
fn one_json_line_per_request_with_the_fields() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = Upstream::echo("app");
    let gw = gateway(dir.path(), app.addr, "strip");
    let ok = request(
        gw.addr,
        format!(
            "POST /users/7?token=hunter2 HTTP/1.1\r\nHost: t\r\nX-Request-Id: rid-1\r\ntraceparent: {TP}\r\n\
             Authorization: Bearer hunter2\r\nContent-Length: 4\r\n\r\nbody"
        )
        .as_bytes(),
    );
    assert_eq!(ok.status, 200);
    request(gw.addr, b"GET /missing HTTP/1.0\r\n\r\n").assert_error(404, "route_not_found");
    let path = dir.path().join("access.log");
    let got = lines(&path, 2);
    assert_eq!(got.len(), 2);
    // Two shards log independently: order lines by status.
    let by = |status: u64| got.iter().find(|l| l["status"] == status).unwrap_or_else(|| panic!("{got:?}"));
    let (a, b) = (by(200), by(404));
    let text = std::fs::read_to_string(&path).expect("log");
    assert!(!text.contains("hunter2"), "no credential and no query value: {text}");
    assert!(!text.contains("body"), "no body");
    assert_eq!(a["request_id"], "rid-1");
    assert_eq!(a["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(a["client_ip"], "127.0.0.1");
    assert_eq!(a["method"], "POST");
    assert_eq!(a["route"], "users");
    assert_eq!(a["path"], "/users/7", "query stripped");
    assert_eq!(a["status"], 200);
    assert_eq!(a["bytes_in"], 4);
    assert_eq!(a["bytes_out"].as_u64(), Some(ok.body.len() as u64));
    assert!(a["duration_us"].as_u64().is_some_and(|d| d > 0));
    let up = a["upstream_us"].as_u64().expect("upstream time");
    assert!(up > 0 && up <= a["duration_us"].as_u64().unwrap_or(0));
    let added = a["added_us"].as_u64().expect("added time");
    assert!(added + up <= a["duration_us"].as_u64().unwrap_or(0), "{a}");
    assert_eq!(a["upstream"], app.addr.to_string());
    assert_eq!(a["protocol"], "HTTP/1.1");
    assert!(a["consumer"].is_null() && a["tls"].is_null() && a["error"].is_null());
    assert!(a["time"].as_str().is_some_and(|t| t.len() == 24 && t.ends_with('Z')), "{}", a["time"]);
    // The short-circuit is logged too.
    assert_eq!(b["status"], 404);
    assert_eq!(b["error"], "route_not_found");
    assert!(b["route"].is_null() && b["upstream"].is_null() && b["upstream_us"].is_null());
    let added = b["added_us"].as_u64().expect("a local reply has an added time");
    assert!(added <= b["duration_us"].as_u64().unwrap_or(0), "all of it is the gateway's: {b}");
    assert_eq!(b["protocol"], "HTTP/1.0");
    assert_eq!(b["trace_id"].as_str().map(str::len), Some(32), "a trace started by the gateway");
}

#[test]
fn added_time_leaves_out_the_upstream_wait() {
    // The upstream takes 300 ms to answer: the exchange lasts that long, the gateway's own
    // added time must not include it.
    let dir = tempfile::tempdir().expect("tempdir");
    let wait = Duration::from_millis(300);
    let app =
        Upstream::start(move |req| common::Reply::Delay(wait, Box::new(common::echo_reply("app", req))));
    let gw = gateway(dir.path(), app.addr, "strip");
    assert_eq!(request(gw.addr, b"GET /users/1 HTTP/1.1\r\nHost: t\r\n\r\n").status, 200);
    let l = &lines(&dir.path().join("access.log"), 1)[0];
    let (total, up) = (l["duration_us"].as_u64().unwrap_or(0), l["upstream_us"].as_u64().unwrap_or(0));
    let added = l["added_us"].as_u64().expect("added time");
    assert!(total >= 300_000 && up >= 300_000, "the upstream's delay is in both: {l}");
    assert!(added < total - 250_000, "the upstream wait is not the gateway's time: {l}");
    assert!(added <= total - up, "{l}");
}

#[test]
fn redacted_query_and_reopen_on_sigusr1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = Upstream::echo("app");
    let gw = gateway(dir.path(), app.addr, "redact");
    let path = dir.path().join("access.log");
    assert_eq!(request(gw.addr, b"GET /users/1?q=abc&flag HTTP/1.1\r\nHost: t\r\n\r\n").status, 200);
    assert_eq!(lines(&path, 1)[0]["path"], "/users/1?q=REDACTED&flag");

    // logrotate: rename, then SIGUSR1; new lines go to a new file at the configured path.
    let rotated = dir.path().join("access.log.1");
    std::fs::rename(&path, &rotated).expect("rotate");
    let usr1 = 1u64 << (libc::SIGUSR1 - 1);
    let deadline = Instant::now() + LONG;
    while gw.caught_signals() & usr1 == 0 {
        assert!(Instant::now() < deadline, "SIGUSR1 never caught");
        std::thread::sleep(Duration::from_millis(5));
    }
    let pid = libc::pid_t::try_from(gw.pid()).expect("pid");
    // SAFETY: kill(2) on our own child with a valid signal.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGUSR1) }, 0);
    gw.wait_for_log("reopening the access log", LONG);
    assert_eq!(request(gw.addr, b"GET /users/2 HTTP/1.1\r\nHost: t\r\n\r\n").status, 200);
    assert_eq!(lines(&path, 1)[0]["path"], "/users/2");
    assert_eq!(lines(&rotated, 1).len(), 1, "the rotated file keeps its line");
}

#[test]
fn traceparent_is_continued_or_started_toward_the_upstream() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = Upstream::echo("app");
    let gw = gateway(dir.path(), app.addr, "strip");
    let with = request(
        gw.addr,
        format!("GET /users/1 HTTP/1.1\r\nHost: t\r\ntraceparent: {TP}\r\ntracestate: congo=t61\r\n\r\n")
            .as_bytes(),
    );
    assert_eq!(with.status, 200);
    let seen = app.last();
    let tp = seen.header("traceparent").expect("traceparent forwarded").to_owned();
    assert_eq!(&tp[..36], &TP[..36], "same version and trace id");
    assert_ne!(&tp[36..52], &TP[36..52], "the gateway's own span id");
    assert_eq!(&tp[52..], "-01", "the caller's sampling decision");
    assert_eq!(seen.header("tracestate"), Some("congo=t61"));

    assert_eq!(request(gw.addr, b"GET /users/2 HTTP/1.1\r\nHost: t\r\ntracestate: x=y\r\n\r\n").status, 200);
    let seen = app.last();
    let started = seen.header("traceparent").expect("a trace is started").to_owned();
    assert_eq!(started.len(), 55);
    assert!(started.starts_with("00-") && started.ends_with("-01"), "{started}");
    assert!(seen.header("tracestate").is_none(), "no vendor state for a new trace");
    let got = lines(&dir.path().join("access.log"), 2);
    let ids: Vec<&str> = got.iter().filter_map(|l| l["trace_id"].as_str()).collect();
    assert!(ids.contains(&&started[3..35]), "the log names the trace: {ids:?}");
}
