//! Redis credentials and TLS against a real redis-server that requires them (`requirepass` for
//! the default user, an ACL user `gw`; a TLS-only port with a test CA): the rate-limit sync
//! authenticates with a password from a file or from the environment; a wrong password is
//! reported without the password, and the fail mode applies; `GET /config` never shows a
//! password; TLS works with the right CA and fails (fail mode) with another.

mod common;

use std::net::SocketAddr;

use common::redis_cluster::{Node, authed};
use common::{Client, Gateway, LONG, Upstream, admin, config, upstream_toml};

const USER_PASSWORD: &str = "gw-s3cret-Zq8";
const DEFAULT_PASSWORD: &str = "default-s3cret-Xw4";
const TOKEN: &str = "auth-test-admin-token";

/// redis-server with a password for the default user and an ACL user `gw`.
fn secured_redis() -> Node {
    let args: Vec<String> = ["--requirepass", DEFAULT_PASSWORD, "--user", "gw", "on"]
        .iter()
        .map(|s| s.to_string())
        .chain([format!(">{USER_PASSWORD}"), "~*".into(), "&*".into(), "+@all".into()])
        .collect();
    Node::start(&args, |addr: SocketAddr| {
        std::net::TcpStream::connect(addr).is_ok()
            && authed(addr, Some("gw"), USER_PASSWORD, &["PING"]).1 == "+PONG"
    })
}

fn gateway_toml(up: &Upstream, settings: &str) -> String {
    config(
        "",
        &format!(
            "{}\n[admin]\nbind = \"127.0.0.1:0\"\ntoken = \"{TOKEN}\"\n\n\
             [[routes]]\nname = \"api\"\nprefix = \"/api\"\nupstream = \"app\"\nrate_limits = [\"per-key\"]\n\n\
             [ratelimit]\n{settings}\nfail_mode = \"closed\"\nredis_timeout = \"200ms\"\n\n\
             [ratelimit.limits.per-key]\nkey = [\"header:x-api-key\"]\nrate = 1\nper = \"1h\"\nburst = 3\n",
            upstream_toml("app", up.addr)
        ),
    )
}

