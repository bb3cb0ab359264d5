//! JWT revocation through the real binary and a real redis-server: a revoked `jti` and a revoked
//! subject are refused within a second even though their tokens are in the verification cache,
//! other tokens still pass, the last list stays in force while Redis is down, and refusals are
//! counted in `/metrics` by reason.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::redis::{Redis, command};
use common::{Client, Gateway, LONG, Metrics, Upstream, config, upstream_toml};
use jsonwebtoken::Algorithm;
use portcullis_policies::authn::signing::SigningKey;
use serde_json::json;

const ISS: &str = "https://idp.test/";
const SECRET: &str = "revocation-test-secret-revocation-test";
const TOKEN: &str = "revocation-admin-token";
const PREFIX: &str = "test:revoked:";

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs()
}

fn gateway(up: &Upstream, redis: SocketAddr) -> Gateway {
    Gateway::start(&config(
        "",
        &format!(
            "{}\n[admin]\nbind = \"127.0.0.1:0\"\ntoken = \"{TOKEN}\"\n\n\
             [auth]\n[auth.revocation]\nredis = \"{redis}\"\nkey_prefix = \"{PREFIX}\"\n\
             sync_interval = \"250ms\"\n\
             [[auth.jwt]]\nname = \"idp\"\nissuer = \"{ISS}\"\nalgorithms = [\"HS256\"]\n\
             keys = [{{ secret = \"{SECRET}\" }}]\n\
             [[routes]]\nprefix = \"/\"\nupstream = \"app\"\n",
            upstream_toml("app", up.addr),
        ),
    ))
}

fn token(key: &SigningKey, jti: &str, sub: &str) -> String {
    key.sign(&json!({ "iss": ISS, "sub": sub, "jti": jti, "exp": now() + 600 })).expect("sign")
}

fn status(c: &mut Client, token: &str) -> u16 {
    let r =
        c.request(format!("GET /x HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\n\r\n").as_bytes());
    if r.status == 401 {
        r.assert_routed_error(401, "invalid_token");
        assert!(
            r.header("www-authenticate").is_some_and(|v| v.contains("token revoked")),
            "{:?}",
            r.header("www-authenticate")
        );
    }
    r.status
}

/// Polls until `token` gets `want`, for at most `within`; returns how long it took.
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
fn revoked_tokens_and_subjects_are_refused_within_a_second() {
    let mut redis = Redis::start();
    let up = Upstream::echo("app");
    let gw = gateway(&up, redis.addr);
    let admin = gw.admin.expect("admin address printed");
    let key = SigningKey::secret(SECRET.as_bytes(), Algorithm::HS256, "k").expect("key");
    let alice = token(&key, "jti-alice", "alice");
    let bob = token(&key, "jti-bob", "bob");
    let carol = token(&key, "jti-carol", "carol");
    let mut c = Client::connect(gw.addr);
    // Verified once each: from now on they are answered from the verification cache.
    for t in [&alice, &bob, &carol] {
        assert_eq!(status(&mut c, t), 200);
        assert_eq!(status(&mut c, t), 200);
    }

    // Revoke one token by jti (score = its exp).
    let exp = (now() + 600).to_string();
    assert_eq!(command(redis.addr, &["ZADD", &format!("{PREFIX}jti"), &exp, "jti-alice"]), ":1");
    let took = wait_status(&mut c, &alice, 401, Duration::from_secs(1));
    eprintln!("jti revocation took {took:?}");
    assert_eq!(status(&mut c, &bob), 200);
    assert_eq!(status(&mut c, &carol), 200);
    // A new token of the same subject is not affected by a jti revocation.
    assert_eq!(status(&mut c, &token(&key, "jti-alice-2", "alice")), 200);

    // Revoke every token of a subject, until removed.
    assert_eq!(command(redis.addr, &["ZADD", &format!("{PREFIX}sub"), "+inf", "bob"]), ":1");
    let took = wait_status(&mut c, &bob, 401, Duration::from_secs(1));
    eprintln!("subject revocation took {took:?}");
    assert_eq!(status(&mut c, &token(&key, "jti-bob-2", "bob")), 401);
    assert_eq!(status(&mut c, &carol), 200);

    // An entry whose score (the token's exp) passed long ago no longer counts.
    assert_eq!(command(redis.addr, &["ZADD", &format!("{PREFIX}jti"), "1000", "jti-carol"]), ":1");

    // Redis down: the last list stays in force.
    let mark = gw.log_mark();
    redis.kill();
    gw.wait_for_log_after(mark, "cannot read the revocation list", LONG);
    assert_eq!(status(&mut c, &alice), 401);
    assert_eq!(status(&mut c, &bob), 401);
    assert_eq!(status(&mut c, &carol), 200);

    // Refusals are counted by reason.
    let m = Metrics::scrape(admin, Some(TOKEN));
    let revoked = m.value("portcullis_events_total", &[("event", "auth_failure"), ("reason", "revoked")]);
    assert!(revoked >= 4.0, "revoked refusals counted: {}", m.text);
    let r = c.request(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n");
    r.assert_routed_error(401, "unauthorized");
    let m = Metrics::scrape(admin, Some(TOKEN));
    assert_eq!(m.value("portcullis_events_total", &[("event", "auth_failure"), ("reason", "missing")]), 1.0);

    // Redis back, empty (no persistence): the list empties and the tokens pass again.
    let mark = gw.log_mark();
    redis.restart();
    gw.wait_for_log_after(mark, "revocation list reachable again", LONG);
    wait_status(&mut c, &alice, 200, LONG);
    assert_eq!(status(&mut c, &bob), 200);
}
