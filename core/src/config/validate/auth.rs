//! Validation of `[auth]` (JWT issuers, API keys, identity headers) and of every route's `auth`
//! and `authz` against it.
//!
//! Owns: the auth rules, each reported with its key path. Must not: read key files or fetch
//! anything (a missing file is reported when the authn filter is built).

use std::collections::HashSet;

use super::{FRAMING_HEADERS, Issues, is_token};
use crate::config::model::RouteConfig;
use crate::config::model_auth::{ApiKeysConfig, AuthConfig, AuthMode, JwtIssuerConfig, TokenSource};
use crate::config::spans::KeyPath;

/// JWS algorithm names the gateway verifies (`none` is never one of them).
pub const JWT_ALGORITHMS: [&str; 12] = [
    "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384",
    "EdDSA",
];

/// Sources an identity header may take its value from (besides `claim:<name>`).
pub const IDENTITY_SOURCES: [&str; 6] = ["consumer", "subject", "scopes", "roles", "tier", "issuer"];

/// Checks `[auth]` and the auth keys of every route.
pub(super) fn check(auth: &AuthConfig, routes: &[RouteConfig], root: &KeyPath, out: &mut Issues) {
    let path = root.key("auth");
    for (name, source) in &auth.identity_headers {
        let here = path.key("identity_headers").key(name);
        header_name(name, &here, out);
        let ok = IDENTITY_SOURCES.contains(&source.as_str())
            || source.strip_prefix("claim:").is_some_and(|c| !c.is_empty());
        if !ok {
            out.push(
                here,
                format!(
                    "unknown identity source {source:?}; use one of {} or \"claim:<name>\"",
                    IDENTITY_SOURCES.join(", ")
                ),
            );
        }
    }
    for (i, name) in auth.strip_headers.iter().enumerate() {
        header_name(name, &path.key("strip_headers").index(i), out);
    }
    out.nonzero(path.key("cache_ttl"), auth.cache_ttl);
    let mut names = HashSet::new();
    for (i, issuer) in auth.jwt.iter().enumerate() {
        let here = path.key("jwt").index(i);
        if issuer.name.trim().is_empty() || issuer.name == "api_key" {
            out.push(here.key("name"), "issuer name must be non-empty and not \"api_key\"");
        } else if !names.insert(issuer.name.as_str()) {
            out.push(here.key("name"), format!("duplicate issuer name {:?}", issuer.name));
        }
        jwt(issuer, &here, out);
    }
    if let Some(r) = &auth.revocation {
        let here = path.key("revocation");
        if auth.jwt.is_empty() {
            out.push(here.clone(), "revocation needs at least one [[auth.jwt]] issuer");
        }
        let keys = super::redis::RedisKeys {
            server: ("redis", Some(r.redis.as_str()).filter(|a| !a.is_empty())),
            cluster: ("cluster", &r.cluster),
            username: ("username", r.username.as_deref()),
            password_env: ("password_env", r.password_env.as_deref()),
            password_file: ("password_file", r.password_file.as_deref()),
            tls_ca_file: ("tls_ca_file", r.tls_ca_file.as_deref()),
        };
        super::redis::check(&keys, true, &here, out);
        if r.key_prefix.is_empty() {
            out.push(here.key("key_prefix"), "key_prefix must not be empty");
        }
        out.nonzero(here.key("sync_interval"), r.sync_interval);
        out.nonzero(here.key("timeout"), r.timeout);
    }
    if let Some(keys) = &auth.api_keys {
        api_keys(keys, &path.key("api_keys"), out);
        names.insert("api_key");
    }
    for (i, r) in routes.iter().enumerate() {
        let here = root.key("routes").index(i);
        if !auth.is_enabled() && matches!(r.auth, Some(AuthMode::Required | AuthMode::Optional)) {
            out.push(
                here.key("auth"),
                "needs [auth] with at least one [[auth.jwt]] issuer or [auth.api_keys]",
            );
        }
        if r.authz.needs_identity() && (r.auth == Some(AuthMode::None) || !auth.is_enabled()) {
            out.push(
                here.key("authz"),
                "authz needs authentication on the route (auth = \"required\" or \"optional\")",
            );
        }
        for (j, m) in r.authz.claims.iter().enumerate() {
            let at = here.key("authz").key("claims").index(j);
            if m.claim.is_empty() {
                out.push(at.key("claim"), "claim name must not be empty");
            }
            if m.equals.is_some() != m.one_of.is_empty() {
                out.push(at, "give exactly one of `equals` or `one_of` (non-empty)");
            }
        }
        let cert = &r.authz.client_cert;
        for (key, list) in [("subject", &cert.subject), ("dns", &cert.dns), ("spiffe_id", &cert.spiffe_id)] {
            for (j, v) in list.iter().enumerate() {
                if v.is_empty() {
                    out.push(here.key("authz").key("client_cert").key(key).index(j), "must not be empty");
                }
            }
        }
        for (j, name) in r.authz.issuers.iter().enumerate() {
            if !names.contains(name.as_str()) {
                out.push(
                    here.key("authz").key("issuers").index(j),
                    format!("unknown issuer {name:?} (an [[auth.jwt]] name, or \"api_key\")"),
                );
            }
        }
    }
}

