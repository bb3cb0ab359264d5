//! DNS service discovery end to end, against a real DNS server (UDP, in the test process) whose
//! answers change while the gateway runs: an A record moving from one endpoint to another under
//! traffic (no failed request, the request in flight finishes), SRV weights and priorities, a
//! name that disappears and a server that stops (the last endpoints keep serving), and reloads
//! that change health checks and add or remove DNS discovery.

mod common;

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::dns::{DnsServer, loopback_listeners};
use common::{Client, Gateway, LONG, Metrics, Upstream, app_gateway, config, echo_reply};

const TOKEN: &str = "dns-discovery-admin-token";

/// Requests sent back to back on one connection until stopped: `(status, x-upstream)` of each.
struct Traffic {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<(u16, String)>>,
}

impl Traffic {
    fn start(gw: &Gateway) -> Traffic {
        let (addr, stop) = (gw.addr, Arc::new(AtomicBool::new(false)));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut c = Client::connect(addr);
            let mut seen = Vec::new();
            while !flag.load(Ordering::SeqCst) {
                let r = c.get("/");
                seen.push((r.status, r.header("x-upstream").unwrap_or_default().to_owned()));
            }
            seen
        });
        Traffic { stop, thread }
    }

    /// Stops; asserts every request succeeded; returns how many each upstream answered.
    fn finish(self) -> std::collections::HashMap<String, usize> {
        self.stop.store(true, Ordering::SeqCst);
        let seen = self.thread.join().expect("a request of the traffic failed at the connection level");
        let failed: Vec<_> = seen.iter().filter(|(s, _)| *s != 200).collect();
        assert!(failed.is_empty(), "{} of {} requests failed: {failed:?}", failed.len(), seen.len());
        let mut by = std::collections::HashMap::new();
        for (_, up) in seen {
            *by.entry(up).or_insert(0) += 1;
        }
        by
    }
}

