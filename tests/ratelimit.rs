//! Rate limiting against the real binary and a real redis-server started on a free port:
//! the 429 and its headers, three gateway processes (two shards each) sharing one global limit,
//! and Redis killed mid-run (fail open, fail closed, recovery).

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::redis::Redis;
use common::{Client, Gateway, LONG, Upstream, config, upstream_toml};

const KEYED: &[u8] = b"GET /api/x HTTP/1.1\r\nHost: t\r\nx-api-key: shared\r\n\r\n";

/// Gateway config: a route `/api` limited per `x-api-key` (rate/s, burst), an unlimited `/free`,
/// and `ratelimit` settings (`redis`, `fail_mode`, ...).
fn gateway_toml(up: &Upstream, rate: u64, burst: u64, settings: &str) -> String {
    config(
        "",
        &format!(
            "{}\n[[routes]]\nname = \"api\"\nprefix = \"/api\"\nupstream = \"app\"\nrate_limits = [\"per-key\"]\n\n\
             [[routes]]\nname = \"free\"\nprefix = \"/free\"\nupstream = \"app\"\n\n\
             [ratelimit]\n{settings}\n\n\
             [ratelimit.limits.per-key]\nkey = [\"header:x-api-key\"]\nrate = {rate}\nper = \"1s\"\nburst = {burst}\n",
            upstream_toml("app", up.addr)
        ),
    )
}

#[test]
fn limited_route_answers_429_with_retry_after_and_ratelimit_headers() {
    let up = Upstream::fixed(200, "ok");
    // Local limits only: 1 per hour, burst 1.
    let gw = Gateway::start(&gateway_toml(&up, 1, 1, "gateways = 1").replace("per = \"1s\"", "per = \"1h\""));
    let mut c = Client::connect(gw.addr);
    let ok = c.request(KEYED);
    assert_eq!(ok.status, 200);
    assert_eq!(ok.header("ratelimit-policy"), Some("\"per-key\";q=1;w=3600"));
    assert!(ok.header("ratelimit").is_some_and(|v| v.starts_with("\"per-key\";r=0;t=")), "{ok:?}");
    let limited = c.request(KEYED);
    limited.assert_routed_error(429, "rate_limited");
    let retry: u64 = limited.header("retry-after").expect("Retry-After").parse().expect("seconds");
    // Until the shard learns its share it counts in its default share's time (up to shards x 1h).
    assert!((1..=7200).contains(&retry), "{retry}");
    assert_eq!(limited.header("ratelimit-policy"), Some("\"per-key\";q=1;w=3600"));
    assert!(limited.header("ratelimit").is_some_and(|v| v.starts_with("\"per-key\";r=0;")));
    // Unlimited routes and requests without the key are not limited.
    assert_eq!(c.request(b"GET /free HTTP/1.1\r\nHost: t\r\nx-api-key: shared\r\n\r\n").status, 200);
    assert_eq!(c.request(b"GET /api/y HTTP/1.1\r\nHost: t\r\n\r\n").status, 200);
    let line = gw.wait_for_log("rate limited", LONG);
    assert!(line.contains("per-key") && line.contains("api"), "{line}");
}

/// Results of a paced load run.
#[derive(Default)]
struct Tally {
    ok: u64,
    limited: u64,
    other: Vec<u16>,
    slowest: Duration,
}

