//! `JwtIssuer`: one `[[auth.jwt]]` issuer compiled for a shard: its validation rules per key
//! family, its static keys, its shared JWKS key set, and the claims-to-identity mapping.
//!
//! Owns: verifying one token against this issuer (signature, `alg` allow-list, `exp`, `nbf`,
//! `iss`, `aud`, required claims) and building the `Identity`. Must not: cache results (the
//! filter's cache does) or block (an unknown `kid` is reported, the filter waits for the re-fetch).

use std::collections::HashSet;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::mpsc::Sender;

use bytes::Bytes;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, AlgorithmFamily, Validation};
use portcullis_core::config::JwtIssuerConfig;
use portcullis_core::pipeline::Identity;
use serde_json::{Map, Value};

use super::keys::KeySet;
use super::service::{AuthService, Msg, RemoteKeys};

/// Why a token was refused (the text goes to `error_description`; it never echoes the token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwtError {
    /// Not a JWT, or a header/claims part that does not parse (includes `alg: none`).
    Malformed,
    /// `alg` outside the issuer's allow-list.
    Algorithm,
    /// No key with the token's `kid` (after one re-fetch).
    UnknownKey,
    /// The signature does not verify.
    Signature,
    /// `exp` passed.
    Expired,
    /// `nbf` in the future.
    NotYetValid,
    /// Wrong `iss`.
    Issuer,
    /// No accepted `aud`.
    Audience,
    /// A required claim is missing or malformed.
    MissingClaim,
    /// The token's `jti` or subject is on the revocation list.
    Revoked,
}

impl JwtError {
    /// Text for `WWW-Authenticate: ... error_description="..."` and the JSON message.
    pub fn describe(&self) -> &'static str {
        match self {
            JwtError::Malformed => "malformed token",
            JwtError::Algorithm => "token algorithm not accepted",
            JwtError::UnknownKey => "unknown signing key",
            JwtError::Signature => "invalid signature",
            JwtError::Expired => "token expired",
            JwtError::NotYetValid => "token not yet valid",
            JwtError::Issuer => "wrong issuer",
            JwtError::Audience => "wrong audience",
            JwtError::MissingClaim => "required claim missing",
            JwtError::Revoked => "token revoked",
        }
    }

    fn from_jwt(e: &jsonwebtoken::errors::Error) -> JwtError {
        match e.kind() {
            ErrorKind::InvalidSignature => JwtError::Signature,
            ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName | ErrorKind::MissingAlgorithm => {
                JwtError::Algorithm
            }
            ErrorKind::ExpiredSignature => JwtError::Expired,
            ErrorKind::ImmatureSignature => JwtError::NotYetValid,
            ErrorKind::InvalidIssuer => JwtError::Issuer,
            ErrorKind::InvalidAudience => JwtError::Audience,
            ErrorKind::MissingRequiredClaim(_) | ErrorKind::InvalidClaimFormat(_) => JwtError::MissingClaim,
            ErrorKind::InvalidKeyFormat | ErrorKind::InvalidRsaKey(_) | ErrorKind::InvalidEcdsaKey => {
                JwtError::Signature
            }
            _ => JwtError::Malformed,
        }
    }
}

/// Outcome of one verification attempt against the keys known now.
#[derive(Debug)]
pub enum Verdict {
    /// Valid; the identity.
    Valid(Identity),
    /// Refused.
    Invalid(JwtError),
    /// No key has this `kid` yet: worth one JWKS re-fetch.
    UnknownKid,
}

