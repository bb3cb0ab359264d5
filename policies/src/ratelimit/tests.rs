//! The rate-limit filter through the chain: keys and scopes, tiers, several limits, the 429 and
//! its headers, reload keeping buckets, and the fail modes with an unreachable Redis.

use std::rc::Rc;

use bytes::Bytes;
use portcullis_core::config::{Config, load_str};
use portcullis_core::pipeline::{Filter, Flow, ResponseHead};

use crate::testutil::{block_on, cx, request, values};
use crate::{Chain, ChainEnv, RateLimitService};

const BASE: &str = "\
[server]
shards = 1

[[listeners]]
bind = \"127.0.0.1:0\"

[[upstreams]]
name = \"app\"
endpoints = [\"127.0.0.1:9000\"]

[[routes]]
name = \"limited\"
prefix = \"/limited\"
upstream = \"app\"
rate_limits = [\"ip\"]

[[routes]]
name = \"open\"
prefix = \"/open\"
upstream = \"app\"

[[routes]]
name = \"keyed\"
prefix = \"/keyed\"
upstream = \"app\"
rate_limits = [\"by-key\", \"route-total\"]
";

fn config(extra: &str) -> Config {
    load_str(&format!("{BASE}\n{extra}"), "t.toml").unwrap_or_else(|e| panic!("{e}"))
}

const LIMITS: &str = "
[ratelimit.limits.ip]
key = [\"client_ip\"]
rate = 1
per = \"1h\"
burst = 3

[ratelimit.limits.by-key]
key = [\"header:x-api-key\"]
rate = 1
per = \"1h\"
burst = 2
tiers = { gold = { rate = 1, burst = 4 } }

[ratelimit.limits.route-total]
key = [\"route\"]
rate = 1
per = \"1h\"
burst = 8
";

/// Outcome of one request: (status, headers of the response the client sees).
fn send(
    chain: &Chain,
    route: usize,
    peer: &str,
    headers: &[(&str, &str)],
    tier: Option<&str>,
) -> (u16, ResponseHead) {
    let mut req = request("/x", None, headers);
    let mut c = cx(peer);
    c.route = Some(route);
    c.tier = tier.map(Rc::from);
    let mut resp = ResponseHead::new(200);
    if let Flow::Respond(reply) = block_on(chain.on_request(&mut req, &mut c)) {
        resp.status = reply.status;
        for h in reply.headers.iter() {
            resp.headers.append(h.name.clone(), h.value.clone());
        }
        assert!(String::from_utf8_lossy(&reply.render_body(b"id")).contains(reply.code));
    }
    chain.on_response(&mut resp, &mut c);
    (resp.status, resp)
}

fn statuses(chain: &Chain, route: usize, peer: &str, headers: &[(&str, &str)], n: usize) -> Vec<u16> {
    (0..n).map(|_| send(chain, route, peer, headers, None).0).collect()
}

#[test]
fn per_ip_burst_then_429_with_headers() {
    let chain = Chain::build(&config(LIMITS), &ChainEnv::new()).expect("builds");
    assert_eq!(statuses(&chain, 0, "10.0.0.1:1", &[], 4), [200, 200, 200, 429]);
    // Another address has its own bucket.
    assert_eq!(statuses(&chain, 0, "10.0.0.2:1", &[], 1), [200]);
    let (status, resp) = send(&chain, 0, "10.0.0.1:1", &[], None);
    assert_eq!(status, 429);
    let retry: u64 = values(&resp.headers, "retry-after")[0].parse().expect("seconds");
    assert!((3590..=3600).contains(&retry), "{retry}");
    assert_eq!(values(&resp.headers, "ratelimit-policy"), ["\"ip\";q=1;w=3600"]);
    assert_eq!(
        values(&resp.headers, "ratelimit")[0].split(';').take(2).collect::<Vec<_>>(),
        ["\"ip\"", "r=0"]
    );
    // A fresh address: remaining counts down on successful responses too.
    let (_, ok) = send(&chain, 0, "10.0.0.3:1", &[], None);
    assert!(
        values(&ok.headers, "ratelimit")[0].starts_with("\"ip\";r=2;t="),
        "{:?}",
        values(&ok.headers, "ratelimit")
    );
}

#[test]
fn unlimited_routes_are_untouched() {
    let chain = Chain::build(&config(LIMITS), &ChainEnv::new()).expect("builds");
    assert!(statuses(&chain, 1, "10.0.0.1:1", &[], 20).iter().all(|&s| s == 200));
    let (_, resp) = send(&chain, 1, "10.0.0.1:1", &[], None);
    assert!(!resp.headers.contains("ratelimit") && !resp.headers.contains("ratelimit-policy"));
}

#[test]
fn header_keys_tiers_and_several_limits() {
    let chain = Chain::build(&config(LIMITS), &ChainEnv::new()).expect("builds");
    // Without the header the per-key limit does not apply; the route total still does.
    assert_eq!(statuses(&chain, 2, "10.0.0.1:1", &[], 1), [200]);
    // Key "a": burst 2.
    assert_eq!(statuses(&chain, 2, "10.0.0.1:1", &[("x-api-key", "a")], 3), [200, 200, 429]);
    // Gold tier on key "b": burst 4 instead of 2.
    let gold: Vec<u16> =
        (0..5).map(|_| send(&chain, 2, "10.0.0.1:1", &[("x-api-key", "b")], Some("gold")).0).collect();
    assert_eq!(gold, [200, 200, 200, 200, 429]);
    // Both limits apply: key "c" has room, the route total (8) has one left, then none.
    let (status, resp) = send(&chain, 2, "10.0.0.1:1", &[("x-api-key", "c")], None);
    assert_eq!(status, 200);
    assert_eq!(
        values(&resp.headers, "ratelimit-policy"),
        ["\"by-key\";q=1;w=3600, \"route-total\";q=1;w=3600"]
    );
    assert!(values(&resp.headers, "ratelimit")[0].starts_with("\"route-total\";r=0"), "{:?}", resp.headers);
    assert_eq!(statuses(&chain, 2, "10.0.0.1:1", &[("x-api-key", "d")], 1), [429]);
}

#[test]
fn reload_keeps_unchanged_limits_and_resets_changed_ones() {
    let env = ChainEnv::new();
    let first = Chain::build(&config(LIMITS), &env).expect("builds");
    assert_eq!(statuses(&first, 0, "10.0.0.1:1", &[], 4), [200, 200, 200, 429]);
    assert_eq!(statuses(&first, 2, "10.0.0.1:1", &[("x-api-key", "a")], 3), [200, 200, 429]);
    // Same limits, another route added: the bucket state carries over.
    let same = Chain::build(
        &config(&format!("{LIMITS}\n[[routes]]\nprefix = \"/new\"\nupstream = \"app\"\n")),
        &env,
    )
    .expect("builds");
    assert_eq!(statuses(&same, 0, "10.0.0.1:1", &[], 1), [429]);
    // `by-key` changed (burst 2 -> 3): its buckets start full; `ip` still remembers.
    let changed = Chain::build(&config(&LIMITS.replace("burst = 2", "burst = 3")), &env).expect("builds");
    assert_eq!(statuses(&changed, 2, "10.0.0.1:1", &[("x-api-key", "a")], 1), [200]);
    assert_eq!(statuses(&changed, 0, "10.0.0.1:1", &[], 1), [429]);
}

#[test]
fn local_limits_are_split_by_shards_and_gateways() {
    let cfg = config(&format!("{LIMITS}\n[ratelimit]\ngateways = 3\n").replace("burst = 3", "burst = 9"));
    let chain = Chain::build(&cfg, &ChainEnv::new()).expect("builds");
    assert_eq!(statuses(&chain, 0, "10.0.0.1:1", &[], 4), [200, 200, 200, 429], "a third of 9");
}

fn unreachable_redis(fail_mode: &str) -> (Config, ChainEnv) {
    let port =
        std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
    let cfg = config(&format!(
        "{LIMITS}\n[ratelimit]\nredis = \"127.0.0.1:{port}\"\nredis_timeout = \"200ms\"\nfail_mode = \"{fail_mode}\"\n"
    ));
    let service = RateLimitService::start(&cfg.ratelimit).expect("sync thread");
    (cfg, ChainEnv { ratelimit: service, ..ChainEnv::default() })
}

#[test]
fn fail_closed_refuses_limited_routes_while_redis_is_down() {
    let (cfg, env) = unreachable_redis("closed");
    assert_eq!(env.ratelimit.health(), crate::Health::Down);
    let chain = Chain::build(&cfg, &env).expect("builds");
    let (status, resp) = send(&chain, 0, "10.0.0.1:1", &[], None);
    assert_eq!(status, 503);
    assert_eq!(values(&resp.headers, "retry-after"), ["1"]);
    assert_eq!(statuses(&chain, 1, "10.0.0.1:1", &[], 1), [200], "unlimited routes still pass");
    assert_eq!(env.ratelimit.stats().fail_closed, 1);
    assert!(env.ratelimit.stats().redis_errors >= 1);
}

#[test]
fn fail_open_uses_local_limits_while_redis_is_down() {
    let (cfg, env) = unreachable_redis("open");
    let chain = Chain::build(&cfg, &env).expect("builds");
    assert_eq!(statuses(&chain, 0, "10.0.0.1:1", &[], 4), [200, 200, 200, 429]);
}

#[test]
fn build_order_places_ratelimit_before_transform() {
    let mut cfg = config(LIMITS);
    cfg.routes[1].rewrite_prefix = Some("/".to_owned());
    let chain = Chain::build(&cfg, &ChainEnv::new()).expect("builds");
    let kinds: Vec<&str> = chain.filters().iter().map(|f| f.name()).collect();
    assert_eq!(kinds, ["observe", "request_id", "forwarded", "ratelimit", "transform"]);
    let _ = Bytes::new();
}
