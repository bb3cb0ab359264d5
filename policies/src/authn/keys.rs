//! Verification key sets: static keys from the config (PEM files, JWK set files, shared
//! secrets) and key sets parsed from a JWKS document.
//!
//! Owns: turning key material into `DecodingKey`s tagged with their `kid` and the algorithms
//! they may verify. Must not: fetch anything or decide which issuer a key belongs to.

use std::path::Path;

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};

/// One verification key.
#[derive(Clone, Debug)]
pub struct VerifyKey {
    /// Key id; `None` matches a token with any (or no) `kid`.
    pub kid: Option<String>,
    /// The key.
    pub key: DecodingKey,
    /// The algorithm the JWK pins (`alg` member), if any.
    pub alg: Option<Algorithm>,
}

impl VerifyKey {
    /// True when this key may verify a token with header `alg` and `kid`.
    pub fn matches(&self, alg: Algorithm, kid: Option<&str>) -> bool {
        self.key.family() == alg.family()
            && self.alg.is_none_or(|a| a == alg)
            && match (&self.kid, kid) {
                (Some(mine), Some(theirs)) => mine == theirs,
                (None, _) => true,
                (Some(_), None) => true,
            }
    }
}

/// The keys of one issuer (or one JWKS fetch).
#[derive(Clone, Debug, Default)]
pub struct KeySet {
    /// Keys in document order.
    pub keys: Vec<VerifyKey>,
}

impl KeySet {
    /// Keys able to verify a token with header `alg` and `kid`.
    pub fn candidates<'a>(
        &'a self,
        alg: Algorithm,
        kid: Option<&'a str>,
    ) -> impl Iterator<Item = &'a VerifyKey> {
        self.keys.iter().filter(move |k| k.matches(alg, kid))
    }

    /// True when some key carries exactly this `kid`.
    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    /// Parses a JWKS document (`{"keys": [...]}`) or a single JWK. Keys of an unknown type or
    /// use (`use` other than `sig`) are skipped; an unusable document is an error.
    pub fn from_jwks(text: &str) -> Result<KeySet, String> {
        let doc: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let list = match doc.get("keys") {
            Some(serde_json::Value::Array(list)) => list.clone(),
            Some(_) => return Err("`keys` is not an array".to_owned()),
            None if doc.get("kty").is_some() => vec![doc],
            None => return Err("no `keys` array".to_owned()),
        };
        let mut out = KeySet::default();
        for item in list {
            if item.get("use").and_then(|u| u.as_str()).is_some_and(|u| u != "sig") {
                continue;
            }
            let Ok(jwk) = serde_json::from_value::<Jwk>(item) else { continue };
            let Ok(key) = DecodingKey::from_jwk(&jwk) else { continue };
            let alg = jwk.common.key_algorithm.and_then(|a| a.to_string().parse::<Algorithm>().ok());
            out.keys.push(VerifyKey { kid: jwk.common.key_id.clone(), key, alg });
        }
        Ok(out)
    }

    /// Reads a PEM public key (RSA, EC or Ed25519) for `families` (the issuer's allow-list).
    pub fn pem_file(path: &Path, kid: Option<&str>, families: &[AlgorithmFamily]) -> Result<KeySet, String> {
        let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let parsed = families.iter().find_map(|f| match f {
            AlgorithmFamily::Rsa => DecodingKey::from_rsa_pem(&pem).ok(),
            AlgorithmFamily::Ec => DecodingKey::from_ec_pem(&pem).ok(),
            AlgorithmFamily::Ed => DecodingKey::from_ed_pem(&pem).ok(),
            AlgorithmFamily::Hmac => None,
        });
        let key = parsed
            .ok_or_else(|| format!("{}: not a PEM public key of the issuer's algorithms", path.display()))?;
        Ok(KeySet { keys: vec![VerifyKey { kid: kid.map(str::to_owned), key, alg: None }] })
    }

    /// Reads a JWK set file (or a single JWK); `kid` (when given) overrides a single key's id.
    pub fn jwk_file(path: &Path, kid: Option<&str>) -> Result<KeySet, String> {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut set = KeySet::from_jwks(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        if set.keys.is_empty() {
            return Err(format!("{}: no usable signing key", path.display()));
        }
        if let (Some(kid), [only]) = (kid, set.keys.as_mut_slice()) {
            only.kid = Some(kid.to_owned());
        }
        Ok(set)
    }

    /// A shared HMAC secret.
    pub fn secret(secret: &[u8], kid: Option<&str>) -> Result<KeySet, String> {
        let key = DecodingKey::from_secret(secret).map_err(|e| format!("unusable secret: {e}"))?;
        Ok(KeySet { keys: vec![VerifyKey { kid: kid.map(str::to_owned), key, alg: None }] })
    }
}
