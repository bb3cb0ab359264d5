//! Upstream limits end to end with real upstream servers: least request (P2C) steers away from a
//! slow endpoint where round robin does not, the retry budget caps retries during a full outage,
//! `max_connections` trips the breaker and recovers, and per-try timeouts retry elsewhere with the
//! remaining deadline propagated to the upstream.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{Client, LONG, Metrics, Reply, Upstream, app_gateway, echo_reply, endpoint_list};

const TOKEN: &str = "limits-admin-token";

/// An echo upstream that answers after `delay`.
fn slow(name: &str, delay: Duration) -> Upstream {
    let name = name.to_owned();
    Upstream::start(move |req| Reply::Delay(delay, Box::new(echo_reply(&name, req))))
}

/// `clients` closed-loop clients for `run`; returns how many responses were 200.
fn drive(addr: SocketAddr, clients: usize, run: Duration) -> usize {
    let end = Instant::now() + run;
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            std::thread::spawn(move || {
                let mut c = Client::connect(addr);
                let mut ok = 0;
                while Instant::now() < end {
                    ok += usize::from(c.get("/").status == 200);
                }
                ok
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().expect("client")).sum()
}

/// Share of the requests that reached the slow one of three endpoints under `lb`.
fn slow_share(lb: &str) -> f64 {
    let delay = Duration::from_millis(500);
    let (a, b, s) = (Upstream::echo("a"), Upstream::echo("b"), slow("slow", delay));
    let gw = app_gateway(
        TOKEN,
        &format!(
            "lb = \"{lb}\"\nendpoints = [{}]\noutlier = {{ consecutive_failures = 0 }}\n",
            endpoint_list(&[&a, &b, &s])
        ),
        "",
    );
    let ok = drive(gw.addr, 6, Duration::from_secs(2));
    let total = a.requests() + b.requests() + s.requests();
    assert!(ok > 20, "{lb}: only {ok} responses");
    s.requests() as f64 / total as f64
}

#[test]
fn least_request_sends_less_to_a_slow_endpoint_than_round_robin() {
    let rr = slow_share("round_robin");
    let p2c = slow_share("least_request");
    println!(
        "share of requests to the slow endpoint (adds 500 ms): round_robin {rr:.3}, least_request {p2c:.3}"
    );
    // Round robin gives the slow endpoint its third whatever it costs; least request must give it
    // clearly less (0.11-0.18 measured; the margin absorbs a loaded machine slowing every endpoint).
    assert!(p2c < rr * 0.8, "least_request {p2c} vs round_robin {rr}");
}

#[test]
fn retry_budget_caps_retries_during_a_full_outage() {
    let ups: Vec<Upstream> = (0..3).map(|_| Upstream::fixed(503, "down")).collect();
    let gw = app_gateway(
        TOKEN,
        &format!(
            "endpoints = [{}]\noutlier = {{ consecutive_failures = 0 }}\n",
            endpoint_list(&ups.iter().collect::<Vec<_>>())
        ),
        "retry = { max = 2, statuses = [503], budget_percent = 10, min_retries = 3, backoff = \"1ms\" }\n",
    );
    let mut c = Client::connect(gw.addr);
    let n = 200;
    for _ in 0..n {
        assert_eq!(c.get("/").status, 503);
    }
    let sent: usize = ups.iter().map(Upstream::requests).sum();
    let retries = sent - n;
    println!("full outage: {n} requests, {retries} retries (without a budget: {})", 2 * n);
    // 10 % of the requests plus the 3 always allowed; without the budget it would be 400.
    assert!(retries <= n / 10 + 3 + 2, "{retries} retries");
    assert!(retries >= 3, "the minimum retries were not taken: {retries}");
    let m = Metrics::scrape(gw.admin.expect("admin"), Some(TOKEN));
    let taken = m.value("portcullis_events_total", &[("event", "upstream_retry"), ("reason", "app")]);
    let refused = m
        .value("portcullis_events_total", &[("event", "upstream_retry_budget_exhausted"), ("reason", "app")]);
    assert_eq!(taken as usize, retries, "{}", m.text);
    assert!(refused >= (n - retries) as f64 * 0.5, "refusals counted: {refused}");
}

#[test]
fn max_connections_trips_the_breaker_and_recovers() {
    let s = slow("slow", Duration::from_millis(800));
    let gw = app_gateway(
        TOKEN,
        &format!("endpoints = [\"{}\"]\ncircuit = {{ max_connections = 1 }}\n", s.addr),
        "",
    );
    let addr = gw.addr;
    let first = std::thread::spawn(move || Client::connect(addr).get("/").status);
    s.wait_requests(1, LONG);
    // The one connection is busy: a second request cannot open another.
    Client::connect(addr).get("/").assert_routed_error(503, "upstream_circuit_open");
    assert_eq!(first.join().expect("first"), 200);
    // Recovered: the idle connection is reused.
    assert_eq!(Client::connect(addr).get("/").status, 200);
    assert_eq!(s.accepted(), 1, "never more than one upstream connection");
    let m = Metrics::scrape(gw.admin.expect("admin"), Some(TOKEN));
    let trips = m.value(
        "portcullis_events_total",
        &[("event", "upstream_circuit_open"), ("reason", "app:max_connections")],
    );
    assert_eq!(trips, 1.0, "{}", m.text);
}

#[test]
fn try_timeout_retries_elsewhere_and_the_deadline_reaches_the_upstream() {
    let stuck = slow("stuck", Duration::from_secs(3));
    let fast = Upstream::echo("fast");
    let gw = app_gateway(
        TOKEN,
        &format!(
            "endpoints = [{}]\ndeadline_header = \"x-request-deadline-ms\"\noutlier = {{ consecutive_failures = 0 }}\n",
            endpoint_list(&[&stuck, &fast])
        ),
        "timeout = \"5s\"\ntry_timeout = \"300ms\"\nretry = { max = 1, backoff = \"1ms\", min_retries = 10 }\n",
    );
    let mut c = Client::connect(gw.addr);
    for _ in 0..4 {
        let t = Instant::now();
        let r = c.get("/");
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("x-upstream"), Some("fast"));
        assert!(t.elapsed() < Duration::from_secs(3), "waited for the stuck endpoint: {:?}", t.elapsed());
    }
    let last = fast.last();
    let ms: u64 = last.header("x-request-deadline-ms").expect("deadline header").parse().expect("integer");
    assert!(ms > 0 && ms <= 300, "remaining deadline {ms} ms (one try of 300 ms)");
    let grpc = c.request(b"POST /svc/Method HTTP/1.1\r\nHost: t\r\nContent-Type: application/grpc\r\nContent-Length: 0\r\n\r\n");
    assert!(grpc.status == 200 || grpc.status == 504, "{}", grpc.status);
    let seen =
        fast.seen().into_iter().chain(stuck.seen()).find(|r| r.method == "POST").expect("POST forwarded");
    let value = seen.header("grpc-timeout").expect("grpc-timeout");
    assert!(value.ends_with('m') && value[..value.len() - 1].parse::<u64>().is_ok(), "{value}");
    assert!(seen.header("x-request-deadline-ms").is_none());
}