fn header_name(name: &str, at: &KeyPath, out: &mut Issues) {
    if !is_token(name) {
        out.push(at.clone(), format!("invalid header name {name:?}"));
    } else if FRAMING_HEADERS.iter().any(|f| f.eq_ignore_ascii_case(name))
        || name.eq_ignore_ascii_case("host")
    {
        out.push(at.clone(), format!("header {name:?} cannot carry identity"));
    }
}

fn sources(list: &[TokenSource], at: &KeyPath, out: &mut Issues) {
    if list.is_empty() {
        out.push(at.clone(), "at least one source is required");
    }
    for (i, s) in list.iter().enumerate() {
        let here = at.index(i);
        let n = [s.header.is_some(), s.cookie.is_some(), s.query.is_some()].iter().filter(|b| **b).count();
        if n != 1 {
            out.push(here.clone(), "give exactly one of `header`, `cookie` or `query`");
        }
        if s.scheme.is_some() && s.header.is_none() {
            out.push(here.key("scheme"), "`scheme` only applies to a `header` source");
        }
        if let Some(h) = s.header.as_ref().filter(|h| !is_token(h)) {
            out.push(here.key("header"), format!("invalid header name {h:?}"));
        }
        for (key, v) in [("scheme", &s.scheme), ("cookie", &s.cookie), ("query", &s.query)] {
            if let Some(v) = v.as_ref().filter(|v| !is_token(v)) {
                out.push(here.key(key), format!("{v:?} must be a token (letters, digits, -_.)"));
            }
        }
    }
}

