//! Unit tests of authentication: every algorithm through the ring provider, the claim checks,
//! algorithm confusion, the verification cache, credential sources and the identity hand-off,
//! API keys (inline and a hot-reloaded file).

use std::path::Path;
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, Header};
use portcullis_core::config::{
    ApiKeyEntry, ApiKeysConfig, AuthMode, Config, Dur, JwksRefreshConfig, JwtIssuerConfig, StaticKeyConfig,
    TokenSource,
};
use portcullis_core::pipeline::{Cx, Filter, Flow};
use serde_json::{Value, json};

use super::signing::SigningKey;
use super::{AuthnFilter, token_hash};
use crate::ChainEnv;
use crate::testutil::{block_on, cx, request, values};
use crate::transform::tests::route;

const ISS: &str = "https://id.example.com/";
const SECRET: &str = "0123456789abcdef0123456789abcdef-test-secret";

pub(crate) fn rsa_a() -> SigningKey {
    let pem = include_bytes!("../../testdata/rsa-a.pem");
    SigningKey::rsa_pem(pem, Algorithm::RS256, "rsa-a").expect("rsa key")
}

fn now() -> u64 {
    super::cache::unix_now()
}

pub(crate) fn claims(extra: Value) -> Value {
    let mut c =
        json!({ "iss": ISS, "aud": "api", "sub": "user-7", "exp": now() + 600, "scope": "read write" });
    if let (Some(c), Value::Object(extra)) = (c.as_object_mut(), extra) {
        for (k, v) in extra {
            if v.is_null() {
                c.remove(&k);
            } else {
                c.insert(k, v);
            }
        }
    }
    c
}

/// An issuer config verifying with a JWKS file holding `keys`.
pub(crate) fn issuer(dir: &Path, algorithms: &[&str], keys: &[&SigningKey]) -> JwtIssuerConfig {
    let path = dir.join(format!("jwks-{}.json", fastrand::u64(..)));
    std::fs::write(&path, SigningKey::jwks(keys).expect("jwks")).expect("write jwks");
    JwtIssuerConfig {
        name: "main".to_owned(),
        issuer: ISS.to_owned(),
        audiences: vec!["api".to_owned()],
        algorithms: algorithms.iter().map(|s| (*s).to_owned()).collect(),
        leeway: Dur::secs(5),
        required_claims: vec![],
        token_from: vec![TokenSource::bearer()],
        jwks_uri: None,
        jwks_ca_file: None,
        jwks_refresh: JwksRefreshConfig::default(),
        keys: vec![StaticKeyConfig { jwk_file: Some(path.display().to_string()), ..Default::default() }],
        scopes_claim: "scope".to_owned(),
        roles_claim: "roles".to_owned(),
        consumer_claim: "sub".to_owned(),
        tier_claim: Some("tier".to_owned()),
    }
}

fn config_with(issuers: Vec<JwtIssuerConfig>, api_keys: Option<ApiKeysConfig>) -> Config {
    let mut cfg = Config::default();
    cfg.auth.jwt = issuers;
    cfg.auth.api_keys = api_keys;
    let mut open = route(Some("/open"), None);
    open.auth = Some(AuthMode::None);
    let mut maybe = route(Some("/maybe"), None);
    maybe.auth = Some(AuthMode::Optional);
    cfg.routes = vec![route(Some("/"), None), open, maybe];
    cfg
}

fn filter(cfg: &Config) -> AuthnFilter {
    AuthnFilter::build(cfg, &ChainEnv::new()).expect("builds").expect("auth enabled")
}