/// `conns` keep-alive connections spread over `addrs`, together offering `rate` requests per
/// second of `KEYED` until `stop` (or `max`); every response is tallied.
fn hammer(addrs: &[SocketAddr], conns: usize, rate: f64, stop: Arc<AtomicBool>, max: Duration) -> Tally {
    let per_conn = Duration::from_secs_f64(conns as f64 / rate);
    let threads: Vec<_> = (0..conns)
        .map(|i| {
            let addr = addrs[i % addrs.len()];
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut c = Client::connect(addr);
                let mut t = Tally::default();
                let start = Instant::now();
                let mut next = start + per_conn.mul_f64(i as f64 / conns as f64);
                while !stop.load(Ordering::Relaxed) && start.elapsed() < max {
                    if let Some(wait) = next.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    next += per_conn;
                    let sent = Instant::now();
                    let r = c.request(KEYED);
                    t.slowest = t.slowest.max(sent.elapsed());
                    match r.status {
                        200 => t.ok += 1,
                        429 => t.limited += 1,
                        s => t.other.push(s),
                    }
                }
                t
            })
        })
        .collect();
    let mut total = Tally::default();
    for th in threads {
        let t = th.join().expect("load thread");
        total.ok += t.ok;
        total.limited += t.limited;
        total.other.extend(t.other);
        total.slowest = total.slowest.max(t.slowest);
    }
    total
}

#[test]
fn three_gateways_sharing_redis_enforce_one_global_limit() {
    let redis = Redis::start();
    let up = Upstream::fixed(200, "ok");
    let (rate, burst) = (40u64, 20u64);
    let settings = format!("redis = \"{}\"\nsync_interval = \"5ms\"\ngateways = 3", redis.addr);
    let gws: Vec<Gateway> =
        (0..3).map(|_| Gateway::start(&gateway_toml(&up, rate, burst, &settings))).collect();
    for gw in &gws {
        gw.wait_for_log("rate limit: connected to redis", LONG);
    }
    let addrs: Vec<SocketAddr> = gws.iter().map(|g| g.addr).collect();
    let run = Duration::from_secs(10);
    let started = Instant::now();
    let t = hammer(&addrs, 12, 5.0 * rate as f64, Arc::new(AtomicBool::new(false)), run);
    let elapsed = started.elapsed().as_secs_f64();
    let expected = rate as f64 * elapsed + burst as f64;
    let error = (t.ok as f64 - expected) / expected * 100.0;
    eprintln!(
        "global limit: admitted {} of {} over {elapsed:.2}s across 3 gateways x 2 shards; expected {expected:.0} \
         ({rate}/s x time + burst {burst}); error {error:+.2}%; slowest response {:?}",
        t.ok,
        t.ok + t.limited,
        t.slowest
    );
    assert!(t.other.is_empty(), "unexpected statuses: {:?}", t.other);
    assert!(t.limited > t.ok, "the load (5x the limit) must be limited");
    assert!(error.abs() <= 5.0, "admitted {} vs expected {expected:.0}: {error:+.2}% (tolerance 5%)", t.ok);
}

#[test]
fn uneven_load_across_two_gateways_still_meets_the_limit() {
    // Five connections on one gateway, one on the other: shares follow demand, not a fixed split.
    let redis = Redis::start();
    let up = Upstream::fixed(200, "ok");
    let (rate, burst) = (30u64, 10u64);
    let settings = format!("redis = \"{}\"\nsync_interval = \"5ms\"\ngateways = 2", redis.addr);
    let gws: Vec<Gateway> =
        (0..2).map(|_| Gateway::start(&gateway_toml(&up, rate, burst, &settings))).collect();
    for gw in &gws {
        gw.wait_for_log("rate limit: connected to redis", LONG);
    }
    let addrs = [gws[0].addr, gws[0].addr, gws[0].addr, gws[0].addr, gws[0].addr, gws[1].addr];
    let started = Instant::now();
    let t = hammer(&addrs, 6, 5.0 * rate as f64, Arc::new(AtomicBool::new(false)), Duration::from_secs(8));
    let elapsed = started.elapsed().as_secs_f64();
    let expected = rate as f64 * elapsed + burst as f64;
    let error = (t.ok as f64 - expected) / expected * 100.0;
    eprintln!(
        "uneven load: admitted {} over {elapsed:.2}s; expected {expected:.0}; error {error:+.2}%",
        t.ok
    );
    assert!(t.other.is_empty(), "unexpected statuses: {:?}", t.other);
    assert!(error.abs() <= 5.0, "admitted {} vs expected {expected:.0}: {error:+.2}% (tolerance 5%)", t.ok);
}

