//! Secret redaction for showing a config (the admin API's `GET /config`), by meaning rather
//! than by one list of key names:
//! - **secret-typed fields**: a key whose name contains one of [`SECRET_WORDS`] (or is `keys`),
//!   wherever it appears, so sections added later are covered by naming their secret keys so;
//! - **credential-bearing headers**: the value of a header set or added by the config
//!   (`*_headers.set` / `*_headers.add`) when its name is a credential ([`CREDENTIAL_HEADERS`]),
//!   contains a credential word ([`CREDENTIAL_HEADER_WORDS`]), or is a header the config itself
//!   reads a credential from (`auth.api_keys.from[].header`, `auth.jwt[].token_from[].header`);
//! - **URLs**: in every string that is a URL (`scheme://...`), the userinfo, every query value
//!   and the fragment.
//!
//! Owns: what counts as a secret in a shown config. Must not: change the running config.

use std::collections::BTreeSet;

/// Key name fragments that mark a secret value.
pub const SECRET_WORDS: [&str; 8] =
    ["token", "secret", "password", "passwd", "credential", "private_key", "api_key", "key_pem"];

/// Header names whose values are credentials.
pub const CREDENTIAL_HEADERS: [&str; 5] =
    ["authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"];

/// Header name fragments that mark a credential-bearing header (`x-auth-token`, `x-upstream-key`).
pub const CREDENTIAL_HEADER_WORDS: [&str; 8] =
    ["auth", "token", "secret", "password", "passwd", "key", "session", "credential"];

/// The value shown instead of a secret.
pub const REDACTED: &str = "<redacted>";

/// Keys that contain a secret word but name no secret (where a credential is read from).
const NOT_SECRET: [&str; 1] = ["token_from"];

fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    (SECRET_WORDS.iter().any(|w| k.contains(w)) || k == "keys") && !NOT_SECRET.contains(&k.as_str())
}

/// The header names the config reads credentials from, lowercased.
fn configured_credential_headers(root: &toml::Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut take = |sources: Option<&toml::Value>| {
        for source in sources.and_then(toml::Value::as_array).into_iter().flatten() {
            if let Some(h) = source.get("header").and_then(toml::Value::as_str) {
                out.insert(h.trim().to_ascii_lowercase());
            }
        }
    };
    let auth = root.get("auth");
    take(auth.and_then(|a| a.get("api_keys")).and_then(|k| k.get("from")));
    for issuer in auth.and_then(|a| a.get("jwt")).and_then(toml::Value::as_array).into_iter().flatten() {
        take(issuer.get("token_from"));
    }
    out
}

/// Whether a header set or added by the config carries a credential.
fn is_credential_header(name: &str, configured: &BTreeSet<String>) -> bool {
    let n = name.trim().to_ascii_lowercase();
    CREDENTIAL_HEADERS.contains(&n.as_str())
        || CREDENTIAL_HEADER_WORDS.iter().any(|w| n.contains(w))
        || configured.contains(&n)
}

/// `s` with the userinfo, the query values and the fragment of a URL replaced by [`REDACTED`];
/// `None` when `s` is not a URL or has nothing to hide.
fn redact_url(s: &str) -> Option<String> {
    let scheme_end = s.find("://")?;
    let scheme = &s[..scheme_end];
    if scheme.is_empty() || !scheme.bytes().all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b)) {
        return None;
    }
    let rest = &s[scheme_end + 3..];
    let (before_fragment, fragment) = match rest.split_once('#') {
        Some((a, _)) => (a, true),
        None => (rest, false),
    };
    let (before_query, query) = match before_fragment.split_once('?') {
        Some((a, q)) => (a, Some(q)),
        None => (before_fragment, None),
    };
    let authority_end = before_query.find('/').unwrap_or(before_query.len());
    let (authority, path) = before_query.split_at(authority_end);
    let (userinfo, host) = match authority.rsplit_once('@') {
        Some((_, h)) => (true, h),
        None => (false, authority),
    };
    if !userinfo && query.is_none_or(str::is_empty) && !fragment {
        return None;
    }
    let mut out = format!("{scheme}://");
    if userinfo {
        out.push_str(REDACTED);
        out.push('@');
    }
    out.push_str(host);
    out.push_str(path);
    if let Some(q) = query {
        out.push('?');
        let pairs: Vec<String> = q
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) => format!("{name}={REDACTED}"),
                None if pair.is_empty() => String::new(),
                None => REDACTED.to_owned(),
            })
            .collect();
        out.push_str(&pairs.join("&"));
    }
    if fragment {
        out.push('#');
        out.push_str(REDACTED);
    }
    Some(out)
}