/// One compiled issuer.
#[derive(Debug)]
pub struct JwtIssuer {
    /// Config name (identity `source`).
    pub name: Rc<str>,
    /// Expected `iss`.
    pub issuer: String,
    allowed: Vec<Algorithm>,
    /// Validation per key family, algorithms restricted to the allow-list within the family.
    validations: Vec<(AlgorithmFamily, Validation)>,
    required: Vec<String>,
    static_keys: KeySet,
    /// The JWKS key set and the channel to ask for a re-fetch.
    pub remote: Option<(Arc<RemoteKeys>, Sender<Msg>)>,
    scopes_claim: String,
    roles_claim: String,
    consumer_claim: String,
    tier_claim: Option<String>,
    /// Claims copied into the identity (authz predicates, identity headers).
    keep_claims: Vec<String>,
}

const SPEC_CLAIMS: [&str; 5] = ["exp", "nbf", "sub", "iss", "aud"];

impl JwtIssuer {
    /// Compiles `cfg`; static keys are read now, the JWKS (if any) is registered with `service`.
    pub fn build(
        cfg: &JwtIssuerConfig,
        keep_claims: &[String],
        service: &AuthService,
    ) -> Result<JwtIssuer, String> {
        let allowed: Vec<Algorithm> = cfg
            .algorithms
            .iter()
            .map(|a| a.parse::<Algorithm>().map_err(|_| format!("unsupported algorithm {a:?}")))
            .collect::<Result<_, _>>()?;
        let mut families: Vec<AlgorithmFamily> = Vec::new();
        for a in &allowed {
            if !families.contains(&a.family()) {
                families.push(a.family());
            }
        }
        let mut spec: HashSet<String> = HashSet::from(["exp".to_owned()]);
        spec.extend(cfg.required_claims.iter().filter(|c| SPEC_CLAIMS.contains(&c.as_str())).cloned());
        let validations = families
            .iter()
            .map(|&f| {
                let mut v = Validation::new(
                    allowed.iter().copied().find(|a| a.family() == f).unwrap_or(Algorithm::RS256),
                );
                v.algorithms = allowed.iter().copied().filter(|a| a.family() == f).collect();
                v.leeway = cfg.leeway.0.as_secs();
                v.validate_nbf = true;
                v.set_issuer(&[cfg.issuer.as_str()]);
                if cfg.audiences.is_empty() {
                    v.validate_aud = false;
                } else {
                    v.set_audience(&cfg.audiences);
                }
                v.required_spec_claims = spec.clone();
                (f, v)
            })
            .collect();
        let mut static_keys = KeySet::default();
        for (i, k) in cfg.keys.iter().enumerate() {
            let at = |e: String| format!("keys[{i}]: {e}");
            let kid = k.kid.as_deref();
            let set = if let Some(p) = &k.pem_file {
                KeySet::pem_file(std::path::Path::new(p), kid, &families).map_err(at)?
            } else if let Some(p) = &k.jwk_file {
                KeySet::jwk_file(std::path::Path::new(p), kid).map_err(at)?
            } else if let Some(s) = &k.secret {
                KeySet::secret(s.as_bytes(), kid).map_err(at)?
            } else if let Some(var) = &k.secret_env {
                let s =
                    std::env::var(var).map_err(|_| at(format!("environment variable {var} is not set")))?;
                KeySet::secret(s.as_bytes(), kid).map_err(at)?
            } else {
                return Err(at("no key source".to_owned()));
            };
            static_keys.keys.extend(set.keys);
        }
        let remote = match &cfg.jwks_uri {
            Some(uri) => Some(service.remote(uri, cfg.jwks_ca_file.as_deref(), &cfg.jwks_refresh)?),
            None => None,
        };
        Ok(JwtIssuer {
            name: Rc::from(cfg.name.as_str()),
            issuer: cfg.issuer.clone(),
            allowed,
            validations,
            required: cfg
                .required_claims
                .iter()
                .filter(|c| !SPEC_CLAIMS.contains(&c.as_str()))
                .cloned()
                .collect(),
            static_keys,
            remote,
            scopes_claim: cfg.scopes_claim.clone(),
            roles_claim: cfg.roles_claim.clone(),
            consumer_claim: cfg.consumer_claim.clone(),
            tier_claim: cfg.tier_claim.clone(),
            keep_claims: keep_claims.to_vec(),
        })
    }

