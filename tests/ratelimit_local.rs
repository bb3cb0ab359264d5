//! Local rate limits (no Redis) against the real binary: the shards of one process reconcile
//! through the sync thread, so one process enforces one limit per key whatever the shard count
//! (the default, 1 and 2), whether a client keeps one connection or opens one per request.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{Client, Gateway, Upstream, config, upstream_toml};

/// A gateway with `[server] shards` = `shards` (None: the default, one per CPU) and a route
/// `/api` limited per `x-api-key` to `rate` per `per` with `burst`.
fn gateway(up: &Upstream, shards: Option<usize>, rate: u64, per: &str, burst: u64) -> Gateway {
    let rest = format!(
        "{}\n[[routes]]\nname = \"api\"\nprefix = \"/api\"\nupstream = \"app\"\nrate_limits = [\"per-key\"]\n\n\
         [ratelimit.limits.per-key]\nkey = [\"header:x-api-key\"]\nrate = {rate}\nper = \"{per}\"\nburst = {burst}\n",
        upstream_toml("app", up.addr)
    );
    let shards_line = shards.map(|n| format!("shards = {n}\n")).unwrap_or_default();
    Gateway::start(&config("", &rest).replace("shards = 2\n", &shards_line))
}

fn keyed(key: &str) -> Vec<u8> {
    format!("GET /api/x HTTP/1.1\r\nHost: t\r\nx-api-key: {key}\r\n\r\n").into_bytes()
}

/// `n` requests `gap` apart, each on a new connection (spread over the shards by the kernel)
/// or all on one; returns how many were admitted (every other answer must be a 429).
fn admitted(addr: SocketAddr, key: &str, n: usize, gap: Duration, fresh: bool) -> usize {
    let req = keyed(key);
    let mut one = (!fresh).then(|| Client::connect(addr));
    let mut ok = 0;
    let start = Instant::now();
    for i in 0..n {
        if let Some(wait) = (start + gap * i as u32).checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let status = match one.as_mut() {
            Some(c) => c.request(&req).status,
            None => Client::connect(addr).request(&req).status,
        };
        match status {
            200 => ok += 1,
            429 => {}
            s => panic!("unexpected status {s}"),
        }
    }
    ok
}

/// Burst 4 then 1 per 2 s: 20 requests within ~200 ms are admitted exactly 4 times on one
/// connection; on a new connection per request (landing on every shard) at most the documented
/// bound more: a key's first request on a shard that has not seen it within the demand window
/// draws on a default allowance of max(1, burst / shards), repaid later.
fn burst_is_exact(shards: Option<usize>) {
    let up = Upstream::fixed(200, "ok");
    let gw = gateway(&up, shards, 1, "2s", 4);
    let n = shards.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let gap = Duration::from_millis(10);
    assert_eq!(admitted(gw.addr, "one-connection", 20, gap, false), 4, "one connection, shards {shards:?}");
    let bound = 4 + (n - 1) * (4 / n).max(1);
    let got = admitted(gw.addr, "new-connections", 20, gap, true);
    eprintln!("a connection per request, {n} shards: {got} admitted (limit 4, bound {bound})");
    assert!(
        (4..=bound).contains(&got),
        "a connection per request, shards {shards:?}: {got} admitted, bound {bound}"
    );
}

/// Sustained load from four connections at 5x the limit for 4 s: the admitted count is within
/// the bound of rate x time + burst (the debt of first appearances is repaid as it goes).
fn sustained_is_on_the_limit(shards: Option<usize>) {
    let up = Upstream::fixed(200, "ok");
    let (rate, burst) = (20u64, 5u64);
    let gw = gateway(&up, shards, rate, "1s", burst);
    let n = shards.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let start = Instant::now();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let addr = gw.addr;
            std::thread::spawn(move || admitted(addr, "sustained", 100, Duration::from_millis(40), false))
        })
        .collect();
    let ok: usize = threads.into_iter().map(|t| t.join().expect("load")).sum();
    let expected = rate as f64 * start.elapsed().as_secs_f64() + burst as f64;
    let bound = ((n - 1) * (burst as usize / n).max(1)) as f64;
    eprintln!("sustained, {n} shards: {ok} admitted, expected {expected:.1} (+ at most {bound})");
    assert!(ok as f64 <= expected + bound + 1.0, "{ok} admitted, expected {expected:.1} + {bound}");
    assert!(ok as f64 >= expected * 0.95 - 1.0, "{ok} admitted, expected {expected:.1}");
}

#[test]
fn local_burst_is_exact_with_the_default_shard_count() {
    burst_is_exact(None);
    sustained_is_on_the_limit(None);
}

#[test]
fn local_burst_is_exact_with_one_shard() {
    burst_is_exact(Some(1));
    sustained_is_on_the_limit(Some(1));
}

#[test]
fn local_burst_is_exact_with_two_shards() {
    burst_is_exact(Some(2));
    sustained_is_on_the_limit(Some(2));
}
