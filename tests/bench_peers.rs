//! The Portcullis peer config of the benchmark harness (`bench/peers/portcullis.toml`), rendered
//! for every scenario by the harness's own renderer (`bench/lib/peers.sh`, real bash and awk),
//! must pass `portcullis check`, and the Caddy peer's (`bench/peers/Caddyfile`) `caddy validate`:
//! a config schema change that breaks the benchmark fails here, not in the next benchmark run.

mod common;

use std::path::Path;
use std::process::Command;

use common::gateway::binary;
use common::tls::Pki;

const SCENARIOS: &[&str] = &["plain", "tls", "h2", "h3", "routes", "jwt", "ratelimit", "latency"];

/// Renders `bench/peers/portcullis.toml` for `scenario` into `out` with the harness's renderer.
fn render(scenario: &str, out: &Path, cert: &Path, key: &Path) {
    render_template("bench/peers/portcullis.toml", scenario, out, cert, key);
}

/// Renders `template` (relative to the repository) for `scenario` into `out`.
fn render_template(template: &str, scenario: &str, out: &Path, cert: &Path, key: &Path) {
    let root = env!("CARGO_MANIFEST_DIR");
    let status = Command::new("bash")
        .arg("-c")
        .arg(r#"set -eu; source bench/lib/common.sh; source bench/lib/peers.sh; render "$1" "$2" "$3""#)
        .arg("render")
        .args([template, scenario, out.to_str().expect("utf-8 path")])
        .current_dir(root)
        .env("ROUTES", "1000")
        .env("R_PORT", "0")
        .env("R_UP_PORT", "9")
        .env("R_ADMIN_PORT", "1")
        .env("R_CERT", cert)
        .env("R_KEY", key)
        .env("R_REDIS_LINE", "# no redis")
        .env("R_JWT_CACHE", "0")
        .env("R_JWT_ISSUER", "https://idp.bench/")
        .env("R_JWT_AUDIENCE", "api")
        .env("R_JWT_SECRET", "bench-secret-bench-secret-bench-secret!!")
        .status()
        .expect("run bash");
    assert!(status.success(), "rendering {scenario} failed");
}

#[test]
fn every_scenario_renders_a_config_portcullis_accepts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::new();
    let (cert, key) = pki.issue("bench", &["localhost"]);
    for scenario in SCENARIOS {
        let file = dir.path().join(format!("{scenario}.toml"));
        render(scenario, &file, &cert, &key);
        let text = std::fs::read_to_string(&file).expect("read rendered");
        let directive = text.lines().find(|l| l.trim_start().starts_with("#@"));
        assert!(directive.is_none(), "{scenario}: a template directive was left in: {directive:?}");
        let code: Vec<&str> = text.lines().filter(|l| !l.trim_start().starts_with('#')).collect();
        let left = code.iter().find(|l| l.contains('@'));
        assert!(left.is_none(), "{scenario}: placeholder left: {left:?}");
        let out = Command::new(binary()).args(["check", "--config"]).arg(&file).env("NO_COLOR", "1").output();
        let out = out.expect("run portcullis check");
        let said =
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{scenario}: {said}");
        let routes = if *scenario == "routes" { "1000 routes" } else { "1 routes" };
        assert!(said.contains(routes), "{scenario}: expected {routes}: {said}");
        assert_eq!(
            text.contains("[listeners.tls]"),
            matches!(*scenario, "tls" | "h2" | "h3"),
            "{scenario}: TLS"
        );
        assert_eq!(text.contains("[listeners.http3]"), *scenario == "h3", "{scenario}: HTTP/3");
        assert!(text.contains("[admin]"), "{scenario}: the admin API serves /metrics");
        assert_eq!(text.contains("[[auth.jwt]]"), *scenario == "jwt", "{scenario}: JWT");
        assert_eq!(text.contains("rate_limits = "), *scenario == "ratelimit", "{scenario}: rate limit");
    }
}

#[test]
fn caddy_peer_renders_a_config_caddy_accepts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::new();
    let (cert, key) = pki.issue("bench", &["localhost"]);
    for scenario in ["plain", "tls", "h2", "h3", "latency"] {
        let file = dir.path().join(format!("Caddyfile.{scenario}"));
        render_template("bench/peers/Caddyfile", scenario, &file, &cert, &key);
        let text = std::fs::read_to_string(&file).expect("read rendered");
        let tls = matches!(scenario, "tls" | "h2" | "h3");
        assert_eq!(text.contains("https://localhost:0 {"), tls, "{scenario}: the site is named: {text}");
        assert_eq!(text.contains("protocols h1 h2 h3"), tls, "{scenario}: {text}");
        let out = Command::new("caddy")
            .args(["validate", "--adapter", "caddyfile", "--config"])
            .arg(&file)
            .env("XDG_DATA_HOME", dir.path())
            .env("XDG_CONFIG_HOME", dir.path())
            .output()
            .expect("caddy runs (Debian package caddy)");
        let said =
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success() && said.contains("Valid configuration"), "{scenario}: {said}");
    }
}