/// Whether a table reached by `key` under `parent` maps header names to values set on a message.
fn is_header_map(parent: Option<&str>, key: &str) -> bool {
    matches!(key, "set" | "add") && parent.is_some_and(|p| p.ends_with("_headers"))
}

fn walk(v: &mut toml::Value, parent: Option<&str>, headers: &BTreeSet<String>) {
    match v {
        toml::Value::Table(t) => {
            for (k, child) in t.iter_mut() {
                if is_secret_key(k) {
                    *child = toml::Value::String(REDACTED.to_owned());
                } else if is_header_map(parent, k) {
                    redact_header_map(child, headers);
                } else {
                    walk(child, Some(k), headers);
                }
            }
        }
        toml::Value::Array(a) => a.iter_mut().for_each(|x| walk(x, parent, headers)),
        toml::Value::String(s) => {
            if let Some(r) = redact_url(s) {
                *s = r;
            }
        }
        _ => {}
    }
}

fn redact_header_map(map: &mut toml::Value, headers: &BTreeSet<String>) {
    let Some(t) = map.as_table_mut() else { return walk(map, None, headers) };
    for (name, value) in t.iter_mut() {
        if is_credential_header(name, headers) {
            *value = toml::Value::String(REDACTED.to_owned());
        } else {
            walk(value, None, headers);
        }
    }
}

