//! Validation of `[upstreams.tls]`: file names present, client certificate and key given
//! together, ALPN ids known, the server name well formed.
//!
//! Owns: the upstream TLS rules that need no file access. Must not: read certificate files (the
//! HTTP crate loads them when it builds the client context and reports unreadable ones).

use super::Issues;
use crate::config::model_edge::{UPSTREAM_ALPN, UpstreamTlsConfig};
use crate::config::spans::KeyPath;

/// Checks one upstream's `tls` table at `path`.
pub(super) fn check_tls(tls: &UpstreamTlsConfig, path: &KeyPath, out: &mut Issues) {
    let files = [("ca", &tls.ca), ("client_cert", &tls.client_cert), ("client_key", &tls.client_key)];
    for (key, file) in files {
        if file.as_deref().is_some_and(|f| f.trim().is_empty()) {
            out.push(path.key(key), format!("{key} must name a PEM file"));
        }
    }
    match (&tls.client_cert, &tls.client_key) {
        (Some(_), None) => out.push(path.key("client_key"), "client_cert needs client_key (its private key)"),
        (None, Some(_)) => out.push(path.key("client_cert"), "client_key needs client_cert"),
        _ => {}
    }
    if tls.insecure_skip_verify && tls.ca.is_some() {
        out.push(path.key("ca"), "ca is never used with insecure_skip_verify = true; remove one of them");
    }
    if let Some(name) = &tls.server_name {
        let ok = !name.is_empty()
            && name.len() <= 253
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b':');
        if !ok {
            out.push(
                path.key("server_name"),
                format!("server_name {name:?} is not a DNS name or IP address"),
            );
        }
    }
    for (i, a) in tls.alpn.iter().enumerate() {
        if !UPSTREAM_ALPN.contains(&a.as_str()) {
            out.push(
                path.key("alpn").index(i),
                format!("unknown ALPN id {a:?}; known: {}", UPSTREAM_ALPN.join(", ")),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::validate::tests::one;

    const UP: &str = "[[upstreams]]\nname = \"b\"\nendpoints = [\"127.0.0.1:1\"]\n[upstreams.tls]\n";

    #[test]
    fn upstream_tls_rules_report_their_lines() {
        one(&format!("{UP}client_cert = \"c.pem\"\n"), "upstreams[1].tls.client_key", 4, "client_cert needs");
        one(&format!("{UP}alpn = [\"h3\"]\n"), "upstreams[1].tls.alpn[0]", 5, "unknown ALPN");
        one(
            &format!("{UP}ca = \"a.pem\"\ninsecure_skip_verify = true\n"),
            "upstreams[1].tls.ca",
            5,
            "never used",
        );
        one(&format!("{UP}server_name = \"a b\"\n"), "upstreams[1].tls.server_name", 5, "not a DNS name");
    }
}
