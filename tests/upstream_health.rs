//! Active health checks and failover under load, end to end with real upstream servers: one of
//! three endpoints dies under steady client load, an endpoint failing its health probe is
//! skipped and comes back, and the health state is exported per endpoint.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Client, LONG, Metrics, Reply, Upstream, app_gateway, echo_reply, endpoint_list, response};

const TOKEN: &str = "health-admin-token";

/// An echo upstream named `name` whose `/healthz` answers 200 while `up` is set, else 503.
fn checked(name: &str, up: Arc<AtomicBool>) -> Upstream {
    let name = name.to_owned();
    Upstream::start(move |req| {
        if req.path() == "/healthz" {
            let status = if up.load(Ordering::SeqCst) { 200 } else { 503 };
            return Reply::Raw(response(status, "Health", &[], b""));
        }
        echo_reply(&name, req)
    })
}

/// Scrapes until `ok` holds (bounded by [`LONG`]).
fn scrape_until(admin: SocketAddr, what: &str, ok: impl Fn(&Metrics) -> bool) -> Metrics {
    let deadline = Instant::now() + LONG;
    loop {
        let m = Metrics::scrape(admin, Some(TOKEN));
        if ok(&m) {
            return m;
        }
        assert!(Instant::now() < deadline, "{what}: never seen in\n{}", m.text);
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn healthy(m: &Metrics, ep: &Upstream) -> f64 {
    m.value(
        "portcullis_upstream_endpoint_healthy",
        &[("upstream", "app"), ("endpoint", &ep.addr.to_string())],
    )
}

/// Steady closed-loop load from `clients` threads until `stop`; returns per response the time it
/// finished (since `t0`) and whether it was a 200. A broken connection counts as an error.
fn load(addr: SocketAddr, clients: usize, t0: Instant, stop: Arc<AtomicBool>) -> Vec<(Duration, bool)> {
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut out = Vec::new();
                let mut c = Client::connect(addr);
                while !stop.load(Ordering::SeqCst) {
                    let ok = c.try_send(b"GET /work HTTP/1.1\r\nHost: t\r\n\r\n").is_ok()
                        && c.try_read_response(false).is_ok_and(|r| r.status == 200);
                    out.push((t0.elapsed(), ok));
                    if !ok {
                        c = Client::connect(addr);
                    }
                }
                out
            })
        })
        .collect();
    threads.into_iter().flat_map(|t| t.join().expect("load thread")).collect()
}

#[test]
fn killing_one_of_three_under_load_stops_errors_within_one_interval() {
    let up = Arc::new(AtomicBool::new(true));
    let (a, b, c) = (checked("a", up.clone()), checked("b", up.clone()), checked("c", up.clone()));
    // A killed endpoint refuses at once; the long probe timeout only keeps a saturated machine
    // from failing the healthy endpoints' probes (threshold 1) and ejecting them too.
    let interval = Duration::from_millis(300);
    let gw = app_gateway(
        TOKEN,
        &format!(
            "endpoints = [{}]\noutlier = {{ consecutive_failures = 2, base_ejection = \"10s\" }}\n\
             health_check = {{ interval = \"300ms\", timeout = \"2s\", unhealthy_threshold = 1 }}\n",
            endpoint_list(&[&a, &b, &c])
        ),
        "retry = { max = 2, backoff = \"1ms\" }\n",
    );
    let admin = gw.admin.expect("admin address");
    scrape_until(admin, "three healthy endpoints", |m| [&a, &b, &c].iter().all(|u| healthy(m, u) == 1.0));
    let t0 = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let killer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(1));
            let killed_at = t0.elapsed();
            c.kill();
            std::thread::sleep(Duration::from_secs(3));
            stop.store(true, Ordering::SeqCst);
            (killed_at, c)
        })
    };
    let results = load(gw.addr, 4, t0, stop);
    let (killed_at, c) = killer.join().expect("killer");
    let errors: Vec<Duration> = results.iter().filter(|r| !r.1).map(|r| r.0).collect();
    let rate = errors.len() as f64 / results.len() as f64;
    let after = results.iter().filter(|r| r.0 > killed_at).count();
    println!(
        "kill one of three under load: {} requests ({after} after the kill), {} errors, error rate {:.4} %",
        results.len(),
        errors.len(),
        rate * 100.0
    );
    assert!(results.len() > 200 && after > 100, "too little load to judge: {}", results.len());
    // Errors (if any) stop within one health interval plus one ejection (plus scheduling slack).
    let bound = killed_at + interval * 2 + Duration::from_secs(1);
    assert!(errors.iter().all(|&t| t <= bound), "errors after {bound:?}: {errors:?}");
    assert!(rate < 0.001, "error rate {rate} with retries on");
    let m = scrape_until(admin, "the killed endpoint reported unhealthy", |m| healthy(m, &c) == 0.0);
    assert_eq!(healthy(&m, &a), 1.0);
    gw.wait_for_log("upstream endpoint unhealthy", LONG);
}

#[test]
fn failing_probe_takes_an_endpoint_out_until_it_passes_again() {
    let (a_up, b_up) = (Arc::new(AtomicBool::new(true)), Arc::new(AtomicBool::new(false)));
    let (a, b) = (checked("a", a_up), checked("b", b_up.clone()));
    let gw = app_gateway(
        TOKEN,
        &format!(
            "endpoints = [{}]\noutlier = {{ consecutive_failures = 0 }}\n[upstreams.health_check]\n\
             path = \"/healthz\"\ninterval = \"100ms\"\ntimeout = \"500ms\"\nunhealthy_threshold = 2\nhealthy_threshold = 2\n",
            endpoint_list(&[&a, &b])
        ),
        "",
    );
    let admin = gw.admin.expect("admin address");
    scrape_until(admin, "b unhealthy", |m| healthy(m, &b) == 0.0 && healthy(m, &a) == 1.0);
    let before = b.requests();
    let mut client = Client::connect(gw.addr);
    for _ in 0..20 {
        let r = client.get("/x");
        assert_eq!(r.header("x-upstream"), Some("a"), "an unhealthy endpoint got traffic");
    }
    // Only probes reached b.
    assert!(b.seen()[before..].iter().all(|r| r.path() == "/healthz"));
    b_up.store(true, Ordering::SeqCst);
    scrape_until(admin, "b healthy again", |m| healthy(m, &b) == 1.0);
    let names: Vec<String> =
        (0..10).map(|_| client.get("/x").header("x-upstream").unwrap_or_default().to_owned()).collect();
    assert!(names.iter().any(|n| n == "b"), "b never came back: {names:?}");
    gw.wait_for_log("upstream endpoint healthy", LONG);
}

#[test]
fn tcp_probe_marks_a_closed_port_unhealthy() {
    let up = Arc::new(AtomicBool::new(true));
    let a = checked("a", up);
    let dead = common::closed_port();
    let gw = app_gateway(
        TOKEN,
        &format!(
            "endpoints = [\"{}\", \"{dead}\"]\nhealth_check = {{ kind = \"tcp\", interval = \"100ms\", unhealthy_threshold = 1 }}\n",
            a.addr
        ),
        "",
    );
    let admin = gw.admin.expect("admin address");
    let key = dead.to_string();
    scrape_until(admin, "closed port unhealthy", |m| {
        m.value("portcullis_upstream_endpoint_healthy", &[("endpoint", &key)]) == 0.0
            && !m.find("portcullis_upstream_endpoint_healthy", &[("endpoint", &key)]).is_empty()
    });
    let mut client = Client::connect(gw.addr);
    for _ in 0..10 {
        assert_eq!(client.get("/").status, 200);
    }
}