fn jwt(issuer: &JwtIssuerConfig, at: &KeyPath, out: &mut Issues) {
    if issuer.issuer.is_empty() {
        out.push(at.key("issuer"), "issuer must not be empty");
    }
    if issuer.algorithms.is_empty() {
        out.push(at.key("algorithms"), "list the accepted algorithms, e.g. [\"RS256\"]");
    }
    for (i, alg) in issuer.algorithms.iter().enumerate() {
        if !JWT_ALGORITHMS.contains(&alg.as_str()) {
            out.push(
                at.key("algorithms").index(i),
                format!("unsupported algorithm {alg:?}; use one of {}", JWT_ALGORITHMS.join(", ")),
            );
        }
    }
    let hmac = issuer.algorithms.iter().any(|a| a.starts_with("HS"));
    let public = issuer.algorithms.iter().any(|a| !a.starts_with("HS"));
    if hmac && public {
        out.push(
            at.key("algorithms"),
            "do not mix shared-secret (HS*) and public-key algorithms in one issuer; declare two issuers",
        );
    }
    for (i, c) in issuer.required_claims.iter().enumerate() {
        if c.is_empty() {
            out.push(at.key("required_claims").index(i), "claim name must not be empty");
        }
    }
    sources(&issuer.token_from, &at.key("token_from"), out);
    if let Some(uri) = &issuer.jwks_uri {
        if !(uri.starts_with("http://") || uri.starts_with("https://")) {
            out.push(at.key("jwks_uri"), format!("jwks_uri {uri:?} must start with http:// or https://"));
        }
        if hmac {
            out.push(at.key("jwks_uri"), "shared-secret (HS*) issuers take `keys` with `secret`, not a JWKS");
        }
    }
    if issuer.jwks_uri.is_none() && issuer.keys.is_empty() {
        out.push(at.clone(), "an issuer needs `jwks_uri` or at least one [[auth.jwt.keys]]");
    }
    let r = &issuer.jwks_refresh;
    let rp = at.key("jwks_refresh");
    for (key, d) in [
        ("default_interval", r.default_interval),
        ("min_interval", r.min_interval),
        ("max_interval", r.max_interval),
        ("unknown_kid_interval", r.unknown_kid_interval),
        ("retry_interval", r.retry_interval),
        ("timeout", r.timeout),
    ] {
        out.nonzero(rp.key(key), d);
    }
    if r.min_interval.0 > r.max_interval.0 {
        out.push(rp.key("min_interval"), "min_interval must not exceed max_interval");
    }
    for (i, k) in issuer.keys.iter().enumerate() {
        let here = at.key("keys").index(i);
        let n = [k.pem_file.is_some(), k.jwk_file.is_some(), k.secret.is_some(), k.secret_env.is_some()]
            .iter()
            .filter(|b| **b)
            .count();
        if n != 1 {
            out.push(here.clone(), "give exactly one of `pem_file`, `jwk_file`, `secret` or `secret_env`");
        }
        let secret = k.secret.is_some() || k.secret_env.is_some();
        if secret && !hmac {
            out.push(here.clone(), "a shared secret needs an HS256/HS384/HS512 issuer");
        }
        if !secret && n == 1 && hmac {
            out.push(here.clone(), "an HS* issuer verifies with `secret` or `secret_env`, not a public key");
        }
        if k.secret.as_ref().is_some_and(|s| s.len() < 32) {
            out.push(here.key("secret"), "a shared secret must be at least 32 bytes");
        }
    }
}

fn api_keys(keys: &ApiKeysConfig, at: &KeyPath, out: &mut Issues) {
    sources(&keys.from, &at.key("from"), out);
    out.nonzero(at.key("watch_interval"), keys.watch_interval);
    if keys.keys.is_empty() && keys.keys_file.is_none() {
        out.push(at.clone(), "give `keys` or `keys_file`");
    }
    let mut seen = HashSet::new();
    for (i, k) in keys.keys.iter().enumerate() {
        let here = at.key("keys").index(i);
        if !is_sha256_hex(&k.sha256) {
            out.push(
                here.key("sha256"),
                "sha256 must be 64 lowercase hex digits (printf %s \"$KEY\" | sha256sum)",
            );
        } else if !seen.insert(k.sha256.as_str()) {
            out.push(here.key("sha256"), "duplicate key");
        }
        if k.consumer.is_empty() {
            out.push(here.key("consumer"), "consumer must not be empty");
        }
    }
}