/// Runs the filter on `GET path` (route index `route`) with `headers`.
fn run(f: &AuthnFilter, route: usize, headers: &[(&str, &str)]) -> (Flow, crate::testutil::Req) {
    let mut req = request("/", None, headers);
    let mut c: Cx = cx("10.0.0.1:1");
    c.route = Some(route);
    let flow = block_on(f.on_request(&mut req, &mut c));
    (flow, (req, c))
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// The 401 reason (`error_description`) or "ok".
fn outcome(f: &AuthnFilter, token: &str) -> String {
    let auth = bearer(token);
    match run(f, 0, &[("authorization", &auth)]).0 {
        Flow::Continue => "ok".to_owned(),
        Flow::Respond(r) => {
            assert_eq!(r.status, 401, "{r:?}");
            r.message.into_owned()
        }
    }
}

#[test]
fn every_algorithm_verifies_through_the_ring_provider() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut cases: Vec<SigningKey> = Vec::new();
    for alg in [
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
    ] {
        cases.push(rsa_a().with_alg(alg));
    }
    cases.push(SigningKey::generate_es256("ec").expect("ec"));
    cases.push(SigningKey::generate_ed25519("ed").expect("ed"));
    for key in &cases {
        let name = format!("{:?}", key.alg);
        let cfg = config_with(vec![issuer(dir.path(), &[&name], &[key])], None);
        let f = filter(&cfg);
        assert_eq!(outcome(&f, &key.sign(&claims(json!({}))).expect("sign")), "ok", "{name}");
    }
    for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
        let name = format!("{alg:?}");
        let key = SigningKey::secret(SECRET.as_bytes(), alg, "hs").expect("hs");
        let mut i = issuer(dir.path(), &[&name], &[]);
        i.keys = vec![StaticKeyConfig { secret: Some(SECRET.to_owned()), ..Default::default() }];
        let f = filter(&config_with(vec![i], None));
        assert_eq!(outcome(&f, &key.sign(&claims(json!({}))).expect("sign")), "ok", "{name}");
        let wrong = SigningKey::secret(b"another-secret-of-at-least-32-bytes!!", alg, "hs").expect("hs");
        assert_eq!(outcome(&f, &wrong.sign(&claims(json!({}))).expect("sign")), "invalid signature");
    }
}

#[test]
fn claim_checks_refuse_each_kind_of_bad_token() {
    let dir = tempfile::tempdir().expect("tmp");
    let key = rsa_a();
    let f = filter(&config_with(vec![issuer(dir.path(), &["RS256"], &[&key])], None));
    let sign = |extra: Value| key.sign(&claims(extra)).expect("sign");
    assert_eq!(outcome(&f, &sign(json!({}))), "ok");
    assert_eq!(outcome(&f, &sign(json!({ "exp": now() - 120 }))), "token expired");
    assert_eq!(outcome(&f, &sign(json!({ "exp": now() - 2 }))), "ok", "within the 5 s leeway");
    assert_eq!(outcome(&f, &sign(json!({ "nbf": now() + 120 }))), "token not yet valid");
    assert_eq!(outcome(&f, &sign(json!({ "iss": "https://evil.example/" }))), "wrong issuer");
    assert_eq!(outcome(&f, &sign(json!({ "aud": "other" }))), "wrong audience");
    assert_eq!(outcome(&f, &sign(json!({ "aud": ["other", "api"] }))), "ok");
    assert_eq!(outcome(&f, &sign(json!({ "exp": null }))), "required claim missing");
    let other = SigningKey::rsa_pem(include_bytes!("../../testdata/rsa-b.pem"), Algorithm::RS256, "rsa-a")
        .expect("rsa b");
    assert_eq!(outcome(&f, &other.sign(&claims(json!({}))).expect("sign")), "invalid signature");
    // Tampered payload, original signature.
    let good = sign(json!({}));
    let parts: Vec<&str> = good.split('.').collect();
    let forged_payload = sign(json!({ "sub": "admin" }));
    let tampered =
        format!("{}.{}.{}", parts[0], forged_payload.split('.').nth(1).expect("payload"), parts[2]);
    assert_eq!(outcome(&f, &tampered), "invalid signature");
    assert_eq!(outcome(&f, "not-a-jwt"), "malformed token");
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
fn alg_none_and_rs_to_hs_confusion_are_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let key = rsa_a();
    // The issuer publishes its RSA public key as a PEM file too: the classic confusion attack
    // signs HS256 with those PEM bytes as the HMAC secret.
    let mut i = issuer(dir.path(), &["RS256"], &[&key]);
    let pub_pem = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/rsa-a.pub.pem");
    i.keys.push(StaticKeyConfig { pem_file: Some(pub_pem.display().to_string()), ..Default::default() });
    let f = filter(&config_with(vec![i], None));
    let pem = std::fs::read(&pub_pem).expect("pem");
    let hs = SigningKey::secret(&pem, Algorithm::HS256, "rsa-a").expect("hs");
    assert_eq!(outcome(&f, &hs.sign(&claims(json!({}))).expect("sign")), "token algorithm not accepted");
    // `alg: none` with an empty signature, and with the RSA signature kept.
    let payload = b64(claims(json!({})).to_string().as_bytes());
    for header in [r#"{"alg":"none","typ":"JWT"}"#, r#"{"alg":"None","kid":"rsa-a"}"#] {
        let token = format!("{}.{payload}.", b64(header.as_bytes()));
        assert_eq!(outcome(&f, &token), "malformed token", "{header}");
    }
    // An allowed family but an algorithm outside the allow-list (RS512 when only RS256 is allowed).
    let rs512 = rsa_a().with_alg(Algorithm::RS512);
    assert_eq!(outcome(&f, &rs512.sign(&claims(json!({}))).expect("sign")), "token algorithm not accepted");
    // A JWK that pins `alg` refuses the key for another algorithm of its family.
    let mut h = Header::new(Algorithm::PS256);
    h.kid = Some("rsa-a".to_owned());
    let f2 = filter(&config_with(vec![issuer(dir.path(), &["RS256", "PS256"], &[&key])], None));
    let ps = rsa_a().with_alg(Algorithm::PS256).sign_with(&h, &claims(json!({}))).expect("sign");
    assert_eq!(outcome(&f2, &ps), "unknown signing key");
}