/// The config text as JSON with every secret value replaced by [`REDACTED`]; `None` when the
/// text is not TOML (it always is for a running config).
pub fn redacted_json(text: &str) -> Option<serde_json::Value> {
    let mut v = toml::Value::Table(toml::from_str::<toml::Table>(text).ok()?);
    let headers = configured_credential_headers(&v);
    walk(&mut v, None, &headers);
    serde_json::to_value(v).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_secret_typed_keys_anywhere() {
        let text = "[admin]\ntoken = \"0123456789abcdef\"\n[[consumers]]\nname = \"a\"\napi_key = \"k1\"\n\
                    [jwt]\nclient_secret = \"s\"\nissuer = \"https://id\"\n[[upstreams]]\nname = \"u\"\n\
                    [[auth.jwt]]\nname = \"hs\"\n[[auth.jwt.keys]]\nsecret = \"hs-shared-secret\"\n";
        let v = redacted_json(text).expect("toml");
        assert_eq!(v["admin"]["token"], REDACTED);
        assert_eq!(v["consumers"][0]["api_key"], REDACTED);
        assert_eq!(v["consumers"][0]["name"], "a");
        assert_eq!(v["jwt"]["client_secret"], REDACTED);
        assert_eq!(v["jwt"]["issuer"], "https://id");
        assert_eq!(v["upstreams"][0]["name"], "u");
        assert_eq!(v["auth"]["jwt"][0]["keys"], REDACTED);
        let shown = v.to_string();
        assert!(!shown.contains("0123456789abcdef") && !shown.contains("hs-shared-secret"), "{shown}");
        assert!(redacted_json("not = [toml").is_none());
    }

    #[test]
    fn redacts_credential_headers_set_or_added_by_routes() {
        let text = "[[routes]]\nprefix = \"/\"\nupstream = \"u\"\n\
             request_headers = { set = { Authorization = \"Bearer up-1\", x-api-key = \"up-2\", \
             cookie = \"sid=up-3\", proxy-authorization = \"Basic up-4\", x-tenant = \"acme\" }, \
             add = { x-upstream-token = \"up-5\" } }\n\
             response_headers = { set = { set-cookie = \"sid=up-6\", x-frame-options = \"DENY\" } }\n";
        let v = redacted_json(text).expect("toml");
        let set = &v["routes"][0]["request_headers"]["set"];
        for name in ["Authorization", "x-api-key", "cookie", "proxy-authorization"] {
            assert_eq!(set[name], REDACTED, "{name}");
        }
        assert_eq!(set["x-tenant"], "acme", "an ordinary header stays readable");
        assert_eq!(v["routes"][0]["request_headers"]["add"]["x-upstream-token"], REDACTED);
        assert_eq!(v["routes"][0]["response_headers"]["set"]["set-cookie"], REDACTED);
        assert_eq!(v["routes"][0]["response_headers"]["set"]["x-frame-options"], "DENY");
        assert!(!v.to_string().contains("up-"), "{v}");
    }

    #[test]
    fn redacts_the_configured_api_key_and_token_headers() {
        let text = "[auth.api_keys]\nfrom = [{ header = \"X-Client-Id\" }]\n\
             [[auth.jwt]]\nname = \"corp\"\ntoken_from = [{ header = \"x-corp-jwt\" }]\n\
             [[routes]]\nprefix = \"/\"\nupstream = \"u\"\n\
             request_headers = { set = { x-client-id = \"key-1\", x-corp-jwt = \"jwt-2\", x-plain = \"ok\" } }\n";
        let v = redacted_json(text).expect("toml");
        let set = &v["routes"][0]["request_headers"]["set"];
        assert_eq!((&set["x-client-id"], &set["x-corp-jwt"]), (&REDACTED.into(), &REDACTED.into()));
        assert_eq!(set["x-plain"], "ok");
        assert_eq!(v["auth"]["jwt"][0]["token_from"][0]["header"], "x-corp-jwt", "a source is no secret");
    }

    #[test]
    fn redacts_url_userinfo_query_values_and_fragments_in_every_url() {
        let text = "[[auth.jwt]]\nname = \"corp\"\n\
             jwks_uri = \"https://id.example/jwks?access_token=tok-1&v=2\"\n\
             [ratelimit]\nredis = \"redis://:pw-2@127.0.0.1:6379/0\"\n\
             [tracing]\notlp_endpoint = \"http://user:pw-3@collector:4318/v1/traces#frag-4\"\n\
             [[upstreams]]\nname = \"u\"\nendpoints = [\"127.0.0.1:9000\"]\n";
        let v = redacted_json(text).expect("toml");
        assert_eq!(
            v["auth"]["jwt"][0]["jwks_uri"],
            "https://id.example/jwks?access_token=<redacted>&v=<redacted>"
        );
        assert_eq!(v["ratelimit"]["redis"], "redis://<redacted>@127.0.0.1:6379/0");
        assert_eq!(v["tracing"]["otlp_endpoint"], "http://<redacted>@collector:4318/v1/traces#<redacted>");
        assert_eq!(v["upstreams"][0]["endpoints"][0], "127.0.0.1:9000", "not a URL: unchanged");
        let shown = v.to_string();
        for secret in ["tok-1", "pw-2", "pw-3", "frag-4"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
    }

    #[test]
    fn url_redaction_leaves_plain_urls_alone() {
        assert_eq!(redact_url("https://id.example/.well-known/jwks.json"), None);
        assert_eq!(redact_url("no url here"), None);
        assert_eq!(redact_url("https://h/p?"), None);
        assert_eq!(redact_url("https://h/p?bare").as_deref(), Some("https://h/p?<redacted>"));
        assert_eq!(redact_url("https://a@b@h/").as_deref(), Some("https://<redacted>@h/"));
    }
}
