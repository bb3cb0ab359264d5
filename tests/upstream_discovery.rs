//! Endpoint discovery end to end: a watched endpoints file changes the endpoints of a running
//! gateway without a restart and without failing the request in flight, and consistent hashing on
//! a cookie moves only about a tenth of the keys when one of ten endpoints leaves.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Client, Gateway, LONG, Reply, Upstream, config, echo_reply};

/// Replaces `path` atomically (write a sibling, rename over).
fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write the endpoints file");
    std::fs::rename(&tmp, path).expect("rename the endpoints file");
}

/// One shard and one catch-all route to upstream `app` with `upstream` as its body.
fn gateway(upstream: &str) -> Gateway {
    let rest = format!(
        "[[upstreams]]\nname = \"app\"\n{upstream}\n[[routes]]\nprefix = \"/\"\nupstream = \"app\"\n"
    );
    Gateway::start(&config("", &rest).replace("shards = 2", "shards = 1"))
}

#[test]
fn endpoints_file_changes_apply_without_dropping_the_request_in_flight() {
    let slow_a = Upstream::start(|req| {
        let reply = echo_reply("a", req);
        if req.path() == "/slow" { Reply::Delay(Duration::from_millis(1500), Box::new(reply)) } else { reply }
    });
    let b = Upstream::echo("b");
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("app.endpoints");
    write_atomic(&file, &format!("# the pool\n{}\n", slow_a.addr));
    let gw = gateway(&format!("endpoints_file = {file:?}\n"));
    let mut c = Client::connect(gw.addr);
    assert_eq!(c.get("/").header("x-upstream"), Some("a"));
    // A slow request to a is in flight while the file moves the upstream to b.
    let addr = gw.addr;
    let in_flight = std::thread::spawn(move || Client::connect(addr).get("/slow"));
    slow_a.wait_requests(2, LONG);
    write_atomic(&file, &format!("{} weight=2\n", b.addr));
    gw.wait_for_log("upstream endpoints changed", LONG);
    let deadline = Instant::now() + LONG;
    loop {
        if c.get("/").header("x-upstream") == Some("b") {
            break;
        }
        assert!(Instant::now() < deadline, "the file change never applied");
        std::thread::sleep(Duration::from_millis(50));
    }
    for _ in 0..10 {
        assert_eq!(c.get("/").header("x-upstream"), Some("b"), "a removed endpoint got traffic");
    }
    let slow = in_flight.join().expect("in-flight request");
    assert_eq!(slow.status, 200, "the request in flight was dropped");
    assert_eq!(slow.header("x-upstream"), Some("a"));
    // A broken file is ignored; the endpoints stay.
    write_atomic(&file, "not an endpoint line\n");
    gw.wait_for_log("endpoints file not applied", LONG);
    assert_eq!(c.get("/").header("x-upstream"), Some("b"));
}

#[test]
fn cookie_hash_moves_about_a_tenth_of_the_keys_when_one_of_ten_leaves() {
    let ups: Vec<Upstream> = (0..10).map(|i| Upstream::echo(&format!("u{i}"))).collect();
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("app.endpoints");
    let lines = |n: usize| ups[..n].iter().map(|u| format!("{}\n", u.addr)).collect::<String>();
    write_atomic(&file, &lines(10));
    let gw = gateway(&format!(
        "lb = \"consistent_hash\"\nhash_on = \"cookie:session\"\nendpoints_file = {file:?}\n"
    ));
    let mut c = Client::connect(gw.addr);
    let keys = 500;
    let owner = |k: usize, c: &mut Client| {
        let req = format!("GET / HTTP/1.1\r\nHost: t\r\nCookie: theme=dark; session=s-{k}\r\n\r\n");
        c.request(req.as_bytes()).header("x-upstream").expect("x-upstream").to_owned()
    };
    let before: HashMap<usize, String> = (0..keys).map(|k| (k, owner(k, &mut c))).collect();
    let owners: std::collections::HashSet<&String> = before.values().collect();
    assert!(owners.len() >= 8, "500 keys reached only {} endpoints", owners.len());
    write_atomic(&file, &lines(9));
    gw.wait_for_log("upstream endpoints changed", LONG);
    // Wait until u9 gets no more keys (the shard applies the new list on its next request).
    let deadline = Instant::now() + LONG;
    while (0..keys).any(|k| before[&k] == "u9" && owner(k, &mut c) == "u9") {
        assert!(Instant::now() < deadline, "u9 still receives keys");
    }
    let mut moved = 0;
    for k in 0..keys {
        let now = owner(k, &mut c);
        if now != before[&k] {
            assert_eq!(before[&k], "u9", "key {k} of a remaining endpoint moved to {now}");
            moved += 1;
        }
    }
    let share = moved as f64 / keys as f64;
    println!(
        "cookie consistent hash: {moved} of {keys} keys remapped ({:.1} %) when one of ten endpoints left",
        share * 100.0
    );
    assert!((0.05..=0.15).contains(&share), "remapped share {share}");
}