#[test]
fn cache_hits_skip_verification_and_respect_exp() {
    let dir = tempfile::tempdir().expect("tmp");
    let key = SigningKey::generate_es256("ec").expect("ec");
    let f = filter(&config_with(vec![issuer(dir.path(), &["ES256"], &[&key])], None));
    let token = key.sign(&claims(json!({}))).expect("sign");
    for _ in 0..3 {
        assert_eq!(outcome(&f, &token), "ok");
    }
    let s = f.cache_stats();
    assert_eq!((s.hits, s.misses, s.len), (2, 1, 1));
    // A token expiring now is never served from the cache past its exp.
    let short = key.sign(&claims(json!({ "exp": now() + 1 }))).expect("sign");
    assert_eq!(outcome(&f, &short), "ok");
    let c = &f.cache;
    let get = |t: &str, at: u64| c.get(c.key(t.as_bytes()), t.as_bytes(), at);
    assert!(get(&short, now() + 2).is_none(), "entry outlives exp");
    assert!(get(&token, now() + 2).is_some());
    // A token that shares the cached one's key (same length and tail: the signature) but not
    // its bytes is never answered from the cache.
    let mut forged = token.clone().into_bytes();
    forged[10] ^= 1;
    assert_eq!(c.key(&forged), c.key(token.as_bytes()));
    assert!(c.get(c.key(&forged), &forged, now() + 2).is_none(), "a forged token hit the cache");
    assert!(get(&token, now() + 301).is_none(), "entry outlives cache_ttl");
}

