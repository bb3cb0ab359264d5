//! Which crypto backend should jsonwebtoken use? A timed loop verifying the same signed token
//! through each available provider: the ring provider the gateway installs (`portcullis-policies`)
//! and jsonwebtoken's `rust_crypto` provider (pure Rust: `rsa`, `p256`, `ed25519-dalek`, `hmac`).
//! `aws_lc_rs` is not measured: it needs cmake and doubles the build, and rustls here uses ring.
//!
//! Run: `cargo run --release -p portcullis-bench --features jwt-backends --bin jwt-backends`
//!
//! Owns: this measurement only. Must not: be built by default (the feature pulls `rust_crypto`).

use std::hint::black_box;
use std::time::{Duration, Instant};

use jsonwebtoken::crypto::CryptoProvider;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey};
use portcullis_policies::authn::ring_provider::RING_PROVIDER;
use portcullis_policies::authn::signing::SigningKey;

fn b64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'-' => 62,
            _ => 63,
        }
    };
    let mut out = Vec::new();
    for chunk in s.as_bytes().chunks(4) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, &c)| acc | (val(c) << (18 - 6 * i)));
        for i in 0..chunk.len().saturating_sub(1) {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    out
}

/// Mean microseconds per call of `f`, over at least `budget`.
fn time(budget: Duration, f: impl Fn() -> bool) -> f64 {
    for _ in 0..50 {
        assert!(f(), "verification failed");
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget {
        for _ in 0..50 {
            black_box(f());
        }
        n += 50;
    }
    start.elapsed().as_secs_f64() * 1e6 / n as f64
}

fn main() -> anyhow::Result<()> {
    let rust_crypto: &CryptoProvider = &jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER;
    let secret = b"bench-secret-bench-secret-bench-secret!!";
    let rsa_pem = include_bytes!("../../policies/testdata/rsa-a.pem");
    let keys = [
        SigningKey::rsa_pem(rsa_pem, Algorithm::RS256, "k").map_err(anyhow::Error::msg)?,
        SigningKey::rsa_pem(rsa_pem, Algorithm::PS256, "k").map_err(anyhow::Error::msg)?,
        SigningKey::generate_es256("k").map_err(anyhow::Error::msg)?,
        SigningKey::generate_ed25519("k").map_err(anyhow::Error::msg)?,
        SigningKey::secret(secret, Algorithm::HS256, "k").map_err(anyhow::Error::msg)?,
    ];
    let claims =
        serde_json::json!({ "iss": "https://idp/", "aud": "api", "sub": "u", "exp": 4_000_000_000u64 });
    println!("{:<6} {:>12} {:>16} {:>8}", "alg", "ring us/op", "rust_crypto us/op", "ratio");
    for key in &keys {
        let token = key.sign(&claims).map_err(anyhow::Error::msg)?;
        let (message, sig) = token.rsplit_once('.').ok_or_else(|| anyhow::anyhow!("token"))?;
        let sig = b64_decode(sig);
        let dkey = if key.alg == Algorithm::HS256 {
            DecodingKey::from_secret(secret)?
        } else {
            let jwk: Jwk = serde_json::from_value(key.public_jwk().map_err(anyhow::Error::msg)?)?;
            DecodingKey::from_jwk(&jwk)?
        };
        let budget = Duration::from_secs(2);
        let mut us = Vec::new();
        for provider in [&RING_PROVIDER, rust_crypto] {
            // Like jsonwebtoken::decode: build the verifier for (alg, key), then verify.
            us.push(time(budget, || match (provider.verifier_factory)(&key.alg, &dkey) {
                Ok(v) => v.verify(message.as_bytes(), &sig).is_ok(),
                Err(_) => false,
            }));
        }
        println!("{:<6} {:>12.2} {:>16.2} {:>8.2}", format!("{:?}", key.alg), us[0], us[1], us[1] / us[0]);
    }
    Ok(())
}