#[test]
fn redis_killed_mid_run_fails_open_without_stalls_and_recovers() {
    let mut redis = Redis::start();
    let up = Upstream::fixed(200, "ok");
    let settings = format!(
        "redis = \"{}\"\nsync_interval = \"5ms\"\nredis_timeout = \"100ms\"\nfail_mode = \"open\"\ngateways = 1",
        redis.addr
    );
    let gw = Gateway::start(&gateway_toml(&up, 50, 10, &settings));
    gw.wait_for_log("rate limit: connected to redis", LONG);
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (addrs, stop) = (vec![gw.addr], stop.clone());
        std::thread::spawn(move || hammer(&addrs, 4, 200.0, stop, Duration::from_secs(60)))
    };
    gw.wait_for_log("rate limited", LONG);
    redis.kill();
    let down = gw.wait_for_log("redis unavailable", LONG);
    assert!(down.contains("fail mode"), "{down}");
    // While Redis is down the gateway keeps serving with local limits: more 200s arrive.
    let mark = gw.log_mark();
    gw.wait_for_log_after(mark, "rate limited", LONG);
    redis.restart();
    gw.wait_for_log("redis reachable again", LONG);
    let mark = gw.log_mark();
    gw.wait_for_log_after(mark, "rate limited", LONG);
    stop.store(true, Ordering::Relaxed);
    let t = load.join().expect("load");
    eprintln!("fail open: {} admitted, {} limited, slowest {:?}", t.ok, t.limited, t.slowest);
    assert!(t.other.is_empty(), "unexpected statuses: {:?}", t.other);
    assert!(t.ok > 10 && t.limited > 0);
    assert!(t.slowest < Duration::from_secs(3), "a request stalled for {:?}", t.slowest);
}

#[test]
fn fail_closed_refuses_limited_routes_until_redis_returns() {
    let mut redis = Redis::start();
    let up = Upstream::fixed(200, "ok");
    let settings = format!("redis = \"{}\"\nredis_timeout = \"100ms\"\nfail_mode = \"closed\"", redis.addr);
    let gw = Gateway::start(&gateway_toml(&up, 1000, 1000, &settings));
    gw.wait_for_log("rate limit: connected to redis", LONG);
    let mut c = Client::connect(gw.addr);
    assert_eq!(c.request(KEYED).status, 200);
    redis.kill();
    // The sync thread notices on its next batch (a request makes one).
    let deadline = Instant::now() + LONG;
    let refused = loop {
        let r = c.request(KEYED);
        if r.status == 503 {
            break r;
        }
        assert_eq!(r.status, 200);
        assert!(Instant::now() < deadline, "never failed closed");
        std::thread::sleep(Duration::from_millis(20));
    };
    refused.assert_routed_error(503, "ratelimit_unavailable");
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert_eq!(c.request(b"GET /free HTTP/1.1\r\nHost: t\r\n\r\n").status, 200, "unlimited routes pass");
    gw.wait_for_log("redis unavailable", LONG);
    redis.restart();
    gw.wait_for_log("redis reachable again", LONG);
    assert_eq!(c.request(KEYED).status, 200);
}

#[test]
fn demo_has_a_rate_limited_route_and_says_it_is_local() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port();
    let mut child = Command::new(common::gateway::binary())
        .args(["demo", "--port", &port.to_string(), "--tls-port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the demo");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut text = String::new();
    let deadline = Instant::now() + LONG;
    while !text.contains("seq 8") {
        assert!(Instant::now() < deadline, "demo output: {text}");
        let mut line = String::new();
        if out.read_line(&mut line).expect("read demo output") == 0 {
            panic!("demo exited: {text}");
        }
        text.push_str(&line);
    }
    assert!(text.contains("local limits only"), "{text}");
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let statuses: Vec<u16> = (0..12).map(|_| common::get(addr, "/limited").status).collect();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(statuses[0], 200, "{statuses:?}");
    assert!(statuses.contains(&429), "{statuses:?}");
}
