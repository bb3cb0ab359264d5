//! A `jsonwebtoken` crypto provider backed by `ring`, the library rustls already uses, so the
//! binary carries one crypto stack (see `bench/src/jwt_backends.rs` for why not `rust_crypto`).
//!
//! Owns: signature verification (and signing, for tests and the demo) for every JWS algorithm
//! jsonwebtoken knows. Must not: decide which algorithm a token may use (the issuer's allow-list
//! does, before a verifier is ever built).

use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{Error, ErrorKind, Result};
use jsonwebtoken::jwk::{EllipticCurve, ThumbprintHash};
use jsonwebtoken::signature::{self, Signer, Verifier};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind, EncodingKey};
use ring::rand::SystemRandom;
use ring::signature as sig;
use ring::{digest, hmac};

/// The ring-backed provider; [`install`] makes it the process default.
pub static RING_PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: new_signer,
    verifier_factory: new_verifier,
    key_utils: KeyUtils {
        rsa_pub_components_from_private_key: rsa_components_from_private_key,
        rsa_pub_components_from_public_key: rsa_components_from_public_key,
        ec_pub_components_from_private_key: ec_components_from_private_key,
        ed_pub_components_from_private_key,
        compute_digest,
    },
};

/// Installs [`RING_PROVIDER`] as jsonwebtoken's process default (idempotent; a provider someone
/// else installed first stays).
pub fn install() {
    let _ = RING_PROVIDER.install_default();
}

fn sig_err(_: ring::error::Unspecified) -> signature::Error {
    signature::Error::new()
}

fn family_check(have: AlgorithmFamily, want: AlgorithmFamily) -> Result<()> {
    if have == want { Ok(()) } else { Err(Error::from(ErrorKind::InvalidKeyFormat)) }
}

fn rsa_params(alg: Algorithm) -> &'static sig::RsaParameters {
    match alg {
        Algorithm::RS384 => &sig::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &sig::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &sig::RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &sig::RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &sig::RSA_PSS_2048_8192_SHA512,
        _ => &sig::RSA_PKCS1_2048_8192_SHA256,
    }
}

fn rsa_encoding(alg: Algorithm) -> &'static dyn sig::RsaEncoding {
    match alg {
        Algorithm::RS384 => &sig::RSA_PKCS1_SHA384,
        Algorithm::RS512 => &sig::RSA_PKCS1_SHA512,
        Algorithm::PS256 => &sig::RSA_PSS_SHA256,
        Algorithm::PS384 => &sig::RSA_PSS_SHA384,
        Algorithm::PS512 => &sig::RSA_PSS_SHA512,
        _ => &sig::RSA_PKCS1_SHA256,
    }
}

/// A verifier holding the key and the algorithm it was built for.
struct RingVerifier {
    alg: Algorithm,
    key: Key,
}

