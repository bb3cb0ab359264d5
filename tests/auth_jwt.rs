//! JWT authentication through the real binary against a real JWKS server (HTTP and HTTPS with a
//! generated CA): valid and invalid tokens, algorithm confusion, scopes (401 vs 403), identity
//! hand-off to the upstream, key rotation with one re-fetch, a bogus-`kid` flood, and the last
//! good keys kept while the identity provider is down.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::jwks::JwksServer;
use common::{Client, Gateway, LONG, Response, Upstream, config, upstream_toml};
use jsonwebtoken::{Algorithm, Header};
use portcullis_policies::authn::signing::SigningKey;
use serde_json::{Value, json};

const ISS: &str = "https://idp.test/";

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs()
}

fn rsa() -> SigningKey {
    let pem = include_bytes!("../policies/testdata/rsa-a.pem");
    SigningKey::rsa_pem(pem, Algorithm::RS256, "rsa-1").expect("rsa key")
}

fn claims(extra: Value) -> Value {
    let mut c = json!({
        "iss": ISS, "aud": "api", "sub": "user-42", "exp": now() + 600,
        "scope": "read profile", "plan": "gold", "tenant": "acme"
    });
    if let (Some(obj), Value::Object(extra)) = (c.as_object_mut(), extra) {
        for (k, v) in extra {
            obj.insert(k, v);
        }
    }
    c
}

/// A gateway with one issuer reading `jwks` (plus `refresh` lines in `[auth.jwt.jwks_refresh]`).
fn gateway(up: &Upstream, jwks: &JwksServer, ca_file: Option<&str>, refresh: &str) -> Gateway {
    let ca = ca_file.map(|p| format!("jwks_ca_file = \"{p}\"\n")).unwrap_or_default();
    Gateway::start(&config(
        "",
        &format!(
            "{}\n[auth]\nidentity_headers = {{ x-user-id = \"subject\", x-consumer = \"consumer\", \
             x-auth-scopes = \"scopes\", x-tenant-id = \"claim:tenant\" }}\n\
             [[auth.jwt]]\nname = \"idp\"\nissuer = \"{ISS}\"\naudiences = [\"api\"]\n\
             algorithms = [\"RS256\", \"ES256\"]\nleeway = \"5s\"\ntier_claim = \"plan\"\n\
             jwks_uri = \"{}\"\n{ca}[auth.jwt.jwks_refresh]\n{refresh}\n\
             [[routes]]\nprefix = \"/api\"\nupstream = \"app\"\nauthz = {{ scopes = [\"read\"] }}\n\
             [[routes]]\nprefix = \"/admin\"\nupstream = \"app\"\nauthz = {{ scopes = [\"admin\"] }}\n\
             [[routes]]\nprefix = \"/open\"\nupstream = \"app\"\nauth = \"none\"\n",
            upstream_toml("app", up.addr),
            jwks.uri(),
        ),
    ))
}

