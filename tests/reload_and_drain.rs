//! Config reload on SIGHUP (applied, refused, under load) and graceful shutdown on SIGTERM.

mod common;

use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Client, Gateway, LONG, Reply, Upstream, config, echo_reply, upstream_toml};

/// A catch-all route to `up` whose responses carry `x-version: <version>`.
fn versioned(up: &Upstream, version: &str) -> String {
    config(
        "",
        &format!(
            "{}\n[[routes]]\nname = \"all\"\nprefix = \"/\"\nupstream = \"app\"\n\
             response_headers = {{ set = {{ x-version = \"{version}\" }} }}\n",
            upstream_toml("app", up.addr)
        ),
    )
}

#[test]
fn sighup_applies_a_rewritten_config() {
    let up = Upstream::echo("app");
    let gw = Gateway::start(&versioned(&up, "1"));
    let mut kept = Client::connect(gw.addr);
    assert_eq!(kept.get("/").header("x-version"), Some("1"));

    gw.reload(&versioned(&up, "2"), 2);
    // New connections and the kept-alive one both see the new generation.
    assert_eq!(common::get(gw.addr, "/").header("x-version"), Some("2"));
    assert_eq!(kept.get("/").header("x-version"), Some("2"), "existing connections switch too");

    // A route added by a reload starts matching; one removed stops.
    let other = Upstream::echo("other");
    let text = config(
        "",
        &format!(
            "{}{}\n[[routes]]\npath = \"/new\"\nupstream = \"other\"\n",
            upstream_toml("app", up.addr),
            upstream_toml("other", other.addr)
        ),
    );
    gw.reload(&text, 3);
    assert_eq!(common::get(gw.addr, "/new").header("x-upstream"), Some("other"));
    common::get(gw.addr, "/old").assert_routed_error(404, "route_not_found");
}

#[test]
fn an_invalid_config_is_refused_and_the_running_one_keeps_serving() {
    let up = Upstream::echo("app");
    let gw = Gateway::start(&versioned(&up, "1"));
    gw.reload(&versioned(&up, "2"), 2);

    let mark = gw.log_mark();
    let broken =
        versioned(&up, "3").replace("upstream = \"app\"\nresponse", "upstream = \"ghost\"\nresponse");
    assert_ne!(broken, versioned(&up, "3"), "the rewrite broke the file");
    gw.write_config(&broken);
    gw.signal("HUP");
    let line = gw.wait_for_log_after(mark, "config reload refused", LONG);
    assert!(line.contains("unknown upstream \"ghost\""), "the refusal names the error: {line}");
    gw.wait_for_log_after(mark, "the running config stays", LONG);
    assert_eq!(common::get(gw.addr, "/").header("x-version"), Some("2"), "generation 2 still serves");

    // Garbage is refused too.
    let mark = gw.log_mark();
    gw.write_config("this is [not toml");
    gw.signal("HUP");
    gw.wait_for_log_after(mark, "config reload refused", LONG);
    assert_eq!(common::get(gw.addr, "/").header("x-version"), Some("2"));

    // A fixed file applies as the next generation: refusals did not consume a number.
    gw.reload(&versioned(&up, "4"), 3);
    assert_eq!(common::get(gw.addr, "/").header("x-version"), Some("4"));
    assert!(
        !gw.logs().iter().any(|l| l.contains("config generation 4 applied")),
        "no extra generation was applied"
    );
}