enum Key {
    Hmac(hmac::Key),
    Rsa(DecodingKey),
    /// EC (uncompressed point) or Ed25519 public key bytes.
    Raw(&'static dyn sig::VerificationAlgorithm, Vec<u8>),
}

impl Verifier<Vec<u8>> for RingVerifier {
    fn verify(&self, msg: &[u8], signature: &Vec<u8>) -> std::result::Result<(), signature::Error> {
        match &self.key {
            Key::Hmac(k) => hmac::verify(k, msg, signature).map_err(sig_err),
            Key::Rsa(k) => match k.kind() {
                DecodingKeyKind::SecretOrDer(der) => sig::UnparsedPublicKey::new(rsa_params(self.alg), der)
                    .verify(msg, signature)
                    .map_err(sig_err),
                DecodingKeyKind::RsaModulusExponent { n, e } => sig::RsaPublicKeyComponents { n, e }
                    .verify(rsa_params(self.alg), msg, signature)
                    .map_err(sig_err),
            },
            Key::Raw(alg, bytes) => {
                sig::UnparsedPublicKey::new(*alg, bytes).verify(msg, signature).map_err(sig_err)
            }
        }
    }
}

impl JwtVerifier for RingVerifier {
    fn algorithm(&self) -> Algorithm {
        self.alg
    }
}

fn new_verifier(alg: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>> {
    let alg = *alg;
    let k = match alg.family() {
        AlgorithmFamily::Hmac => {
            family_check(key.family(), AlgorithmFamily::Hmac)?;
            let h = match alg {
                Algorithm::HS384 => hmac::HMAC_SHA384,
                Algorithm::HS512 => hmac::HMAC_SHA512,
                _ => hmac::HMAC_SHA256,
            };
            Key::Hmac(hmac::Key::new(h, key.try_get_as_bytes()?))
        }
        AlgorithmFamily::Rsa => {
            family_check(key.family(), AlgorithmFamily::Rsa)?;
            Key::Rsa(key.clone())
        }
        AlgorithmFamily::Ec => {
            family_check(key.family(), AlgorithmFamily::Ec)?;
            let v: &'static dyn sig::VerificationAlgorithm = match alg {
                Algorithm::ES256 => &sig::ECDSA_P256_SHA256_FIXED,
                Algorithm::ES384 => &sig::ECDSA_P384_SHA384_FIXED,
                _ => return Err(ErrorKind::InvalidAlgorithm.into()),
            };
            Key::Raw(v, key.try_get_as_bytes()?.to_vec())
        }
        AlgorithmFamily::Ed => {
            family_check(key.family(), AlgorithmFamily::Ed)?;
            Key::Raw(&sig::ED25519, key.try_get_as_bytes()?.to_vec())
        }
    };
    Ok(Box::new(RingVerifier { alg, key: k }))
}

/// A signer (tests and the demo sign tokens with the same provider).
struct RingSigner {
    alg: Algorithm,
    key: SignKey,
}

enum SignKey {
    Hmac(hmac::Key),
    Rsa(sig::RsaKeyPair),
    Ecdsa(sig::EcdsaKeyPair),
    Ed(sig::Ed25519KeyPair),
}

impl Signer<Vec<u8>> for RingSigner {
    fn try_sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, signature::Error> {
        let rng = SystemRandom::new();
        match &self.key {
            SignKey::Hmac(k) => Ok(hmac::sign(k, msg).as_ref().to_vec()),
            SignKey::Rsa(k) => {
                let mut out = vec![0; k.public().modulus_len()];
                k.sign(rsa_encoding(self.alg), &rng, msg, &mut out).map_err(sig_err)?;
                Ok(out)
            }
            SignKey::Ecdsa(k) => Ok(k.sign(&rng, msg).map_err(sig_err)?.as_ref().to_vec()),
            SignKey::Ed(k) => Ok(k.sign(msg).as_ref().to_vec()),
        }
    }
}

impl JwtSigner for RingSigner {
    fn algorithm(&self) -> Algorithm {
        self.alg
    }
}

fn rsa_key_pair(der: &[u8]) -> Result<sig::RsaKeyPair> {
    sig::RsaKeyPair::from_der(der)
        .or_else(|_| sig::RsaKeyPair::from_pkcs8(der))
        .map_err(|e| Error::from(ErrorKind::InvalidRsaKey(e.to_string())))
}

fn ecdsa_alg(alg: Algorithm) -> Result<&'static sig::EcdsaSigningAlgorithm> {
    match alg {
        Algorithm::ES256 => Ok(&sig::ECDSA_P256_SHA256_FIXED_SIGNING),
        Algorithm::ES384 => Ok(&sig::ECDSA_P384_SHA384_FIXED_SIGNING),
        _ => Err(ErrorKind::InvalidEcdsaKey.into()),
    }
}

