//! Token signing keys for the demo, the tests and the benches: generate an ES256 or Ed25519 key
//! (ring), load an RSA key from PEM, sign claims, and publish the public half as a JWKS.
//!
//! Owns: key generation and JWKS rendering. Must not: be used on the request path (the gateway
//! only verifies).

use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair};

/// A private key able to sign tokens, with its `kid`.
pub struct SigningKey {
    /// Signing algorithm.
    pub alg: Algorithm,
    /// Key id put in token headers and in the JWK.
    pub kid: String,
    key: EncodingKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("alg", &self.alg).field("kid", &self.kid).finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A fresh ES256 (P-256) key.
    pub fn generate_es256(kid: &str) -> Result<SigningKey, String> {
        super::ring_provider::install();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .map_err(|_| "cannot generate an EC key".to_owned())?;
        Ok(SigningKey {
            alg: Algorithm::ES256,
            kid: kid.to_owned(),
            key: EncodingKey::from_ec_der(pkcs8.as_ref()),
        })
    }

    /// A fresh Ed25519 key.
    pub fn generate_ed25519(kid: &str) -> Result<SigningKey, String> {
        super::ring_provider::install();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|_| "cannot generate an Ed25519 key".to_owned())?;
        // ring writes PKCS#8 v2 (seed and public key); jsonwebtoken's JWK export wants the 48-byte
        // v1 form: the fixed v1 prefix followed by the 32-byte seed (bytes 16..48 of v2).
        const V1_PREFIX: [u8; 16] =
            [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];
        let seed = pkcs8.as_ref().get(16..48).ok_or_else(|| "unexpected PKCS#8 layout".to_owned())?;
        let v1: Vec<u8> = V1_PREFIX.iter().chain(seed).copied().collect();
        Ok(SigningKey { alg: Algorithm::EdDSA, kid: kid.to_owned(), key: EncodingKey::from_ed_der(&v1) })
    }

    /// An RSA key from a PEM private key, for `alg` (RS* or PS*).
    pub fn rsa_pem(pem: &[u8], alg: Algorithm, kid: &str) -> Result<SigningKey, String> {
        super::ring_provider::install();
        let key = EncodingKey::from_rsa_pem(pem).map_err(|e| e.to_string())?;
        Ok(SigningKey { alg, kid: kid.to_owned(), key })
    }

    /// A shared secret for `alg` (HS*).
    pub fn secret(secret: &[u8], alg: Algorithm, kid: &str) -> Result<SigningKey, String> {
        super::ring_provider::install();
        let key = EncodingKey::from_secret(secret).map_err(|e| e.to_string())?;
        Ok(SigningKey { alg, kid: kid.to_owned(), key })
    }

    /// The key with another algorithm of the same family (e.g. RS512 from an RS256 key).
    pub fn with_alg(mut self, alg: Algorithm) -> SigningKey {
        self.alg = alg;
        self
    }

    /// Signs `claims` with a header naming this key's `alg` and `kid`.
    pub fn sign(&self, claims: &serde_json::Value) -> Result<String, String> {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.key).map_err(|e| e.to_string())
    }

    /// Signs with an explicit header (tests forge odd headers with it).
    pub fn sign_with(&self, header: &Header, claims: &serde_json::Value) -> Result<String, String> {
        jsonwebtoken::encode(header, claims, &self.key).map_err(|e| e.to_string())
    }

    /// The public JWK (with `kid`, `alg` and `use: sig`).
    pub fn public_jwk(&self) -> Result<serde_json::Value, String> {
        let mut jwk = Jwk::from_encoding_key(&self.key, self.alg).map_err(|e| e.to_string())?;
        jwk.common.key_id = Some(self.kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        serde_json::to_value(&jwk).map_err(|e| e.to_string())
    }

    /// A JWKS document of these keys' public halves.
    pub fn jwks(keys: &[&SigningKey]) -> Result<String, String> {
        let list = keys.iter().map(|k| k.public_jwk()).collect::<Result<Vec<_>, _>>()?;
        Ok(serde_json::json!({ "keys": list }).to_string())
    }
}