/// Polls `GET /` until `upstream` answers it (bounded by [`LONG`]).
fn wait_for_upstream(c: &mut Client, upstream: &str) {
    let deadline = Instant::now() + LONG;
    loop {
        let r = c.get("/");
        assert_eq!(r.status, 200, "{}", r.text());
        if r.header("x-upstream") == Some(upstream) {
            return;
        }
        assert!(Instant::now() < deadline, "traffic never reached {upstream}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Who answers each of `n` requests.
fn tally(c: &mut Client, n: usize) -> std::collections::HashMap<String, usize> {
    let mut by = std::collections::HashMap::new();
    for _ in 0..n {
        let r = c.get("/");
        assert_eq!(r.status, 200, "{}", r.text());
        *by.entry(r.header("x-upstream").unwrap_or_default().to_owned()).or_insert(0) += 1;
    }
    by
}

#[test]
fn a_record_change_moves_traffic_without_failures_and_the_request_in_flight_finishes() {
    let mut ls = loopback_listeners(2);
    let (lb, la) = (ls.pop().expect("b"), ls.pop().expect("a"));
    let port = la.local_addr().expect("a").port();
    // a holds `/slow` until released, so it is surely in flight across the switch.
    let release = Arc::new(AtomicBool::new(false));
    let r = release.clone();
    let a = Upstream::start_on(la, move |req| {
        if req.path() == "/slow" {
            let deadline = Instant::now() + LONG;
            while !r.load(Ordering::SeqCst) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        echo_reply("a", req)
    });
    let _b = Upstream::start_on(lb, |req| echo_reply("b", req));
    let dns = DnsServer::start();
    dns.set_a("app.test", &[Ipv4Addr::new(127, 0, 0, 1)], 1);
    let gw = app_gateway(
        TOKEN,
        &format!(
            "dns = {{ name = \"app.test\", port = {port}, server = \"{}\", min_ttl = \"200ms\" }}\n",
            dns.addr
        ),
        "",
    );
    let mut c = Client::connect(gw.addr);
    assert_eq!(c.get("/").header("x-upstream"), Some("a"), "resolved before serving");
    let addr = gw.addr;
    let in_flight = std::thread::spawn(move || Client::connect(addr).get("/slow"));
    a.wait_requests(2, LONG);
    let traffic = Traffic::start(&gw);
    let mark = gw.log_mark();
    dns.set_a("app.test", &[Ipv4Addr::new(127, 0, 0, 2)], 1);
    wait_for_upstream(&mut c, "b");
    gw.wait_for_log_after(mark, "upstream endpoints changed", LONG);
    assert_eq!(tally(&mut c, 10).get("b"), Some(&10), "the removed endpoint still got traffic");
    let by = traffic.finish();
    assert!(by.get("b").is_some_and(|&n| n > 0), "the traffic never reached b: {by:?}");
    release.store(true, Ordering::SeqCst);
    let slow = in_flight.join().expect("the request in flight");
    assert_eq!(slow.status, 200, "the request in flight was dropped");
    assert_eq!(slow.header("x-upstream"), Some("a"));
}

#[test]
fn srv_weights_and_priority_then_nxdomain_and_a_stopped_server_keep_the_last_endpoints() {
    let ups: Vec<Upstream> = ["a", "b", "c"].iter().map(|n| Upstream::echo(n)).collect();
    let mut dns = DnsServer::start();
    let srv = "_http._tcp.app.test";
    let p = |i: usize| ups[i].addr.port();
    // c has a worse priority: never used while a and b are listed.
    dns.set_srv(srv, &[(10, 1, p(0), "a.test"), (10, 3, p(1), "b.test"), (20, 1, p(2), "c.test")], 1);
    for t in ["a.test", "b.test", "c.test"] {
        dns.set_a(t, &[Ipv4Addr::LOCALHOST], 1);
    }
    let gw = app_gateway(
        TOKEN,
        &format!(
            "lb = \"weighted_round_robin\"\n[upstreams.dns]\nname = \"{srv}\"\ntype = \"srv\"\nserver = \"{}\"\nmin_ttl = \"200ms\"\n",
            dns.addr
        ),
        "",
    );
    let mut c = Client::connect(gw.addr);
    let by = tally(&mut c, 40);
    let (a, b) = (by.get("a").copied().unwrap_or(0), by.get("b").copied().unwrap_or(0));
    assert_eq!(a + b, 40, "only the priority-10 targets get traffic: {by:?}");
    assert!((6..=14).contains(&a) && (26..=34).contains(&b), "weights 1:3 give {by:?}");

    // The name disappears: the last endpoints stay, the failure is logged and counted.
    let admin = gw.admin.expect("admin address");
    let failures = || {
        Metrics::scrape(admin, Some(TOKEN))
            .value("portcullis_events_total", &[("event", "upstream_dns_failure"), ("reason", "app")])
    };
    dns.remove(srv);
    let line = gw.wait_for_log("DNS lookup failed", LONG);
    assert!(line.contains("NXDOMAIN"), "{line}");
    assert!(failures() >= 1.0);
    let by = tally(&mut c, 8);
    assert_eq!(by.values().sum::<usize>(), 8, "{by:?}");
    assert!(!by.contains_key("c"), "{by:?}");

    // The server stops: lookups keep failing, traffic keeps flowing to the last endpoints.
    dns.stop();
    let before = failures();
    let deadline = Instant::now() + LONG;
    while failures() <= before {
        assert!(Instant::now() < deadline, "no failed lookup counted after the server stopped");
        std::thread::sleep(Duration::from_millis(50));
    }
    let by = tally(&mut c, 8);
    assert!(by.keys().all(|k| k == "a" || k == "b") && by.values().sum::<usize>() == 8, "{by:?}");
}

#[test]
fn reloads_change_health_checks_and_add_and_remove_dns_without_failing_requests() {
    let a = Upstream::echo("a");
    let b = Upstream::echo("b");
    let dns = DnsServer::start();
    dns.set_a("b.test", &[Ipv4Addr::LOCALHOST], 1);
    let hc = |path: &str| format!("health_check = {{ path = \"{path}\", interval = \"100ms\" }}\n");
    let with = |body: &str| {
        let rest = format!(
            "[[upstreams]]\nname = \"app\"\n{body}\n[[routes]]\nprefix = \"/\"\nupstream = \"app\"\n"
        );
        config("", &rest).replace("shards = 2", "shards = 1")
    };
    let fixed = |path: &str| with(&format!("endpoints = [\"{}\"]\n{}", a.addr, hc(path)));
    let probed = |u: &Upstream, path: &str| {
        let deadline = Instant::now() + LONG;
        while !u.seen().iter().any(|r| r.path() == path) {
            assert!(Instant::now() < deadline, "no health probe to {path} within {LONG:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let gw = Gateway::start(&fixed("/h1"));
    probed(&a, "/h1");
    let traffic = Traffic::start(&gw);

    // A new probe path takes effect.
    gw.reload(&fixed("/h2"), 2);
    probed(&a, "/h2");

    // DNS replaces the static endpoint; its endpoints are health checked too.
    let dns_only = with(&format!(
        "dns = {{ name = \"b.test\", port = {}, server = \"{}\" }}\n{}",
        b.addr.port(),
        dns.addr,
        hc("/h3")
    ));
    gw.reload(&dns_only, 3);
    let mut c = Client::connect(gw.addr);
    wait_for_upstream(&mut c, "b");
    probed(&b, "/h3");
    assert_eq!(tally(&mut c, 5).get("b"), Some(&5));

    // Back to the static endpoint: DNS endpoints leave.
    gw.reload(&fixed("/h4"), 4);
    wait_for_upstream(&mut c, "a");
    assert_eq!(tally(&mut c, 5).get("a"), Some(&5));
    probed(&a, "/h4");
    let by = traffic.finish();
    assert!(by.contains_key("a") && by.contains_key("b"), "the traffic saw both endpoints: {by:?}");
}
