//! JWT revocation read from a real three-master Redis Cluster: the two sets live on different
//! masters (the reader routes each to its slot's node), a revoked token and a revoked subject are
//! refused within a second, and the reader follows the cluster when a slot moves to another
//! master (`MOVED`, then a re-read of the slot map).

mod common;

use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::redis_cluster::{Cluster, master_of, slot};
use common::{Client, Gateway, Upstream, config, upstream_toml};
use jsonwebtoken::Algorithm;
use portcullis_policies::authn::signing::SigningKey;
use serde_json::json;

const ISS: &str = "https://idp.test/";
const SECRET: &str = "revocation-test-secret-revocation-test";

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs()
}

/// A key prefix whose `<prefix>jti` and `<prefix>sub` hash to different masters.
fn split_prefix() -> String {
    (0..10_000)
        .map(|i| format!("rev{i}:"))
        .find(|p| {
            master_of(slot(format!("{p}jti").as_bytes())) != master_of(slot(format!("{p}sub").as_bytes()))
        })
        .expect("a prefix")
}

/// `redis-cli -c` (follows redirections) against the cluster.
fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-c", "-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli (apt-get install redis-tools)");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn status(c: &mut Client, token: &str) -> u16 {
    c.request(format!("GET /x HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\n\r\n").as_bytes())
        .status
}

fn wait_status(c: &mut Client, token: &str, want: u16, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if status(c, token) == want {
            return start.elapsed();
        }
        assert!(start.elapsed() < within, "no {want} within {within:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn revocations_in_a_redis_cluster_hold_and_follow_a_moved_slot() {
    let cluster = Cluster::start();
    let up = Upstream::echo("app");
    let prefix = split_prefix();
    let gw = Gateway::start(&config(
        "",
        &format!(
            "{}\n[auth]\n[auth.revocation]\ncluster = {}\nkey_prefix = \"{prefix}\"\nsync_interval = \"100ms\"\n\
             [[auth.jwt]]\nname = \"idp\"\nissuer = \"{ISS}\"\nalgorithms = [\"HS256\"]\n\
             keys = [{{ secret = \"{SECRET}\" }}]\n\
             [[routes]]\nprefix = \"/\"\nupstream = \"app\"\n",
            upstream_toml("app", up.addr),
            cluster.seeds_toml(),
        ),
    ));
    let key = SigningKey::secret(SECRET.as_bytes(), Algorithm::HS256, "k").expect("key");
    let sign = |jti: &str, sub: &str| {
        key.sign(&json!({ "iss": ISS, "sub": sub, "jti": jti, "exp": now() + 600 })).expect("sign")
    };
    let (alice, bob, carol) =
        (sign("jti-alice", "alice"), sign("jti-bob", "bob"), sign("jti-carol", "carol"));
    let mut c = Client::connect(gw.addr);
    for t in [&alice, &bob, &carol] {
        assert_eq!(status(&mut c, t), 200);
    }
    let port = cluster.nodes[0].addr.port();
    let exp = (now() + 600).to_string();
    assert_eq!(cli(port, &["ZADD", &format!("{prefix}jti"), &exp, "jti-alice"]), "1");
    assert_eq!(cli(port, &["ZADD", &format!("{prefix}sub"), "+inf", "bob"]), "1");
    eprintln!("jti revoked after {:?}", wait_status(&mut c, &alice, 401, Duration::from_secs(1)));
    eprintln!("subject revoked after {:?}", wait_status(&mut c, &bob, 401, Duration::from_secs(1)));
    assert_eq!(status(&mut c, &carol), 200);

    // Move the `jti` set's slot to another master (the reader gets MOVED and re-reads the map),
    // then revoke carol there.
    let jti_key = format!("{prefix}jti");
    let s = slot(jti_key.as_bytes());
    let (from, to) = (master_of(s), (master_of(s) + 1) % 3);
    let id = |n: usize| cli(cluster.nodes[n].addr.port(), &["CLUSTER", "MYID"]);
    let (from_id, to_id) = (id(from), id(to));
    let (from_port, to_port) = (cluster.nodes[from].addr.port(), cluster.nodes[to].addr.port());
    let s = s.to_string();
    assert_eq!(cli(to_port, &["CLUSTER", "SETSLOT", &s, "IMPORTING", &from_id]), "OK");
    assert_eq!(cli(from_port, &["CLUSTER", "SETSLOT", &s, "MIGRATING", &to_id]), "OK");
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &from_port.to_string()])
        .args(["MIGRATE", "127.0.0.1", &to_port.to_string(), &jti_key, "0", "5000"])
        .output()
        .expect("redis-cli");
    assert!(String::from_utf8_lossy(&out.stdout).contains("OK"), "{}", String::from_utf8_lossy(&out.stdout));
    for n in 0..3 {
        assert_eq!(cli(cluster.nodes[n].addr.port(), &["CLUSTER", "SETSLOT", &s, "NODE", &to_id]), "OK");
    }
    assert_eq!(cli(to_port, &["ZADD", &jti_key, &exp, "jti-carol"]), "1");
    eprintln!(
        "after the slot moved, revoked after {:?}",
        wait_status(&mut c, &carol, 401, Duration::from_secs(2))
    );
    assert_eq!(status(&mut c, &alice), 401, "the moved set still holds alice");
    assert_eq!(status(&mut c, &bob), 401);
}
