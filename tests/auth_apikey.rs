//! API keys through the real binary: keys stored as SHA-256 in the config and in a keys file,
//! read from `X-API-Key` or `Authorization: ApiKey`, the consumer handed to the upstream, the key
//! stripped, and the keys file reloaded while the gateway runs.

mod common;

use std::time::{Duration, Instant};

use common::{Client, Gateway, LONG, Response, Upstream, config, upstream_toml};
use portcullis_policies::authn::token_hash;

fn sha(key: &str) -> String {
    token_hash(key.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

fn get(c: &mut Client, path: &str, headers: &[(&str, &str)]) -> Response {
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: api.test\r\n");
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    c.request(req.as_bytes())
}

fn keys_file(entries: &[(&str, &str, &str)]) -> String {
    entries
        .iter()
        .map(|(key, consumer, tier)| {
            format!("[[keys]]\nsha256 = \"{}\"\nconsumer = \"{consumer}\"\ntier = \"{tier}\"\nscopes = [\"read\"]\n", sha(key))
        })
        .collect()
}

#[test]
fn api_keys_authenticate_and_the_keys_file_hot_reloads() {
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("keys.toml");
    std::fs::write(&file, keys_file(&[("file-key-one", "partner", "silver")])).expect("write keys");
    let up = Upstream::echo("app");
    let gw = Gateway::start(&config(
        "",
        &format!(
            "{}\n[auth]\nidentity_headers = {{ x-consumer = \"consumer\", x-tier = \"tier\", x-auth-scopes = \"scopes\" }}\n\
             [auth.api_keys]\nfrom = [{{ header = \"x-api-key\" }}, {{ header = \"authorization\", scheme = \"ApiKey\" }}]\n\
             keys_file = \"{}\"\nwatch_interval = \"100ms\"\n\
             keys = [{{ sha256 = \"{}\", consumer = \"batch\", tier = \"internal\", scopes = [\"read\", \"write\"] }}]\n\
             [[routes]]\nprefix = \"/write\"\nupstream = \"app\"\nauthz = {{ scopes = [\"write\"] }}\n\
             [[routes]]\nprefix = \"/\"\nupstream = \"app\"\n",
            upstream_toml("app", up.addr),
            file.display(),
            sha("inline-secret-key"),
        ),
    ));
    let mut c = Client::connect(gw.addr);
    let r = get(&mut c, "/items", &[("X-API-Key", "inline-secret-key"), ("X-Consumer", "spoofed")]);
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = up.last();
    assert_eq!(seen.header_all("x-consumer"), vec!["batch"]);
    assert_eq!(seen.header_all("x-tier"), vec!["internal"]);
    assert_eq!(seen.header_all("x-auth-scopes"), vec!["read write"]);
    assert!(seen.header("x-api-key").is_none(), "the key never reaches the upstream");

    let r = get(&mut c, "/items", &[("Authorization", "ApiKey file-key-one")]);
    assert_eq!(r.status, 200);
    assert_eq!(up.last().header_all("x-consumer"), vec!["partner"]);
    assert!(up.last().header("authorization").is_none());
    get(&mut c, "/write/x", &[("X-API-Key", "file-key-one")]).assert_routed_error(403, "insufficient_scope");
    assert_eq!(get(&mut c, "/write/x", &[("X-API-Key", "inline-secret-key")]).status, 200);
    let r = get(&mut c, "/items", &[("X-API-Key", "wrong")]);
    r.assert_routed_error(401, "invalid_api_key");
    assert!(r.header("www-authenticate").is_some_and(|v| v.starts_with("ApiKey realm=")));
    get(&mut c, "/items", &[]).assert_routed_error(401, "unauthorized");

    // Rotate the file while the gateway runs: the new key works, the removed one stops.
    std::fs::write(&file, keys_file(&[("file-key-two", "partner-2", "gold")])).expect("rewrite keys");
    let deadline = Instant::now() + LONG;
    loop {
        let r = get(&mut c, "/items", &[("X-API-Key", "file-key-two")]);
        if r.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "keys file change not picked up");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(up.last().header_all("x-consumer"), vec!["partner-2"]);
    get(&mut c, "/items", &[("X-API-Key", "file-key-one")]).assert_routed_error(401, "invalid_api_key");
    // Every shard sees the new file (several connections land on both shards).
    for _ in 0..6 {
        let mut c = Client::connect(gw.addr);
        assert_eq!(get(&mut c, "/items", &[("X-API-Key", "file-key-two")]).status, 200);
    }
}

#[test]
fn the_consumer_and_tier_feed_the_rate_limiter() {
    let up = Upstream::echo("app");
    let gw = Gateway::start(&config(
        "",
        &format!(
            "{}\n[auth.api_keys]\nkeys = [\
             {{ sha256 = \"{}\", consumer = \"small\", tier = \"free\" }}, \
             {{ sha256 = \"{}\", consumer = \"big\", tier = \"gold\" }}]\n\
             [ratelimit.limits.per-consumer]\nkey = [\"consumer\"]\nrate = 1\nper = \"1h\"\nburst = 4\n\
             tiers = {{ gold = {{ rate = 1000, burst = 1000 }} }}\n\
             [[routes]]\nprefix = \"/\"\nupstream = \"app\"\nrate_limits = [\"per-consumer\"]\n",
            upstream_toml("app", up.addr),
            sha("free-tier-key"),
            sha("gold-tier-key"),
        ),
    ));
    // One connection stays on one shard; local limits give each shard its share of the burst.
    let mut c = Client::connect(gw.addr);
    let statuses: Vec<u16> =
        (0..6).map(|_| get(&mut c, "/x", &[("X-API-Key", "free-tier-key")]).status).collect();
    assert!(statuses.contains(&429), "the free consumer is limited: {statuses:?}");
    assert_eq!(statuses[0], 200);
    for _ in 0..6 {
        assert_eq!(get(&mut c, "/x", &[("X-API-Key", "gold-tier-key")]).status, 200, "gold tier, own bucket");
    }
}