#[test]
fn reloads_under_load_fail_no_request() {
    let up = Upstream::echo("app");
    let gw = Gateway::start(&versioned(&up, "0"));
    let addr = gw.addr;
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for w in 0..3 {
        let (stop, ok) = (stop.clone(), ok.clone());
        workers.push(std::thread::spawn(move || -> Vec<String> {
            let mut failures = Vec::new();
            let mut versions = std::collections::BTreeSet::new();
            let mut c = Client::connect(addr);
            let mut i = 0u64;
            while !stop.load(Ordering::SeqCst) {
                // Worker 0 opens a fresh connection now and then; the others stay kept-alive.
                if w == 0 && i.is_multiple_of(20) {
                    c = Client::connect(addr);
                }
                let body = format!("w{w}-{i}");
                let req = format!(
                    "POST /load/{w}/{i} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                c.send(req.as_bytes());
                match c.try_read_response(false) {
                    Ok(r) if r.status == 200 && r.json()["body"] == body.as_str() => {
                        versions.insert(r.header("x-version").unwrap_or("none").to_owned());
                        ok.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(r) => failures.push(format!("w{w} #{i}: {} {}", r.status, r.text())),
                    Err(e) => {
                        failures.push(format!("w{w} #{i}: {e}"));
                        c = Client::connect(addr);
                    }
                }
                i += 1;
            }
            failures.push(format!("versions seen by w{w}: {versions:?}"));
            failures
        }));
    }
    // Let the load start, then reload several times while it runs.
    let deadline = Instant::now() + LONG;
    while ok.load(Ordering::SeqCst) < 30 {
        assert!(Instant::now() < deadline, "load did not start");
        std::thread::sleep(Duration::from_millis(5));
    }
    for generation in 2..=6u64 {
        let before = ok.load(Ordering::SeqCst);
        gw.reload(&versioned(&up, &generation.to_string()), generation);
        // Requests keep completing between reloads.
        while ok.load(Ordering::SeqCst) < before + 40 {
            assert!(Instant::now() < deadline, "requests stalled after reload {generation}");
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    stop.store(true, Ordering::SeqCst);
    let mut failures = Vec::new();
    let mut seen = Vec::new();
    for w in workers {
        for line in w.join().expect("worker") {
            if line.starts_with("versions seen") {
                seen.push(line);
            } else {
                failures.push(line);
            }
        }
    }
    let total = ok.load(Ordering::SeqCst);
    assert!(failures.is_empty(), "{} failed requests out of {}: {failures:#?}", failures.len(), total);
    assert!(total >= 230, "only {total} requests completed");
    assert_eq!(common::get(gw.addr, "/").header("x-version"), Some("6"));
    eprintln!("{total} requests across 5 reloads; {seen:?}");
}

#[test]
fn sigterm_drains_in_flight_requests_refuses_new_ones_and_exits_0() {
    let up = Upstream::start(|req| {
        let delay = if req.path() == "/slow" { 2000 } else { 0 };
        Reply::Delay(Duration::from_millis(delay), Box::new(echo_reply("app", req)))
    });
    let mut gw = Gateway::start(&config(
        "",
        &format!("{}\n[[routes]]\nprefix = \"/\"\nupstream = \"app\"\n", upstream_toml("app", up.addr)),
    ));
    let addr = gw.addr;
    // An idle kept-alive connection: closed by the drain without a request.
    let mut idle = Client::connect(addr);
    assert_eq!(idle.get("/warm").status, 200);

    let done = Arc::new(AtomicBool::new(false));
    let flag = done.clone();
    let inflight = std::thread::spawn(move || {
        let mut c = Client::connect(addr);
        let resp = c.get("/slow");
        flag.store(true, Ordering::SeqCst);
        let closed = c.expect_closed(LONG);
        (resp, closed)
    });
    up.wait_requests(2, LONG);
    let mark = gw.log_mark();
    gw.signal("TERM");
    gw.wait_for_log_after(mark, "draining", LONG);

    // New connections are refused while the slow request is still in flight.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
            // Refused outright, or reset when the SYN raced into a listener's queue just before
            // that listener was shut down: either way the connection is not served.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::ConnectionReset
                ) =>
            {
                break;
            }
            Err(e) => panic!("unexpected connect error: {e}"),
            Ok(_) => {
                assert!(Instant::now() < deadline, "the gateway still accepts connections while draining");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
    assert!(!done.load(Ordering::SeqCst), "the slow request was still in flight when connects were refused");

    let (resp, _) = inflight.join().expect("in-flight client");
    assert_eq!(resp.status, 200, "the in-flight request completed: {}", resp.text());
    assert_eq!(resp.json()["target"], "/slow");
    idle.expect_closed(LONG);
    let status = gw.wait_exit(LONG);
    assert!(status.success(), "exit status {status:?}");
    gw.wait_for_log_after(mark, "abandoned=0", LONG);
}

#[test]
fn sigint_also_stops_cleanly() {
    let up = Upstream::echo("app");
    let mut gw = Gateway::start(&versioned(&up, "1"));
    assert_eq!(common::get(gw.addr, "/").status, 200);
    gw.signal("INT");
    let status = gw.wait_exit(LONG);
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn responses_completed_during_a_drain_announce_the_close() {
    let up =
        Upstream::start(|req| Reply::Delay(Duration::from_millis(1500), Box::new(echo_reply("app", req))));
    let mut gw = Gateway::start(&config(
        "",
        &format!("{}\n[[routes]]\nprefix = \"/\"\nupstream = \"app\"\n", upstream_toml("app", up.addr)),
    ));
    let addr = gw.addr;
    let inflight = std::thread::spawn(move || {
        let mut c = Client::connect(addr);
        let resp = c.get("/slow");
        c.expect_closed(LONG);
        resp
    });
    up.wait_requests(1, LONG);
    let mark = gw.log_mark();
    gw.signal("TERM");
    gw.wait_for_log_after(mark, "draining", LONG);
    let resp = inflight.join().expect("in-flight client");
    assert_eq!(resp.status, 200);
    // The gateway closes this connection right after the response (it is draining), so an
    // HTTP/1.1 client must be told (RFC 9112 section 9.6); otherwise it may reuse a dying
    // connection for its next request.
    assert_eq!(resp.header("connection"), Some("close"), "{:?}", resp.headers);
    assert!(gw.wait_exit(LONG).success());
}

#[test]
fn sighup_right_after_readiness_reloads_instead_of_killing() {
    let up = Upstream::echo("app");
    // The window is narrow on an idle machine: keep both CPUs busy so the supervisor thread is
    // likely to be preempted inside it, and try several times; any start that dies shows it.
    let stop = Arc::new(AtomicBool::new(false));
    let burners: Vec<_> = (0..2)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            })
        })
        .collect();
    let _stop_burners = StopOnDrop(stop);
    for attempt in 0..20 {
        let mut gw = Gateway::start(&versioned(&up, "1"));
        // Readiness was announced: a reload request must now be safe.
        gw.signal_now("HUP");
        let deadline = Instant::now() + LONG;
        while !gw.logs().iter().any(|l| l.contains("config generation 2 applied")) {
            if let Some(status) = gw.try_exit() {
                panic!("attempt {attempt}: SIGHUP right after `listening` killed the gateway ({status})");
            }
            assert!(Instant::now() < deadline, "attempt {attempt}: no reload and no exit");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    drop(_stop_burners);
    for b in burners {
        b.join().expect("burner");
    }
}

struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[test]
fn a_generation_one_shard_refuses_is_aborted_on_every_shard() {
    const TOKEN: &str = "reload-token-0123456789";
    let up = Upstream::echo("app");
    let admin = format!("\n[admin]\nbind = \"127.0.0.1:0\"\ntoken = \"{TOKEN}\"\n");
    let good = |v: &str| format!("{}{admin}", versioned(&up, v));
    // The service manager's socket: a refused reload is announced with READY=1 and a STATUS.
    let dir = tempfile::tempdir().expect("tempdir");
    let sock_path = dir.path().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).expect("bind the notify socket");
    sock.set_read_timeout(Some(LONG)).expect("timeout");
    let notify_socket = sock_path.display().to_string();
    // Shard 1 (of 2) refuses to prepare any generation with a route named `refused-by-shard-1`.
    let gw = Gateway::start_with_env(
        &good("1"),
        &[("PORTCULLIS_FAULT_PREPARE", "1:refused-by-shard-1"), ("NOTIFY_SOCKET", &notify_socket)],
    );
    let admin_addr = gw.admin.expect("admin address");
    let refused = good("2").replace("name = \"all\"", "name = \"refused-by-shard-1\"");
    assert_ne!(refused, good("2"));

    let mark = gw.log_mark();
    gw.write_config(&refused);
    gw.signal("HUP");
    let line = gw.wait_for_log_after(mark, "aborted on every shard", LONG);
    assert!(line.contains("prepared on 1/2 shards"), "shard 0 prepared it, shard 1 did not: {line}");
    let line = gw.wait_for_log_after(mark, "config reload refused", LONG);
    assert!(
        line.contains("injected prepare fault on shard 1"),
        "the refusal names the shard's error: {line}"
    );
    gw.wait_for_log_after(mark, "the running config stays", LONG);
    let mut buf = [0u8; 1024];
    let status = loop {
        let n = sock.recv(&mut buf).expect("a notification");
        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
        if msg.starts_with("STATUS=") {
            break msg;
        }
    };
    assert!(status.starts_with("STATUS=config reload refused (1 error(s): "), "{status}");
    assert!(
        status.contains("injected prepare fault on shard 1") && status.ends_with("serving generation 1"),
        "{status}"
    );
    // Every shard still serves generation 1 (fresh connections spread over both shards).
    for _ in 0..20 {
        assert_eq!(common::get(gw.addr, "/").header("x-version"), Some("1"));
    }
    let m = common::Metrics::scrape(admin_addr, Some(TOKEN));
    assert_eq!(m.value("portcullis_config_reloads_total", &[("result", "refused")]), 1.0);
    assert_eq!(m.value("portcullis_config_reloads_total", &[("result", "applied")]), 0.0);

    // POST /config answers with the shard's error, and changes nothing either.
    let resp = common::admin(admin_addr, "POST", "/config", Some(TOKEN), refused.as_bytes());
    assert_eq!(resp.status, 422, "{}", resp.text());
    assert!(resp.text().contains("injected prepare fault on shard 1"), "{}", resp.text());
    let running = common::admin(admin_addr, "GET", "/config", Some(TOKEN), b"").json();
    assert_eq!(running["generation"], 1, "{running}");
    assert_eq!(common::get(gw.addr, "/").header("x-version"), Some("1"));

    // A generation every shard accepts is the next one: the aborted one consumed no number.
    gw.reload(&good("3"), 2);
    for _ in 0..10 {
        assert_eq!(common::get(gw.addr, "/").header("x-version"), Some("3"));
    }
}
