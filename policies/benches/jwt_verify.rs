//! JWT verification cost: the authn filter's whole request phase on a verification-cache hit,
//! versus an uncached verification (RS256, ES256, EdDSA, HS256) through the ring provider, and
//! the cache key of a token alone (next to a SHA-256 of the whole token, the former key).
//!
//! Owns: the bench keys, tokens and configs. Must not: touch the network (static keys only).

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::Algorithm;
use portcullis_core::config::{
    Config, Dur, JwksRefreshConfig, JwtIssuerConfig, RouteConfig, StaticKeyConfig, TokenSource,
};
use portcullis_core::pipeline::{Cx, Filter, Flow, Headers, Method, RequestHead, Version};
use portcullis_policies::authn::signing::SigningKey;
use portcullis_policies::authn::{JwtIssuer, Verdict, VerifiedCache, token_hash};
use portcullis_policies::{AuthService, AuthnFilter, ChainEnv};

const ISS: &str = "https://idp.bench/";
const SECRET: &str = "bench-secret-bench-secret-bench-secret!!";

fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

fn issuer_cfg(dir: &std::path::Path, alg: Algorithm, key: &SigningKey) -> JwtIssuerConfig {
    let keys = if alg == Algorithm::HS256 {
        vec![StaticKeyConfig { secret: Some(SECRET.to_owned()), ..Default::default() }]
    } else {
        let path = dir.join(format!("{alg:?}.json"));
        std::fs::write(&path, SigningKey::jwks(&[key]).expect("jwks")).expect("write jwks");
        vec![StaticKeyConfig { jwk_file: Some(path.display().to_string()), ..Default::default() }]
    };
    JwtIssuerConfig {
        name: "bench".to_owned(),
        issuer: ISS.to_owned(),
        audiences: vec!["api".to_owned()],
        algorithms: vec![format!("{alg:?}")],
        leeway: Dur::secs(30),
        required_claims: vec![],
        token_from: vec![TokenSource::bearer()],
        jwks_uri: None,
        jwks_ca_file: None,
        jwks_refresh: JwksRefreshConfig::default(),
        keys,
        scopes_claim: "scope".to_owned(),
        roles_claim: "roles".to_owned(),
        consumer_claim: "sub".to_owned(),
        tier_claim: Some("plan".to_owned()),
    }
}

fn key_for(alg: Algorithm) -> SigningKey {
    match alg {
        Algorithm::RS256 => {
            let pem = include_bytes!("../testdata/rsa-a.pem");
            SigningKey::rsa_pem(pem, alg, "k").expect("rsa")
        }
        Algorithm::ES256 => SigningKey::generate_es256("k").expect("ec"),
        Algorithm::EdDSA => SigningKey::generate_ed25519("k").expect("ed"),
        _ => SigningKey::secret(SECRET.as_bytes(), alg, "k").expect("hs"),
    }
}

fn token(key: &SigningKey) -> String {
    let exp =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() + 3600;
    let claims = serde_json::json!({
        "iss": ISS, "aud": "api", "sub": "user-42", "exp": exp, "scope": "read write profile",
        "plan": "gold", "tenant": "acme", "email": "user42@example.com", "name": "A Bench User"
    });
    key.sign(&claims).expect("sign")
}

fn request(auth: &Bytes) -> RequestHead {
    let mut headers = Headers::with_capacity(8);
    headers.append("host", "api.bench");
    headers.append("user-agent", "bench/1.0");
    headers.append("accept", "*/*");
    headers.append("authorization", auth.clone());
    RequestHead {
        method: Method::Get,
        path: Bytes::from_static(b"/api/items"),
        query: None,
        version: Version::Http11,
        authority: Some(Bytes::from_static(b"api.bench")),
        headers,
    }
}

fn route() -> RouteConfig {
    let toml = "upstream = \"app\"\nprefix = \"/\"\n";
    toml::from_str(toml).expect("route")
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tmp");
    let service = AuthService::new();
    for alg in [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA, Algorithm::HS256] {
        let key = key_for(alg);
        let cfg = issuer_cfg(dir.path(), alg, &key);
        let issuer = JwtIssuer::build(&cfg, &[], &service).expect("issuer");
        let tok = token(&key);
        assert!(matches!(issuer.verify(&tok), Verdict::Valid(_)), "{alg:?} token verifies");
        c.bench_function(&format!("jwt_uncached_{alg:?}"), |b| {
            b.iter(|| black_box(issuer.verify(black_box(&tok))))
        });
    }

    // The whole authn request phase, cache hit: hash, LRU lookup, identity into cx, credential
    // stripped, identity headers added.
    let key = key_for(Algorithm::ES256);
    let mut cfg = Config::default();
    cfg.auth.jwt = vec![issuer_cfg(dir.path(), Algorithm::ES256, &key)];
    cfg.routes = vec![route()];
    let filter = AuthnFilter::build(&cfg, &ChainEnv::new()).expect("build").expect("enabled");
    let auth = Bytes::from(format!("Bearer {}", token(&key)));
    let template = request(&auth);
    let peer = "10.0.0.1:1000".parse().expect("addr");
    let run = |req: &mut RequestHead| {
        let mut cx = Cx::new(peer, false, Version::Http11);
        cx.route = Some(0);
        let flow = block_on(filter.on_request(req, &mut cx));
        assert!(matches!(flow, Flow::Continue));
        cx
    };
    run(&mut template.clone());
    c.bench_function("authn_filter_cache_hit", |b| {
        b.iter_batched_ref(|| template.clone(), |req| black_box(run(req)), criterion::BatchSize::SmallInput)
    });
    let s = filter.cache_stats();
    assert!(s.hits > s.misses, "the cache answered: {s:?}");
    c.bench_function("authn_filter_cache_miss_ES256", |b| {
        b.iter_batched_ref(
            || {
                // A fresh token each time (distinct jti), so the cache cannot answer.
                let exp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
                let t = key
                    .sign(&serde_json::json!({ "iss": ISS, "aud": "api", "sub": "u", "exp": exp + 3600, "jti": fastrand::u64(..) }))
                    .expect("sign");
                request(&Bytes::from(format!("Bearer {t}")))
            },
            |req| black_box(run(req)),
            criterion::BatchSize::SmallInput,
        )
    });
    let tok = token(&key);
    // The verification cache's key (keyed SipHash of length and tail) versus SHA-256 of the
    // whole token (the previous key; still what API keys are stored as).
    let cache = VerifiedCache::new(16, 60);
    c.bench_function("cache_key_token", |b| b.iter(|| black_box(cache.key(black_box(tok.as_bytes())))));
    c.bench_function("sha256_token", |b| b.iter(|| black_box(token_hash(black_box(tok.as_bytes())))));
}

criterion_group!(benches, bench);
criterion_main!(benches);
