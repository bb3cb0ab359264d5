//! Validation of `[listeners.tls]`: certificates present, server names well formed and unique,
//! versions, cipher suites and ALPN ids known and consistent.
//!
//! Owns: the TLS rules that need no file access. Must not: read certificate files (the HTTP
//! crate loads them when it builds the TLS context and reports missing, mismatched or expired
//! ones).

use std::collections::HashMap;

use super::Issues;
use crate::config::model_tls::{ALPN_PROTOCOLS, CIPHER_SUITES, ClientAuth, ListenerTlsConfig, TlsVersion};
use crate::config::spans::KeyPath;

/// Checks one listener's `tls` table and lowercases its server names.
pub(super) fn check(tls: &mut ListenerTlsConfig, path: &KeyPath, out: &mut Issues) {
    let certs = path.key("certificates");
    if tls.certificates.is_empty() {
        out.push(
            certs.clone(),
            "a TLS listener needs at least one certificate, e.g. \
             [[listeners.tls.certificates]] cert = \"cert.pem\" key = \"key.pem\"",
        );
    }
    let mut names: HashMap<String, usize> = HashMap::new();
    for (i, c) in tls.certificates.iter_mut().enumerate() {
        let here = certs.index(i);
        if c.cert.trim().is_empty() {
            out.push(here.key("cert"), "cert must name a PEM file");
        }
        if c.key.trim().is_empty() {
            out.push(here.key("key"), "key must name a PEM file");
        }
        for (j, name) in c.server_names.iter_mut().enumerate() {
            let at = here.key("server_names").index(j);
            match check_server_name(name) {
                Ok(lower) => {
                    if let Some(&first) = names.get(&lower) {
                        out.push(at, format!("server name {name:?} is also served by certificates[{first}]"));
                    } else {
                        names.insert(lower.clone(), i);
                    }
                    *name = lower;
                }
                Err(e) => out.push(at, e),
            }
        }
    }
    let mut has13 = tls.cipher_suites.is_empty();
    let mut has12 = tls.cipher_suites.is_empty();
    for (i, s) in tls.cipher_suites.iter().enumerate() {
        if !CIPHER_SUITES.contains(&s.as_str()) {
            out.push(
                path.key("cipher_suites").index(i),
                format!("unknown cipher suite {s:?}; known: {}", CIPHER_SUITES.join(", ")),
            );
        } else if s.starts_with("TLS13_") {
            has13 = true;
        } else {
            has12 = true;
        }
    }
    if !has13 {
        out.push(
            path.key("cipher_suites"),
            "cipher_suites must include at least one TLS 1.3 suite (TLS13_...)",
        );
    }
    if tls.min_version == TlsVersion::Tls13 && has12 && !tls.cipher_suites.is_empty() {
        out.push(
            path.key("cipher_suites"),
            "TLS 1.2 suites are listed but min_version = \"1.3\" never uses them",
        );
    }
    if tls.alpn.is_empty() {
        out.push(path.key("alpn"), "alpn must offer at least one protocol: \"h2\" or \"http/1.1\"");
    }
    for (i, a) in tls.alpn.iter().enumerate() {
        if !ALPN_PROTOCOLS.contains(&a.as_str()) {
            out.push(
                path.key("alpn").index(i),
                format!("unknown ALPN protocol {a:?}; use \"h2\" or \"http/1.1\""),
            );
        }
    }
    out.nonzero(path.key("handshake_timeout"), tls.handshake_timeout);
    if tls.client_auth != ClientAuth::Off && tls.client_ca.as_deref().is_none_or(|c| c.trim().is_empty()) {
        out.push(
            path.key("client_ca"),
            "client_auth needs client_ca: a PEM file with the CA(s) client certificates chain to",
        );
    }
}

/// An exact DNS name or a `*.` wildcard, lowercased.
fn check_server_name(name: &str) -> Result<String, String> {
    let lower = name.to_ascii_lowercase();
    let rest = lower.strip_prefix("*.").unwrap_or(&lower);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if rest.len() > 253 || !rest.split('.').all(label_ok) {
        return Err(format!(
            "server name {name:?} must be a DNS name like \"api.example.com\" or a wildcard like \"*.example.com\""
        ));
    }
    Ok(lower)
}