fn new_signer(alg: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>> {
    let alg = *alg;
    let k = match alg.family() {
        AlgorithmFamily::Hmac => {
            family_check(key.family(), AlgorithmFamily::Hmac)?;
            let h = match alg {
                Algorithm::HS384 => hmac::HMAC_SHA384,
                Algorithm::HS512 => hmac::HMAC_SHA512,
                _ => hmac::HMAC_SHA256,
            };
            SignKey::Hmac(hmac::Key::new(h, key.as_bytes()))
        }
        AlgorithmFamily::Rsa => {
            family_check(key.family(), AlgorithmFamily::Rsa)?;
            SignKey::Rsa(rsa_key_pair(key.as_bytes())?)
        }
        AlgorithmFamily::Ec => {
            family_check(key.family(), AlgorithmFamily::Ec)?;
            let pair = sig::EcdsaKeyPair::from_pkcs8(ecdsa_alg(alg)?, key.as_bytes(), &SystemRandom::new())
                .map_err(|_| Error::from(ErrorKind::InvalidEcdsaKey))?;
            SignKey::Ecdsa(pair)
        }
        AlgorithmFamily::Ed => {
            family_check(key.family(), AlgorithmFamily::Ed)?;
            let pair = sig::Ed25519KeyPair::from_pkcs8_maybe_unchecked(key.as_bytes())
                .map_err(|_| Error::from(ErrorKind::InvalidEddsaKey))?;
            SignKey::Ed(pair)
        }
    };
    Ok(Box::new(RingSigner { alg, key: k }))
}

fn rsa_components_from_private_key(der: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
    use sig::KeyPair;
    let pair = rsa_key_pair(der)?;
    let public = pair.public_key();
    let c: sig::RsaPublicKeyComponents<Vec<u8>> = public.into();
    Ok((c.n, c.e))
}

/// Parses a PKCS#1 `RSAPublicKey` (SEQUENCE { n INTEGER, e INTEGER }) into its components.
fn rsa_components_from_public_key(der: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
    let bad = || Error::from(ErrorKind::InvalidRsaKey("not a PKCS#1 RSAPublicKey".to_owned()));
    let (tag, body, _) = der_item(der).ok_or_else(bad)?;
    if tag != 0x30 {
        return Err(bad());
    }
    let (t1, n, rest) = der_item(body).ok_or_else(bad)?;
    let (t2, e, _) = der_item(rest).ok_or_else(bad)?;
    if t1 != 2 || t2 != 2 {
        return Err(bad());
    }
    let strip = |v: &[u8]| v.iter().position(|&b| b != 0).map_or_else(Vec::new, |i| v[i..].to_vec());
    Ok((strip(n), strip(e)))
}

/// One DER TLV: (tag, contents, rest).
fn der_item(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        rest = &rest[n..];
        len
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

fn ec_components_from_private_key(der: &[u8], alg: Algorithm) -> Result<(EllipticCurve, Vec<u8>, Vec<u8>)> {
    use sig::KeyPair;
    let (curve, len) = match alg {
        Algorithm::ES256 => (EllipticCurve::P256, 32),
        Algorithm::ES384 => (EllipticCurve::P384, 48),
        _ => return Err(ErrorKind::InvalidEcdsaKey.into()),
    };
    let pair = sig::EcdsaKeyPair::from_pkcs8(ecdsa_alg(alg)?, der, &SystemRandom::new())
        .map_err(|_| Error::from(ErrorKind::InvalidEcdsaKey))?;
    let point = pair.public_key().as_ref();
    if point.first() != Some(&4) || point.len() != 1 + 2 * len {
        return Err(ErrorKind::InvalidEcdsaKey.into());
    }
    let (x, y) = point[1..].split_at(len);
    Ok((curve, x.to_vec(), y.to_vec()))
}

fn ed_pub_components_from_private_key(der: &[u8], curve: &EllipticCurve) -> Result<Vec<u8>> {
    use sig::KeyPair;
    match curve {
        EllipticCurve::Ed25519 => Ok(sig::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
            .map_err(|_| Error::from(ErrorKind::InvalidEddsaKey))?
            .public_key()
            .as_ref()
            .to_vec()),
        _ => Err(ErrorKind::InvalidAlgorithm.into()),
    }
}

fn compute_digest(data: &[u8], hash: ThumbprintHash) -> Result<Vec<u8>> {
    let alg = match hash {
        ThumbprintHash::SHA256 => &digest::SHA256,
        ThumbprintHash::SHA384 => &digest::SHA384,
        ThumbprintHash::SHA512 => &digest::SHA512,
        _ => return Err(ErrorKind::InvalidAlgorithm.into()),
    };
    Ok(digest::digest(alg, data).as_ref().to_vec())
}
