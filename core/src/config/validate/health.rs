//! Validation of an upstream's active health check and endpoint discovery keys
//! (`health_check`, `endpoints_file`, `deadline_header`), and the loading of an endpoints
//! file (at load time here, and again by the upstream service when the file changes).
//!
//! Owns: those rules, with their key paths. Must not: probe or resolve at runtime.

use std::net::SocketAddr;
use std::path::Path;

use super::{Issues, is_token, resolve_endpoint};
use crate::config::model::UpstreamConfig;
use crate::config::model_health::{HealthCheckKind, parse_endpoints_file};
use crate::config::spans::KeyPath;

/// Reads and resolves an endpoints file: `(address, weight)` per resolved address, or
/// `"path:line: reason"`.
pub fn load_endpoints_file(path: &Path) -> Result<Vec<(SocketAddr, u32)>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let lines = parse_endpoints_file(&text).map_err(|(n, e)| format!("{}:{n}: {e}", path.display()))?;
    let mut out = Vec::new();
    for (n, addr, weight) in lines {
        let addrs = resolve_endpoint(&addr).map_err(|e| format!("{}:{n}: {e}", path.display()))?;
        out.extend(addrs.into_iter().map(|a| (a, weight)));
    }
    Ok(out)
}

/// Checks one `[[upstreams]]` entry at `here`, filling `file_addrs` from its endpoints file.
pub(super) fn check(u: &mut UpstreamConfig, here: &KeyPath, out: &mut Issues) {
    u.file_addrs.clear();
    if let Some(path) = &u.endpoints_file {
        match load_endpoints_file(path) {
            Ok(list) => u.file_addrs = list,
            Err(e) => out.push(here.key("endpoints_file"), e),
        }
    }
    if let Some(h) = &u.health_check {
        let hp = here.key("health_check");
        out.nonzero(hp.key("interval"), h.interval);
        out.nonzero(hp.key("timeout"), h.timeout);
        if h.kind == HealthCheckKind::Http && !h.path.starts_with('/') {
            out.push(hp.key("path"), format!("path {:?} must start with /", h.path));
        }
        for (i, s) in h.expected_statuses.iter().enumerate() {
            if !(100..=599).contains(s) {
                out.push(hp.key("expected_statuses").index(i), format!("status {s} must be from 100 to 599"));
            }
        }
        if h.healthy_threshold == 0 {
            out.push(hp.key("healthy_threshold"), "healthy_threshold must be at least 1");
        }
        if h.unhealthy_threshold == 0 {
            out.push(hp.key("unhealthy_threshold"), "unhealthy_threshold must be at least 1");
        }
        if h.jitter_percent > 100 {
            out.push(hp.key("jitter_percent"), "jitter_percent must be from 0 to 100");
        }
    }
    if let Some(h) = &u.deadline_header
        && !is_token(h)
    {
        out.push(here.key("deadline_header"), format!("deadline_header {h:?} is not a valid header name"));
    }
}

#[cfg(test)]
mod tests {
    use crate::config::validate::tests::{load, one};

    const U: &str = "[[upstreams]]\nname = \"b\"\n";

    #[test]
    fn endpoints_file_adds_addresses_and_reports_its_line() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("eps");
        std::fs::write(&path, "127.0.0.1:7001\n127.0.0.1:7002 weight=2\n").expect("write");
        let cfg = load(&format!("{U}endpoints_file = {:?}\n", path)).expect("valid");
        let a = |p: u16| std::net::SocketAddr::from(([127, 0, 0, 1], p));
        assert_eq!(cfg.upstreams[1].file_addrs, vec![(a(7001), 1), (a(7002), 2)]);
        std::fs::write(&path, "127.0.0.1:7001\nnot-an-endpoint\n").expect("write");
        one(&format!("{U}endpoints_file = {:?}\n", path), "upstreams[1].endpoints_file", 3, "eps:2:");
    }

    #[test]
    fn health_values_point_at_their_key() {
        let e = "endpoints = [\"127.0.0.1:1\"]\n";
        one(
            &format!("{U}{e}[upstreams.health_check]\npath = \"x\"\n"),
            "upstreams[1].health_check.path",
            5,
            "/",
        );
        one(
            &format!("{U}{e}[upstreams.health_check]\nunhealthy_threshold = 0\n"),
            "upstreams[1].health_check.unhealthy_threshold",
            5,
            "at least 1",
        );
        one(&format!("{U}{e}deadline_header = \"a b\"\n"), "upstreams[1].deadline_header", 4, "header name");
    }
}
