//! Validation of `[cors]`, every route's `cors`, and `[response]`.
//!
//! Owns: origin, method and header-name rules, each reported with its key path. Must not:
//! compile matchers (the policies crate's `cors` filter does).

use super::{FRAMING_HEADERS, Issues, is_token};
use crate::config::model::Config;
use crate::config::model_cors::CorsConfig;
use crate::config::spans::KeyPath;

/// Checks `[cors]`, `routes[].cors` and `[response]`.
pub(super) fn check(config: &Config, root: &KeyPath, out: &mut Issues) {
    if let Some(c) = &config.cors {
        policy(c, &root.key("cors"), out);
    }
    for (i, r) in config.routes.iter().enumerate() {
        if let Some(c) = &r.cors {
            policy(c, &root.key("routes").index(i).key("cors"), out);
        }
    }
    let at = root.key("response").key("strip_headers");
    for (i, name) in config.response.strip_headers.iter().enumerate() {
        let bare = name.strip_suffix('*').unwrap_or(name);
        let ok = if name.ends_with('*') { bare.is_empty() || is_token(bare) } else { is_token(name) };
        if !ok || bare.is_empty() {
            out.push(at.index(i), format!("invalid header name or prefix {name:?}"));
        } else if FRAMING_HEADERS.iter().any(|f| f.eq_ignore_ascii_case(name)) {
            out.push(at.index(i), format!("header {name:?} controls message framing and cannot be removed"));
        }
    }
}

fn policy(c: &CorsConfig, at: &KeyPath, out: &mut Issues) {
    if c.enabled && c.allow_origins.is_empty() {
        out.push(at.key("allow_origins"), "list at least one origin (or set enabled = false)");
    }
    for (i, o) in c.allow_origins.iter().enumerate() {
        if let Err(why) = origin(o) {
            out.push(at.key("allow_origins").index(i), format!("invalid origin {o:?}: {why}"));
        }
    }
    for (i, m) in c.allow_methods.iter().enumerate() {
        if m != "*" && !is_token(m) {
            out.push(at.key("allow_methods").index(i), format!("invalid method {m:?}"));
        }
    }
    for (key, list) in [("allow_headers", &c.allow_headers), ("expose_headers", &c.expose_headers)] {
        for (i, h) in list.iter().enumerate() {
            if !is_token(h) {
                out.push(at.key(key).index(i), format!("invalid header name {h:?}"));
            }
        }
    }
}

/// `*`, or `scheme://host[:port]`, where the host may start with `*.`.
fn origin(o: &str) -> Result<(), &'static str> {
    if o == "*" {
        return Ok(());
    }
    let (scheme, rest) = o.split_once("://").ok_or("expected scheme://host[:port] or *")?;
    if scheme.is_empty() || !scheme.bytes().all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b)) {
        return Err("invalid scheme");
    }
    let host = rest.strip_prefix("*.").unwrap_or(rest);
    let ok = !host.is_empty()
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        && !host.starts_with('.');
    if ok { Ok(()) } else { Err("expected scheme://host[:port] (no path), host may start with *.") }
}

#[cfg(test)]
mod tests {
    use crate::config::load_str;
    use crate::config::validate::tests::{BASE, BASE_LINES};

    fn errors(tail: &str) -> Vec<(String, Option<usize>, String)> {
        match load_str(&format!("{BASE}{tail}"), "t.toml") {
            Ok(_) => Vec::new(),
            Err(e) => e.0.into_iter().map(|e| (e.path, e.line, e.message)).collect(),
        }
    }

    #[test]
    fn valid_cors_and_response_sections_load() {
        let ok = "[cors]\nallow_origins = [\"https://app.example.com\", \"https://*.example.org\", \
                  \"http://localhost:3000\"]\nallow_headers = [\"*\"]\nexpose_headers = [\"x-request-id\"]\n\
                  allow_credentials = true\nmax_age = \"1h\"\n[response]\nstrip_headers = [\"server\", \"x-internal-*\"]\n";
        assert_eq!(errors(ok), vec![]);
    }

    #[test]
    fn every_error_has_its_path_and_line() {
        let bad = "[cors]\nallow_origins = [\"app.example.com\", \"https://a.test/path\"]\n\
                   allow_methods = [\"GE T\"]\nexpose_headers = [\"x a\"]\n\
                   [response]\nstrip_headers = [\"*\", \"content-length\", \"bad name\"]\n";
        let e = errors(bad);
        let find =
            |p: &str| e.iter().find(|(path, _, _)| path == p).unwrap_or_else(|| panic!("{p} in {e:?}"));
        assert_eq!(find("cors.allow_origins[0]").1, Some(BASE_LINES + 2));
        find("cors.allow_origins[1]");
        find("cors.allow_methods[0]");
        find("cors.expose_headers[0]");
        find("response.strip_headers[0]");
        find("response.strip_headers[1]");
        find("response.strip_headers[2]");
        assert_eq!(e.len(), 7, "{e:?}");
    }
}