#[test]
fn identity_is_handed_off_and_spoofed_headers_are_removed() {
    let dir = tempfile::tempdir().expect("tmp");
    let key = rsa_a();
    let mut cfg = config_with(vec![issuer(dir.path(), &["RS256"], &[&key])], None);
    cfg.auth.identity_headers.insert("x-tenant-id".to_owned(), "claim:tenant".to_owned());
    cfg.auth.strip_headers.push("x-internal-user".to_owned());
    let f = filter(&cfg);
    let token = key.sign(&claims(json!({ "tenant": "acme", "tier": "gold" }))).expect("sign");
    let auth = bearer(&token);
    let spoof = [
        ("authorization", auth.as_str()),
        ("X-User-Id", "admin"),
        ("x-consumer", "admin"),
        ("X-Tenant-Id", "other"),
        ("x-internal-user", "root"),
    ];
    let (flow, (req, c)) = run(&f, 0, &spoof);
    assert!(matches!(flow, Flow::Continue));
    assert_eq!(values(&req.headers, "x-user-id"), vec!["user-7"]);
    assert_eq!(values(&req.headers, "x-consumer"), vec!["user-7"]);
    assert_eq!(values(&req.headers, "x-auth-scopes"), vec!["read write"]);
    assert_eq!(values(&req.headers, "x-tenant-id"), vec!["acme"]);
    assert!(values(&req.headers, "x-internal-user").is_empty());
    assert!(values(&req.headers, "authorization").is_empty(), "credential stripped");
    assert_eq!(c.consumer.as_deref(), Some(&b"user-7"[..]));
    assert_eq!(c.tier.as_deref(), Some("gold"));
    assert!(c.identity.as_ref().is_some_and(|i| i.has_scope("write")));

    // A route with auth = "none" still loses spoofed identity headers, and gets no identity.
    let (flow, (req, c)) = run(&f, 1, &spoof[1..]);
    assert!(matches!(flow, Flow::Continue));
    assert!(values(&req.headers, "x-user-id").is_empty() && values(&req.headers, "x-consumer").is_empty());
    assert!(c.identity.is_none());
    // Optional: anonymous passes, a bad token does not.
    assert!(matches!(run(&f, 2, &[]).0, Flow::Continue));
    assert!(matches!(run(&f, 2, &[("authorization", "Bearer x.y.z")]).0, Flow::Respond(_)));
    // Required without a credential: 401 with a Bearer challenge.
    match run(&f, 0, &[]).0 {
        Flow::Respond(r) => {
            assert_eq!((r.status, r.code), (401, "unauthorized"));
            assert_eq!(values(&r.headers, "www-authenticate"), vec!["Bearer realm=\"portcullis\""]);
        }
        Flow::Continue => panic!("anonymous request passed a required route"),
    }
    let rejected: Vec<_> = f.rejections().into_iter().filter(|(_, n)| *n > 0).collect();
    assert_eq!(rejected, vec![("missing", 1), ("malformed", 1)]);
}

#[test]
fn cookie_and_query_sources_are_read_and_stripped() {
    let dir = tempfile::tempdir().expect("tmp");
    let key = SigningKey::generate_ed25519("ed").expect("ed");
    let mut i = issuer(dir.path(), &["EdDSA"], &[&key]);
    i.token_from = vec![
        TokenSource { cookie: Some("session".to_owned()), ..Default::default() },
        TokenSource { query: Some("access_token".to_owned()), ..Default::default() },
    ];
    let f = filter(&config_with(vec![i], None));
    let token = key.sign(&claims(json!({}))).expect("sign");
    let cookie = format!("theme=dark; session={token}; lang=en");
    let (flow, (req, _)) = run(&f, 0, &[("cookie", &cookie)]);
    assert!(matches!(flow, Flow::Continue));
    assert_eq!(values(&req.headers, "cookie"), vec!["theme=dark; lang=en"]);

    let mut req = request("/", None, &[]);
    req.query = Some(bytes::Bytes::from(format!("a=1&access_token={token}&b=2")));
    let mut c = cx("10.0.0.1:1");
    c.route = Some(0);
    assert!(matches!(block_on(f.on_request(&mut req, &mut c)), Flow::Continue));
    assert_eq!(req.query.as_deref(), Some(&b"a=1&b=2"[..]));
    // A bearer header is not a source for this issuer.
    assert!(matches!(run(&f, 0, &[("authorization", &bearer(&token))]).0, Flow::Respond(_)));
}

