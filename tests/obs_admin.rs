//! The admin API through the real binary: health and readiness, config read (redacted) and
//! write (validated, applied like SIGHUP), routes, drain; and 100 reloads under steady load.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::gateway::binary;
use common::upstream::echo_reply;
use common::{Client, Gateway, LONG, Reply, Upstream, admin, config, get};

const TOKEN: &str = "admin-token-0123456789";

fn rest(app: std::net::SocketAddr, marker: &str) -> String {
    format!(
        "[admin]\nbind = \"127.0.0.1:0\"\ntoken = \"{TOKEN}\"\n\n\
         [[upstreams]]\nname = \"app\"\nendpoints = [\"{app}\"]\n\
         [[routes]]\nname = \"users\"\npath = \"/users/{{id}}\"\nupstream = \"app\"\n\
         response_headers = {{ set = {{ x-marker = \"{marker}\" }} }}\n\
         [[routes]]\nname = \"slow\"\npath = \"/slow\"\nupstream = \"app\"\n"
    )
}

fn app() -> Upstream {
    Upstream::start(|req| {
        if req.target == "/slow" {
            Reply::Delay(Duration::from_millis(1500), Box::new(echo_reply("app", req)))
        } else {
            echo_reply("app", req)
        }
    })
}

#[test]
fn health_config_and_routes() {
    let app = app();
    let gw = Gateway::start(&config("", &rest(app.addr, "a")));
    let a = gw.admin.expect("admin address printed");
    let health = admin(a, "GET", "/healthz", None, b"");
    assert_eq!((health.status, health.json()["status"].as_str()), (200, Some("ok")));
    let ready = admin(a, "GET", "/readyz", None, b"");
    assert_eq!(ready.status, 200, "{}", ready.text());
    let v = ready.json();
    assert_eq!(
        (v["ready"].as_bool(), v["shards"].as_u64(), v["shards_ready"].as_u64()),
        (Some(true), Some(2), Some(2))
    );

    assert_eq!(admin(a, "GET", "/config", None, b"").status, 401, "config needs the token");
    let cfg = admin(a, "GET", "/config", Some(TOKEN), b"");
    assert_eq!(cfg.status, 200);
    assert!(!cfg.text().contains(TOKEN), "the token is redacted: {}", cfg.text());
    let v = cfg.json();
    assert_eq!(v["generation"], 1);
    assert_eq!(v["config"]["admin"]["token"], "<redacted>");
    assert_eq!(v["config"]["routes"][0]["name"], "users");

    let routes = admin(a, "GET", "/routes", Some(TOKEN), b"").json();
    let names: Vec<&str> =
        routes["routes"].as_array().expect("list").iter().filter_map(|r| r["name"].as_str()).collect();
    assert_eq!(names, ["users", "slow"]);
    assert_eq!(routes["routes"][0]["path"], "/users/{id}");
    assert_eq!(routes["routes"][0]["endpoints"][0], app.addr.to_string());

    assert_eq!(admin(a, "GET", "/nothing", Some(TOKEN), b"").status, 404);
    assert_eq!(admin(a, "DELETE", "/config", Some(TOKEN), b"").status, 405);
}

