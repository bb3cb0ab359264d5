//! Validation of `[listeners.http3]`: HTTP/3 needs TLS 1.3 on the listener, and its limits must
//! be usable.
//!
//! Owns: the HTTP/3 rules. Must not: touch sockets or certificate files.

use super::Issues;
use crate::config::model::ListenerConfig;
use crate::config::spans::KeyPath;

/// Checks one listener's `http3` table (when present and enabled).
pub(super) fn check(l: &ListenerConfig, path: &KeyPath, out: &mut Issues) {
    let Some(h3) = l.http3.as_ref().filter(|h| h.enabled) else { return };
    let here = path.key("http3");
    match &l.tls {
        None => out.push(
            here.clone(),
            "HTTP/3 runs over QUIC, which always uses TLS 1.3: add a [listeners.tls] table with a \
             certificate to this listener",
        ),
        // QUIC always uses TLS 1.3, whatever `min_version` allows on TCP.
        Some(t)
            if !t.cipher_suites.is_empty() && !t.cipher_suites.iter().any(|s| s.starts_with("TLS13_")) =>
        {
            out.push(here.clone(), "HTTP/3 needs a TLS 1.3 cipher suite in tls.cipher_suites");
        }
        Some(_) => {}
    }
    if h3.max_concurrent_streams == 0 {
        out.push(here.key("max_concurrent_streams"), "must be at least 1 (0 would refuse every request)");
    }
    if h3.max_connections_per_shard == 0 {
        out.push(here.key("max_connections_per_shard"), "must be at least 1");
    }
    if h3.idle_timeout.0.is_zero() {
        out.push(here.key("idle_timeout"), "must be longer than zero");
    }
    if h3.max_field_section_size.0 < 1024 {
        out.push(here.key("max_field_section_size"), "must be at least 1KiB");
    }
}