/// `n` requests 50 ms apart on one connection (a shard learns its part of a new key's allowance
/// one sync round after the key's first request; until then it holds its default share).
fn admitted(gw: &Gateway, key: &str, n: usize) -> Vec<u16> {
    let req = format!("GET /api/x HTTP/1.1\r\nHost: t\r\nx-api-key: {key}\r\n\r\n").into_bytes();
    let mut c = Client::connect(gw.addr);
    (0..n)
        .map(|i| {
            if i > 0 {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            c.request(&req).status
        })
        .collect()
}

#[test]
fn acl_user_with_a_password_file_and_default_user_from_the_environment() {
    let redis = secured_redis();
    let up = Upstream::fixed(200, "ok");
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("redis.pass");
    std::fs::write(&file, format!("{USER_PASSWORD}\n")).expect("write the password file");
    let by_file = Gateway::start(&gateway_toml(
        &up,
        &format!(
            "redis = \"{}\"\nredis_username = \"gw\"\nredis_password_file = \"{}\"",
            redis.addr,
            file.display()
        ),
    ));
    by_file.wait_for_log("rate limit: connected to redis", LONG);
    // fail_mode = closed: a 200 means Redis answered (a refused AUTH would be 503s).
    let s = admitted(&by_file, "file", 4);
    assert_eq!(s[..3], [200, 200, 200], "{s:?}");
    // The state is in Redis under the gateway's key prefix.
    let (ok, size) = authed(redis.addr, Some("gw"), USER_PASSWORD, &["DBSIZE"]);
    assert_eq!(ok, "+OK");
    assert!(size.trim_start_matches(':').parse::<u64>().expect("DBSIZE") >= 1, "{size}");
    // GET /config shows where the password comes from, never the password.
    let cfg = admin(by_file.admin.expect("admin"), "GET", "/config", Some(TOKEN), b"");
    assert_eq!(cfg.status, 200);
    assert!(
        cfg.text().contains("redis_password_file") && !cfg.text().contains(USER_PASSWORD),
        "{}",
        cfg.text()
    );

    let by_env = Gateway::start_with_env(
        &gateway_toml(
            &up,
            &format!("redis = \"{}\"\nredis_password_env = \"TEST_REDIS_PASSWORD\"", redis.addr),
        ),
        &[("TEST_REDIS_PASSWORD", DEFAULT_PASSWORD)],
    );
    by_env.wait_for_log("rate limit: connected to redis", LONG);
    // Both gateways share the key's global state: once the second gateway has reported its
    // first request (served from its default allowance, a documented first appearance), Redis'
    // state refuses the key there too.
    let more = admitted(&by_env, "file", 3);
    assert_eq!(more[1..], [429, 429], "{s:?} then {more:?}");
}

#[test]
fn a_wrong_password_is_reported_without_the_password_and_the_fail_mode_applies() {
    let redis = secured_redis();
    let up = Upstream::fixed(200, "ok");
    let wrong = "not-the-password-Kd9";
    let gw = Gateway::start_with_env(
        &gateway_toml(
            &up,
            &format!(
                "redis = \"{}\"\nredis_username = \"gw\"\nredis_password_env = \"TEST_REDIS_PASSWORD\"",
                redis.addr
            ),
        ),
        &[("TEST_REDIS_PASSWORD", wrong)],
    );
    let line = gw.wait_for_log("redis unavailable", LONG);
    assert!(line.contains("refused AUTH") && line.contains("\"gw\""), "{line}");
    assert!(gw.logs().iter().all(|l| !l.contains(wrong)), "the password was logged");
    assert_eq!(admitted(&gw, "k", 1), [503], "fail closed");
}

/// redis-server listening only on TLS (certificate for `localhost` from `pki`), requiring the
/// ACL user's password too.
fn tls_redis(pki: &common::tls::Pki) -> Node {
    let (crt, key) = pki.issue("redis", &["localhost"]);
    let (crt, key, ca) =
        (crt.display().to_string(), key.display().to_string(), pki.ca_pem.display().to_string());
    Node::start_with(
        |port| {
            let mut a: Vec<String> = vec!["--port".into(), "0".into(), "--tls-port".into(), port.to_string()];
            for (k, v) in [("--tls-cert-file", &crt), ("--tls-key-file", &key), ("--tls-ca-cert-file", &ca)] {
                a.push(k.into());
                a.push(v.clone());
            }
            a.extend(["--tls-auth-clients", "no", "--user", "gw", "on"].map(String::from));
            a.extend([format!(">{USER_PASSWORD}"), "~*".into(), "&*".into(), "+@all".into()]);
            a
        },
        |addr: SocketAddr| std::net::TcpStream::connect(addr).is_ok(),
    )
}

#[test]
fn tls_to_redis_with_a_ca_file_and_a_refused_unknown_ca() {
    let pki = common::tls::Pki::new();
    let redis = tls_redis(&pki);
    let up = Upstream::fixed(200, "ok");
    let settings = |ca: &std::path::Path| {
        format!(
            "redis = \"localhost:{}\"\nredis_tls_ca_file = \"{}\"\nredis_username = \"gw\"\n\
             redis_password_env = \"TEST_REDIS_PASSWORD\"",
            redis.addr.port(),
            ca.display()
        )
    };
    let gw = Gateway::start_with_env(
        &gateway_toml(&up, &settings(&pki.ca_pem)),
        &[("TEST_REDIS_PASSWORD", USER_PASSWORD)],
    );
    gw.wait_for_log("rate limit: connected to redis", LONG);
    let s = admitted(&gw, "tls", 4);
    assert_eq!(s, [200, 200, 200, 429], "fail closed: 200s mean Redis answered over TLS");
    // A gateway trusting another CA refuses the server's certificate: Redis is down for it.
    let other = common::tls::Pki::new();
    let gw2 = Gateway::start_with_env(
        &gateway_toml(&up, &settings(&other.ca_pem)),
        &[("TEST_REDIS_PASSWORD", USER_PASSWORD)],
    );
    let line = gw2.wait_for_log("redis unavailable", LONG);
    assert!(line.contains("TLS handshake"), "{line}");
    assert_eq!(admitted(&gw2, "tls", 1), [503]);
}