#[test]
fn post_config_applies_a_good_file_and_refuses_a_bad_one_like_check() {
    let app = app();
    let gw = Gateway::start(&config("", &rest(app.addr, "a")));
    let a = gw.admin.expect("admin address printed");

    let bad = config(
        "max_headers = 0",
        &format!("{}\n[[routes]]\npath = \"/x\"\nupstream = \"nope\"\n", rest(app.addr, "b")),
    );
    let r = admin(a, "POST", "/config", Some(TOKEN), bad.as_bytes());
    assert_eq!(r.status, 422, "{}", r.text());
    let v = r.json();
    assert_eq!(v["applied"], false);
    let posted: Vec<String> = v["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["text"].as_str().unwrap_or("").to_owned())
        .collect();
    assert!(posted.len() >= 2, "{posted:?}");
    assert!(v["errors"].as_array().expect("errors").iter().all(|e| e["line"].as_u64().is_some()));
    // The same errors `portcullis check` prints for the same text, file name aside.
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, &bad).expect("write");
    let out =
        std::process::Command::new(binary()).args(["check", "--config"]).arg(&file).output().expect("check");
    assert!(!out.status.success());
    let checked: Vec<String> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| l.strip_prefix("error: "))
        .map(|l| l.replace(&file.display().to_string(), "POST /config"))
        .collect();
    assert_eq!(posted, checked);
    assert_eq!(get(gw.addr, "/users/1").header("x-marker"), Some("a"), "the running config stays");

    let good = config("", &rest(app.addr, "b"));
    let r = admin(a, "POST", "/config", Some(TOKEN), good.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["generation"], 2);
    assert_eq!(get(gw.addr, "/users/1").header("x-marker"), Some("b"), "applied");
    let shown = admin(a, "GET", "/config", Some(TOKEN), b"").json();
    assert_eq!((shown["generation"].as_u64(), shown["source"].as_str()), (Some(2), Some("POST /config")));
    assert_eq!(shown["last_reload"]["ok"], true);
}

#[test]
fn readyz_fails_while_draining_and_in_flight_requests_finish() {
    let app = app();
    let mut gw = Gateway::start(&config("", &rest(app.addr, "a")));
    let a = gw.admin.expect("admin address printed");
    let addr = gw.addr;
    let slow = std::thread::spawn(move || get(addr, "/slow"));
    app.wait_requests(1, LONG);
    let r = admin(a, "POST", "/drain", Some(TOKEN), b"");
    assert_eq!(r.status, 202, "{}", r.text());
    let deadline = Instant::now() + LONG;
    loop {
        let r = admin(a, "GET", "/readyz", None, b"");
        if r.status == 503 {
            assert_eq!(r.json()["draining"], true);
            break;
        }
        assert!(Instant::now() < deadline, "readyz never failed during the drain");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(admin(a, "GET", "/healthz", None, b"").status, 200, "still alive while draining");
    assert_eq!(slow.join().expect("slow request").status, 200, "the in-flight request finished");
    assert!(gw.wait_exit(LONG).success());
}

#[test]
fn hundred_reloads_alternating_sighup_and_post_under_load_fail_nothing() {
    let app = app();
    let gw = Gateway::start(&config("", &rest(app.addr, "0")));
    let a = gw.admin.expect("admin address printed");
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load: Vec<_> = (0..3)
        .map(|t| {
            let (stop, ok, failed, addr) = (stop.clone(), ok.clone(), failed.clone(), gw.addr);
            std::thread::spawn(move || {
                let mut client = Client::connect(addr);
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    if n.is_multiple_of(25) {
                        client = Client::connect(addr); // new connections too
                    }
                    let sent =
                        client.try_send(format!("GET /users/{t} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
                    match sent.and_then(|_| client.try_read_response(false)) {
                        Ok(r) if r.status == 200 => ok.fetch_add(1, Ordering::Relaxed),
                        other => {
                            eprintln!("failed request: {other:?}");
                            client = Client::connect(addr);
                            failed.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                }
            })
        })
        .collect();
    for i in 1..=100u64 {
        let text = config("", &rest(app.addr, &i.to_string()));
        let generation = i + 1;
        if !i.is_multiple_of(2) {
            gw.reload(&text, generation);
        } else {
            let r = admin(a, "POST", "/config", Some(TOKEN), text.as_bytes());
            assert_eq!((r.status, r.json()["generation"].as_u64()), (200, Some(generation)), "{}", r.text());
        }
    }
    let before = ok.load(Ordering::Relaxed);
    // Let the load run on the last generation for a moment, then stop it.
    let deadline = Instant::now() + LONG;
    while ok.load(Ordering::Relaxed) < before + 50 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.join().expect("load thread");
    }
    assert_eq!(get(gw.addr, "/users/1").header("x-marker"), Some("100"));
    assert_eq!(failed.load(Ordering::Relaxed), 0, "no request failed across 100 reloads");
    assert!(ok.load(Ordering::Relaxed) > 100, "the load ran: {}", ok.load(Ordering::Relaxed));
}