    /// Verifies `token` with the keys known now.
    pub fn verify(&self, token: &str) -> Verdict {
        let header = match jsonwebtoken::decode_header(token) {
            Ok(h) => h,
            Err(_) => return Verdict::Invalid(JwtError::Malformed),
        };
        if !self.allowed.contains(&header.alg) {
            return Verdict::Invalid(JwtError::Algorithm);
        }
        let Some((_, validation)) = self.validations.iter().find(|(f, _)| *f == header.alg.family()) else {
            return Verdict::Invalid(JwtError::Algorithm);
        };
        let kid = header.kid.as_deref();
        let remote = self.remote.as_ref().map(|(r, _)| r.current());
        let mut tried = false;
        let mut last = JwtError::UnknownKey;
        let keys = self
            .static_keys
            .candidates(header.alg, kid)
            .chain(remote.iter().flat_map(|set| set.candidates(header.alg, kid)));
        for key in keys {
            tried = true;
            match jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, validation) {
                Ok(data) => return self.identity(data.claims),
                Err(e) => {
                    last = JwtError::from_jwt(&e);
                    if last != JwtError::Signature {
                        // Claims were checked after the signature verified: this key was the one.
                        return Verdict::Invalid(last);
                    }
                }
            }
        }
        if !tried && self.remote.is_some() {
            let known = kid.is_some_and(|k| {
                remote.as_ref().is_some_and(|s| s.has_kid(k)) || self.static_keys.has_kid(k)
            });
            if !known {
                return Verdict::UnknownKid;
            }
        }
        Verdict::Invalid(last)
    }

    fn identity(&self, claims: Map<String, Value>) -> Verdict {
        for c in &self.required {
            if claims.get(c).is_none_or(Value::is_null) {
                return Verdict::Invalid(JwtError::MissingClaim);
            }
        }
        let text = |name: &str| claims.get(name).and_then(scalar);
        let subject = text("sub").map(|s| Bytes::from(s.into_bytes()));
        let consumer =
            text(&self.consumer_claim).map(|s| Bytes::from(s.into_bytes())).or_else(|| subject.clone());
        let tier = self.tier_claim.as_deref().and_then(text).map(|t| Rc::from(t.as_str()));
        let list = |name: &str, split: bool| -> Box<[Box<str>]> {
            claims.get(name).map(|v| flatten(v, split)).unwrap_or_default()
        };
        let kept = self
            .keep_claims
            .iter()
            .filter_map(|n| claims.get(n).map(|v| (Box::from(n.as_str()), flatten(v, false))))
            .collect();
        Verdict::Valid(Identity {
            source: Rc::clone(&self.name),
            consumer: consumer.unwrap_or_default(),
            subject,
            tier,
            scopes: list(&self.scopes_claim, true),
            roles: list(&self.roles_claim, false),
            claims: kept,
            expires_at: claims.get("exp").and_then(Value::as_u64).unwrap_or(0),
        })
    }
}

/// A scalar claim as text (strings as they are, numbers and booleans printed).
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A claim as a list of strings: an array gives its scalars; a string is one value, or with
/// `split` its space-separated words (the OAuth `scope` claim).
fn flatten(v: &Value, split: bool) -> Box<[Box<str>]> {
    match v {
        Value::String(s) if split => s.split_ascii_whitespace().map(Box::from).collect(),
        Value::Array(items) => items.iter().filter_map(scalar).map(String::into_boxed_str).collect(),
        other => scalar(other).map(String::into_boxed_str).into_iter().collect(),
    }
}

/// The unverified `iss` of a token (only to pick which issuer verifies it).
pub fn peek_issuer(token: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Iss {
        iss: Option<String>,
    }
    jsonwebtoken::dangerous::insecure_decode_claims::<Iss>(token).ok().and_then(|c| c.iss)
}