/// True for 64 lowercase hex digits.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use crate::config::validate::tests::{BASE_LINES, load, one};

    const ISSUER: &str = "[[auth.jwt]]\nname = \"main\"\nissuer = \"https://id.example.com/\"\n\
                          algorithms = [\"RS256\"]\njwks_uri = \"https://id.example.com/jwks\"\n";

    #[test]
    fn a_full_auth_section_is_valid() {
        let text = format!(
            "{ISSUER}audiences = [\"api\"]\nrequired_claims = [\"sub\"]\n\
             token_from = [{{ header = \"authorization\", scheme = \"Bearer\" }}, {{ cookie = \"session\" }}]\n\
             [auth.jwt.jwks_refresh]\nmin_interval = \"30s\"\n\
             [auth.api_keys]\nkeys = [{{ sha256 = \"{}\", consumer = \"acme\", tier = \"gold\" }}]\n\
             [[routes]]\nprefix = \"/\"\nupstream = \"app\"\nauth = \"optional\"\n\
             authz = {{ scopes = [\"read\"], scopes_match = \"any\", issuers = [\"main\", \"api_key\"], \
             claims = [{{ claim = \"tenant\", one_of = [\"a\", \"b\"] }}] }}\n",
            "a".repeat(64)
        );
        let cfg = load(&text).expect("valid");
        assert!(cfg.auth.is_enabled());
        assert_eq!(cfg.auth.jwt[0].token_from.len(), 2);
    }

    #[test]
    fn algorithms_must_be_known_and_not_mixed() {
        one(
            "[[auth.jwt]]\nname = \"m\"\nissuer = \"i\"\nalgorithms = [\"none\"]\njwks_uri = \"https://x/\"\n",
            "auth.jwt[0].algorithms[0]",
            4,
            "unsupported algorithm \"none\"",
        );
        one(
            "[[auth.jwt]]\nname = \"m\"\nissuer = \"i\"\nalgorithms = [\"RS256\", \"HS256\"]\nkeys = [{ secret_env = \"S\" }]\n",
            "auth.jwt[0].algorithms",
            4,
            "do not mix",
        );
    }

    #[test]
    fn issuer_needs_keys_and_valid_sources() {
        one(
            "[[auth.jwt]]\nname = \"m\"\nissuer = \"i\"\nalgorithms = [\"ES256\"]\n",
            "auth.jwt[0]",
            1,
            "needs `jwks_uri`",
        );
        one(
            &format!("{ISSUER}token_from = [{{ header = \"x-t\", cookie = \"c\" }}]\n"),
            "auth.jwt[0].token_from[0]",
            6,
            "exactly one of",
        );
        one(
            "[[auth.jwt]]\nname = \"m\"\nissuer = \"i\"\nalgorithms = [\"HS256\"]\nkeys = [{ secret = \"short\" }]\n",
            "auth.jwt[0].keys[0].secret",
            5,
            "at least 32 bytes",
        );
    }

    #[test]
    fn api_key_hashes_and_route_rules() {
        one(
            "[auth.api_keys]\nkeys = [{ sha256 = \"ABC\", consumer = \"c\" }]\n",
            "auth.api_keys.keys[0].sha256",
            2,
            "64 lowercase hex",
        );
        one(
            "[[routes]]\nprefix = \"/\"\nupstream = \"app\"\nauth = \"required\"\n",
            "routes[0].auth",
            4,
            "needs [auth]",
        );
        let errs = load(&format!(
            "{ISSUER}[[routes]]\nprefix = \"/\"\nupstream = \"app\"\nauth = \"none\"\n\
             authz = {{ roles = [\"x\"], issuers = [\"nobody\"], claims = [{{ claim = \"t\" }}] }}\n"
        ))
        .expect_err("invalid");
        let paths: Vec<_> = errs.iter().map(|(p, l, _)| (p.as_str(), *l)).collect();
        let l = Some(BASE_LINES + 10);
        assert_eq!(
            paths,
            vec![("routes[0].authz", l), ("routes[0].authz.claims[0]", l), ("routes[0].authz.issuers[0]", l)]
        );
    }

    #[test]
    fn identity_headers_are_checked() {
        one(
            "[auth.identity_headers]\nx-user = \"nickname\"\n",
            "auth.identity_headers.x-user",
            2,
            "unknown identity source",
        );
        one(
            "[auth]\nstrip_headers = [\"content-length\"]\n",
            "auth.strip_headers[0]",
            2,
            "cannot carry identity",
        );
    }
}