fn sha256_hex(key: &str) -> String {
    token_hash(key.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn api_keys_inline_and_from_a_reloaded_file() {
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("keys.toml");
    let entry = |key: &str, consumer: &str| {
        format!(
            "[[keys]]\nsha256 = \"{}\"\nconsumer = \"{consumer}\"\ntier = \"gold\"\nscopes = [\"read\"]\n",
            sha256_hex(key)
        )
    };
    std::fs::write(&file, entry("file-key-1", "from-file")).expect("write");
    let keys = ApiKeysConfig {
        from: vec![
            TokenSource { header: Some("x-api-key".to_owned()), ..Default::default() },
            TokenSource {
                header: Some("authorization".to_owned()),
                scheme: Some("ApiKey".to_owned()),
                ..Default::default()
            },
        ],
        keys: vec![ApiKeyEntry {
            sha256: sha256_hex("inline-key"),
            consumer: "acme".to_owned(),
            tier: None,
            scopes: vec![],
            roles: vec!["admin".to_owned()],
        }],
        keys_file: Some(file.display().to_string()),
        watch_interval: Dur(Duration::from_millis(50)),
    };
    let f = filter(&config_with(vec![], Some(keys)));
    let consumer = |headers: &[(&str, &str)]| match run(&f, 0, headers) {
        (Flow::Continue, (req, c)) => {
            assert!(values(&req.headers, "x-api-key").is_empty(), "key stripped");
            c.consumer.map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
        }
        (Flow::Respond(r), _) => format!("{} {}", r.status, r.code),
    };
    assert_eq!(consumer(&[("x-api-key", "inline-key")]), "acme");
    assert_eq!(consumer(&[("authorization", "ApiKey inline-key")]), "acme");
    assert_eq!(consumer(&[("x-api-key", "file-key-1")]), "from-file");
    assert_eq!(consumer(&[("x-api-key", "nope")]), "401 invalid_api_key");
    assert_eq!(consumer(&[]), "401 unauthorized");

    // Replace the file: the new key works within a few watch intervals, the old one stops.
    std::fs::write(&file, entry("file-key-2", "rotated")).expect("rewrite");
    let deadline = Instant::now() + Duration::from_secs(20);
    while consumer(&[("x-api-key", "file-key-2")]) != "rotated" {
        assert!(Instant::now() < deadline, "keys file not reloaded");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(consumer(&[("x-api-key", "file-key-1")]), "401 invalid_api_key");
    // A broken file keeps the last good keys.
    std::fs::write(&file, "[[keys]]\nsha256 = \"zz\"\n").expect("break");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(consumer(&[("x-api-key", "file-key-2")]), "rotated");
}

#[test]
fn two_issuers_on_one_source_are_told_apart_by_iss() {
    let dir = tempfile::tempdir().expect("tmp");
    let a = rsa_a();
    let b = SigningKey::generate_es256("ec").expect("ec");
    let ia = issuer(dir.path(), &["RS256"], &[&a]);
    let mut ib = issuer(dir.path(), &["ES256"], &[&b]);
    ib.name = "partner".to_owned();
    ib.issuer = "https://partner.example/".to_owned();
    let f = filter(&config_with(vec![ia, ib], None));
    assert_eq!(outcome(&f, &a.sign(&claims(json!({}))).expect("sign")), "ok");
    let partner = b.sign(&claims(json!({ "iss": "https://partner.example/" }))).expect("sign");
    let (flow, (_, c)) = run(&f, 0, &[("authorization", &bearer(&partner))]);
    assert!(matches!(flow, Flow::Continue));
    assert_eq!(c.identity.map(|i| i.source.to_string()), Some("partner".to_owned()));
    // Partner key, main issuer's iss: verified against main's keys only, so refused.
    assert_eq!(outcome(&f, &b.sign(&claims(json!({}))).expect("sign")), "token algorithm not accepted");
    assert_eq!(outcome(&f, &a.sign(&claims(json!({ "iss": "https://x/" }))).expect("sign")), "wrong issuer");
}

#[test]
fn no_matched_route_is_left_to_the_engine() {
    let dir = tempfile::tempdir().expect("tmp");
    let key = rsa_a();
    let f = filter(&config_with(vec![issuer(dir.path(), &["RS256"], &[&key])], None));
    let mut req = request("/nowhere", None, &[("x-user-id", "admin")]);
    let mut c = cx("10.0.0.1:1");
    assert!(matches!(block_on(f.on_request(&mut req, &mut c)), Flow::Continue), "the engine answers 404");
    assert!(values(&req.headers, "x-user-id").is_empty(), "identity headers are still removed");
}
