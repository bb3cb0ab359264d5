//! Upstream resilience end to end, with real upstream servers: weighted balancing, consistent
//! hashing, passive outlier ejection and panic mode, and the circuit breaker.

mod common;

use std::time::{Duration, Instant};

use common::{Client, Gateway, LONG, Reply, Upstream, closed_port, config, echo_reply, get};

/// A gateway with one shard (so one client connection sees every pick of that shard) and one
/// catch-all route to the upstream `app` described by `upstream` (the `[[upstreams]]` body).
fn gateway(upstream: &str) -> Gateway {
    gateway_with_route(upstream, "")
}

/// Like [`gateway`], with `route` added to the route.
fn gateway_with_route(upstream: &str, route: &str) -> Gateway {
    let rest = format!(
        "[[upstreams]]\nname = \"app\"\n{upstream}\n[[routes]]\nprefix = \"/\"\nupstream = \"app\"\n{route}"
    );
    Gateway::start(&config("", &rest).replace("shards = 2", "shards = 1"))
}

#[test]
fn weighted_round_robin_follows_the_weights() {
    let (a, b) = (Upstream::echo("a"), Upstream::echo("b"));
    let gw = gateway(&format!(
        "lb = \"weighted_round_robin\"\nendpoints = [\"{}\", {{ address = \"{}\", weight = 3 }}]\n",
        a.addr, b.addr
    ));
    let mut c = Client::connect(gw.addr);
    for _ in 0..40 {
        assert_eq!(c.get("/").status, 200);
    }
    assert_eq!((a.requests(), b.requests()), (10, 30));
}

#[test]
fn consistent_hash_keeps_each_key_on_one_endpoint() {
    let ups: Vec<Upstream> = (0..3).map(|i| Upstream::echo(&format!("u{i}"))).collect();
    let list: Vec<String> = ups.iter().map(|u| format!("\"{}\"", u.addr)).collect();
    let gw = gateway(&format!(
        "lb = \"consistent_hash\"\nhash_on = \"header:x-user\"\nendpoints = [{}]\n",
        list.join(", ")
    ));
    let mut owners = std::collections::HashSet::new();
    for user in 0..30 {
        let req = format!("GET / HTTP/1.1\r\nHost: t\r\nX-User: user-{user}\r\n\r\n");
        let first = Client::connect(gw.addr).request(req.as_bytes());
        let owner = first.header("x-upstream").expect("x-upstream").to_owned();
        for _ in 0..3 {
            let again = Client::connect(gw.addr).request(req.as_bytes());
            assert_eq!(again.header("x-upstream"), Some(owner.as_str()), "user-{user} moved");
        }
        owners.insert(owner);
    }
    assert!(owners.len() >= 2, "30 keys all hashed to {owners:?}");
}

#[test]
fn failing_endpoint_is_ejected_after_consecutive_5xx() {
    let (bad, good) = (Upstream::fixed(500, "broken"), Upstream::echo("good"));
    let gw = gateway(&format!(
        "endpoints = [\"{}\", \"{}\"]\noutlier = {{ consecutive_failures = 3, base_ejection = \"60s\" }}\n",
        bad.addr, good.addr
    ));
    let mut c = Client::connect(gw.addr);
    let statuses: Vec<u16> = (0..40).map(|_| c.get("/").status).collect();
    assert_eq!(bad.requests(), 3, "ejected after three 500s: {statuses:?}");
    assert!(statuses[10..].iter().all(|&s| s == 200), "{statuses:?}");
    gw.wait_for_log("upstream endpoint ejected", LONG);
}

#[test]
fn unreachable_endpoint_is_ejected_after_connect_failures() {
    let (dead, good) = (closed_port(), Upstream::echo("good"));
    let gw = gateway(&format!(
        "endpoints = [\"{dead}\", \"{}\"]\noutlier = {{ consecutive_failures = 2 }}\n",
        good.addr
    ));
    let mut c = Client::connect(gw.addr);
    let mut failed = 0;
    for _ in 0..30 {
        let r = c.get("/");
        if r.status == 502 {
            r.assert_routed_error(502, "upstream_connect_failed");
            failed += 1;
            c = Client::connect(gw.addr);
        }
    }
    assert_eq!(failed, 2, "only the two failures before the ejection reach the client");
    assert_eq!(good.requests(), 28);
}

#[test]
fn panic_mode_spreads_over_all_when_too_few_are_healthy() {
    let (a, b) = (Upstream::fixed(503, "a down"), Upstream::fixed(503, "b down"));
    let gw = gateway(&format!(
        "endpoints = [\"{}\", \"{}\"]\n[upstreams.outlier]\nconsecutive_failures = 2\nmax_ejected_percent = 100\n",
        a.addr, b.addr
    ));
    let mut c = Client::connect(gw.addr);
    for _ in 0..20 {
        // Both ejected: panic mode still forwards (the upstream's 503, not a local error).
        let r = c.get("/");
        assert_eq!(r.status, 503);
        assert_eq!(r.header("content-type"), Some("text/plain"), "{}", r.text());
    }
    assert_eq!(a.requests() + b.requests(), 20);
    assert!(a.requests() >= 5 && b.requests() >= 5, "spread: {} / {}", a.requests(), b.requests());
}

