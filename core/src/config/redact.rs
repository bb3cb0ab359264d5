//! Secret redaction for showing a config (the admin API's `GET /config`).
//!
//! Owns: which keys count as secrets. A key is redacted when its name contains one of
//! [`SECRET_WORDS`], wherever it appears, so sections added later are covered by naming their
//! secret keys accordingly. Must not: change the running config.

/// Key name fragments that mark a secret value.
pub const SECRET_WORDS: [&str; 8] =
    ["token", "secret", "password", "passwd", "credential", "private_key", "api_key", "key_pem"];

/// The value shown instead of a secret.
pub const REDACTED: &str = "<redacted>";

fn is_secret(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|w| k.contains(w)) || k == "keys"
}

fn walk(v: &mut toml::Value) {
    match v {
        toml::Value::Table(t) => {
            for (k, v) in t.iter_mut() {
                if is_secret(k) {
                    *v = toml::Value::String(REDACTED.to_owned());
                } else {
                    walk(v);
                }
            }
        }
        toml::Value::Array(a) => a.iter_mut().for_each(walk),
        _ => {}
    }
}

/// The config text as JSON with every secret value replaced by [`REDACTED`]; `None` when the
/// text is not TOML (it always is for a running config).
pub fn redacted_json(text: &str) -> Option<serde_json::Value> {
    let mut v = toml::Value::Table(toml::from_str::<toml::Table>(text).ok()?);
    walk(&mut v);
    serde_json::to_value(v).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_secret_keys_anywhere() {
        let text = "[admin]\ntoken = \"0123456789abcdef\"\n[[consumers]]\nname = \"a\"\napi_key = \"k1\"\n\
                    [jwt]\nclient_secret = \"s\"\nissuer = \"https://id\"\n[[upstreams]]\nname = \"u\"\n";
        let v = redacted_json(text).expect("toml");
        assert_eq!(v["admin"]["token"], REDACTED);
        assert_eq!(v["consumers"][0]["api_key"], REDACTED);
        assert_eq!(v["consumers"][0]["name"], "a");
        assert_eq!(v["jwt"]["client_secret"], REDACTED);
        assert_eq!(v["jwt"]["issuer"], "https://id");
        assert_eq!(v["upstreams"][0]["name"], "u");
        assert!(!v.to_string().contains("0123456789abcdef"));
        assert!(redacted_json("not = [toml").is_none());
    }
}