fn get(c: &mut Client, path: &str, headers: &[(&str, &str)]) -> Response {
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: api.test\r\n");
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    c.request(req.as_bytes())
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Status and, for 401s, the `error_description` of the challenge.
fn outcome(c: &mut Client, token: &str) -> String {
    let r = get(c, "/api/x", &[("Authorization", &bearer(token))]);
    if r.status == 401 {
        r.assert_routed_error(401, "invalid_token");
        let challenge = r.header("www-authenticate").unwrap_or_default().to_owned();
        let desc = challenge.split("error_description=\"").nth(1).unwrap_or_default();
        return format!("401 {}", desc.trim_end_matches('"'));
    }
    r.status.to_string()
}

fn b64(v: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in v.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, &b)| acc | (u32::from(b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[test]
fn tokens_are_verified_and_identity_is_handed_off() {
    let rsa = rsa();
    let ec = SigningKey::generate_es256("ec-1").expect("ec key");
    let jwks = JwksServer::http(&SigningKey::jwks(&[&rsa, &ec]).expect("jwks"));
    let up = Upstream::echo("app");
    let gw = gateway(&up, &jwks, None, "");
    let mut c = Client::connect(gw.addr);

    // Valid RS256 and ES256 tokens reach the upstream with the identity, without the token and
    // without the client's spoofed identity headers.
    for key in [&rsa, &ec] {
        let token = key.sign(&claims(json!({}))).expect("sign");
        let auth = bearer(&token);
        let r = get(
            &mut c,
            "/api/users",
            &[("Authorization", &auth), ("X-User-Id", "admin"), ("X-Tenant-Id", "evil"), ("x-consumer", "x")],
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let seen = up.last();
        assert_eq!(seen.header_all("x-user-id"), vec!["user-42"]);
        assert_eq!(seen.header_all("x-consumer"), vec!["user-42"]);
        assert_eq!(seen.header_all("x-tenant-id"), vec!["acme"]);
        assert_eq!(seen.header_all("x-auth-scopes"), vec!["read profile"]);
        assert!(seen.header("authorization").is_none(), "the token never reaches the upstream");
        let raw = String::from_utf8_lossy(&seen.raw_head).into_owned();
        assert!(!raw.contains(&token), "token bytes in the upstream request");
    }

    let sign = |extra: Value| rsa.sign(&claims(extra)).expect("sign");
    assert_eq!(outcome(&mut c, &sign(json!({ "exp": now() - 60 }))), "401 token expired");
    assert_eq!(outcome(&mut c, &sign(json!({ "nbf": now() + 60 }))), "401 token not yet valid");
    assert_eq!(outcome(&mut c, &sign(json!({ "iss": "https://evil.test/" }))), "401 wrong issuer");
    assert_eq!(outcome(&mut c, &sign(json!({ "aud": "other" }))), "401 wrong audience");
    let other =
        SigningKey::rsa_pem(include_bytes!("../policies/testdata/rsa-b.pem"), Algorithm::RS256, "rsa-1")
            .expect("rsa b");
    assert_eq!(outcome(&mut c, &other.sign(&claims(json!({}))).expect("sign")), "401 invalid signature");
    // alg: none, with and without a signature.
    let payload = b64(claims(json!({})).to_string().as_bytes());
    let none = format!("{}.{payload}.", b64(br#"{"alg":"none","typ":"JWT","kid":"rsa-1"}"#));
    assert_eq!(outcome(&mut c, &none), "401 malformed token");
    // RS256 -> HS256 confusion: HMAC over the token with the issuer's public key as the secret.
    let public_pem = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/policies/testdata/rsa-a.pub.pem"))
        .expect("public pem");
    let mut h = Header::new(Algorithm::HS256);
    h.kid = Some("rsa-1".to_owned());
    let hs = SigningKey::secret(&public_pem, Algorithm::HS256, "rsa-1").expect("hs key");
    let confused = hs.sign_with(&h, &claims(json!({}))).expect("sign");
    assert_eq!(outcome(&mut c, &confused), "401 token algorithm not accepted");
    // RS512 is the same key type but not on the allow-list.
    let rs512 = rsa.sign_with(
        &Header { alg: Algorithm::RS512, kid: Some("rsa-1".into()), ..Header::default() },
        &claims(json!({})),
    );
    assert!(rs512.is_err() || outcome(&mut c, &rs512.expect("sign")) == "401 token algorithm not accepted");

    // No token: 401 with a challenge; a token without the route's scope: 403.
    let r = get(&mut c, "/api/x", &[]);
    r.assert_routed_error(401, "unauthorized");
    assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"portcullis\""));
    let r = get(&mut c, "/admin/x", &[("Authorization", &bearer(&sign(json!({}))))]);
    r.assert_routed_error(403, "insufficient_scope");
    assert!(r.header("www-authenticate").is_some_and(|v| v.contains("error=\"insufficient_scope\"")));
    let r = get(&mut c, "/admin/x", &[("Authorization", &bearer(&sign(json!({ "scope": "admin" }))))]);
    assert_eq!(r.status, 200);
    // No route matches: 404, not 401 (nothing to protect).
    get(&mut c, "/nowhere", &[]).assert_routed_error(404, "route_not_found");
    // A route without auth is open, and still strips spoofed identity headers.
    let before = up.requests();
    let r = get(&mut c, "/open/x", &[("X-User-Id", "admin")]);
    assert_eq!(r.status, 200);
    assert_eq!(up.requests(), before + 1);
    assert!(up.last().header("x-user-id").is_none(), "spoofed identity header reached the upstream");
}

#[test]
fn rotation_is_picked_up_by_one_refetch_and_bogus_kids_do_not_hammer_the_idp() {
    let old = SigningKey::generate_es256("k-old").expect("ec");
    let new = SigningKey::generate_es256("k-new").expect("ec");
    let jwks = JwksServer::http(&SigningKey::jwks(&[&old]).expect("jwks"));
    let up = Upstream::echo("app");
    let gw = gateway(&up, &jwks, None, "unknown_kid_interval = \"1m\"");
    gw.wait_for_log("JWKS fetched", LONG);
    let base = jwks.fetches();
    let mut c = Client::connect(gw.addr);
    assert_eq!(outcome(&mut c, &old.sign(&claims(json!({}))).expect("sign")), "200");
    assert_eq!(jwks.fetches(), base, "a known kid needs no fetch");

    // The issuer rotates: a token with the new kid triggers exactly one re-fetch, then passes.
    jwks.set_body(&SigningKey::jwks(&[&old, &new]).expect("jwks"));
    assert_eq!(outcome(&mut c, &new.sign(&claims(json!({}))).expect("sign")), "200");
    assert_eq!(jwks.fetches(), base + 1, "one re-fetch for the new kid");

    // A thousand tokens with made-up kids, on both shards: at most one fetch per interval (the
    // last one was just now, so none at all), each answered 401 at once.
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let addr = gw.addr;
            std::thread::spawn(move || {
                let key = SigningKey::generate_es256(&format!("bogus-{t}")).expect("ec");
                let mut c = Client::connect(addr);
                for i in 0..250 {
                    let forged = SigningKey::generate_es256(&format!("bogus-{t}-{i}")).expect("ec");
                    let token = if i % 2 == 0 {
                        forged.sign(&claims(json!({})))
                    } else {
                        key.sign(&claims(json!({})))
                    };
                    let r = get(&mut c, "/api/x", &[("Authorization", &bearer(&token.expect("sign")))]);
                    assert_eq!(r.status, 401);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("flood thread");
    }
    assert_eq!(jwks.fetches(), base + 1, "bogus kids caused fetches");
}

#[test]
fn https_jwks_with_private_ca_and_last_good_keys_when_the_idp_is_down() {
    let key = SigningKey::generate_ed25519("ed-1").expect("ed");
    let rsa = rsa();
    let jwks = JwksServer::https(&SigningKey::jwks(&[&rsa]).expect("jwks"));
    jwks.set_cache_control("max-age=1");
    let dir = tempfile::tempdir().expect("tmp");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, jwks.ca_pem.as_deref().expect("https")).expect("write CA");
    let up = Upstream::echo("app");
    let gw = gateway(
        &up,
        &jwks,
        Some(&ca.display().to_string()),
        "min_interval = \"1s\"\nretry_interval = \"1s\"",
    );
    let mut c = Client::connect(gw.addr);
    assert_eq!(outcome(&mut c, &rsa.sign(&claims(json!({}))).expect("sign")), "200");
    // Refreshes follow max-age=1 (clamped to min_interval = 1s).
    jwks.wait_fetches(3, LONG);
    // The identity provider goes down: fetches fail, the last good keys stay in use. (Each token
    // is new, so the verification cache cannot be what answers.)
    jwks.set_down(true);
    let failing = jwks.fetches();
    jwks.wait_fetches(failing + 2, LONG);
    for i in 0..3 {
        let token = rsa.sign(&claims(json!({ "jti": format!("down-{i}") }))).expect("sign");
        assert_eq!(outcome(&mut c, &token), "200");
    }
    gw.wait_for_log("JWKS fetch failed; keeping the last good set", LONG);
    // An EdDSA token is outside this issuer's allow-list whatever the key set holds.
    assert_eq!(
        outcome(&mut c, &key.sign(&claims(json!({}))).expect("sign")),
        "401 token algorithm not accepted"
    );
}

#[test]
fn an_untrusted_https_certificate_is_refused() {
    let rsa = rsa();
    let jwks = JwksServer::https(&SigningKey::jwks(&[&rsa]).expect("jwks"));
    let up = Upstream::echo("app");
    // No jwks_ca_file: the web roots do not know the test CA, so no key is ever loaded.
    let gw = gateway(&up, &jwks, None, "");
    gw.wait_for_log("JWKS fetch failed", LONG);
    let mut c = Client::connect(gw.addr);
    assert_eq!(outcome(&mut c, &rsa.sign(&claims(json!({}))).expect("sign")), "401 unknown signing key");
}