#[test]
fn circuit_breaker_trips_at_max_requests_and_recovers() {
    let slow = Upstream::start(|req| {
        let reply = echo_reply("slow", req);
        if req.path() == "/slow" { Reply::Delay(Duration::from_secs(2), Box::new(reply)) } else { reply }
    });
    let gw = gateway(&format!("endpoints = [\"{}\"]\ncircuit = {{ max_requests = 1 }}\n", slow.addr));
    let addr = gw.addr;
    let held = std::thread::spawn(move || get(addr, "/slow").status);
    let start = Instant::now();
    while slow.requests() == 0 {
        assert!(start.elapsed() < LONG, "the slow request never arrived");
        std::thread::sleep(Duration::from_millis(5));
    }
    let t = Instant::now();
    let refused = get(gw.addr, "/fast");
    refused.assert_routed_error(503, "upstream_circuit_open");
    assert!(t.elapsed() < Duration::from_secs(1), "refused at once, not after the slow one");
    assert_eq!(held.join().expect("slow request"), 200);
    assert_eq!(get(gw.addr, "/fast").status, 200, "the breaker closes when the slot frees");
}

#[test]
fn connect_failures_are_retried_on_another_endpoint() {
    let (dead, good) = (closed_port(), Upstream::echo("good"));
    let gw = gateway_with_route(
        &format!("endpoints = [\"{dead}\", \"{}\"]\noutlier = {{ consecutive_failures = 0 }}\n", good.addr),
        "retry = { max = 1, budget_percent = 100 }\n",
    );
    let mut c = Client::connect(gw.addr);
    for i in 0..20 {
        assert_eq!(c.get("/").status, 200, "request {i}");
    }
    assert_eq!(good.requests(), 20);
}

#[test]
fn configured_statuses_are_retried_but_not_for_post() {
    let (bad, good) = (Upstream::fixed(503, "busy"), Upstream::echo("good"));
    let gw = gateway_with_route(
        &format!(
            "endpoints = [\"{}\", \"{}\"]\noutlier = {{ consecutive_failures = 0 }}\n",
            bad.addr, good.addr
        ),
        "retry = { max = 1, statuses = [503], budget_percent = 100 }\n",
    );
    let mut c = Client::connect(gw.addr);
    for i in 0..20 {
        assert_eq!(c.get("/").status, 200, "GET {i} is retried");
    }
    assert!(bad.requests() >= 5, "round robin still tried the bad one: {}", bad.requests());
    let post = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi";
    let statuses: Vec<u16> = (0..10).map(|_| c.request(post).status).collect();
    assert!(statuses.contains(&503), "POST is not retried: {statuses:?}");
}

#[test]
fn retry_budget_caps_retries_during_a_full_outage() {
    let (a, b) = (Upstream::fixed(503, "a down"), Upstream::fixed(503, "b down"));
    let gw = gateway_with_route(
        &format!("endpoints = [\"{}\", \"{}\"]\noutlier = {{ consecutive_failures = 0 }}\n", a.addr, b.addr),
        "retry = { max = 2, budget_percent = 10, min_retries = 3, backoff = \"1ms\" }\n",
    );
    let mut c = Client::connect(gw.addr);
    for _ in 0..200 {
        assert_eq!(c.get("/").status, 503);
    }
    let sent = a.requests() + b.requests();
    println!("full outage: 200 requests, {} upstream attempts ({} retries)", sent, sent - 200);
    // Without a budget, max = 2 would make 600 attempts; the budget allows 10 % + 3.
    assert!((200..=223).contains(&sent), "{sent} attempts");
    assert!(sent > 200, "some retries were made");
}

/// Share of 80 concurrent requests (8 clients) that reached the slow endpoint under `lb`.
fn slow_share(lb: &str) -> f64 {
    let slow =
        Upstream::start(|req| Reply::Delay(Duration::from_millis(300), Box::new(echo_reply("slow", req))));
    let fast: Vec<Upstream> = (0..2).map(|i| Upstream::echo(&format!("f{i}"))).collect();
    let gw = gateway(&format!(
        "lb = \"{lb}\"\nendpoints = [\"{}\", \"{}\", \"{}\"]\n",
        slow.addr, fast[0].addr, fast[1].addr
    ));
    let addr = gw.addr;
    let clients: Vec<_> = (0..8)
        .map(|_| {
            std::thread::spawn(move || {
                let mut c = Client::connect(addr);
                (0..10).all(|_| c.get("/").status == 200)
            })
        })
        .collect();
    for c in clients {
        assert!(c.join().expect("client"), "every request answered 200");
    }
    let total = slow.requests() + fast.iter().map(Upstream::requests).sum::<usize>();
    assert_eq!(total, 80);
    slow.requests() as f64 / total as f64
}

#[test]
fn least_request_sends_less_to_a_slow_endpoint_than_round_robin() {
    let (rr, p2c) = (slow_share("round_robin"), slow_share("least_request"));
    println!("slow endpoint share: round_robin {rr:.2}, least_request {p2c:.2}");
    assert!(p2c < rr, "least_request {p2c} vs round_robin {rr}");
    assert!(p2c < 0.25, "least_request sent {p2c} to the slow endpoint");
}
