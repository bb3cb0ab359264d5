//! The Portcullis peer config of the benchmark harness (`bench/peers/portcullis.toml`), rendered
//! for every scenario by the harness's own renderer (`bench/lib/peers.sh`, real bash and awk),
//! must pass `portcullis check`: a config schema change that breaks the benchmark fails here, not
//! in the next benchmark run.

mod common;

use std::path::Path;
use std::process::Command;

use common::gateway::binary;
use common::tls::Pki;

const SCENARIOS: &[&str] = &["plain", "tls", "h2", "routes", "jwt", "ratelimit"];

/// Renders `bench/peers/portcullis.toml` for `scenario` into `out` with the harness's renderer.
fn render(scenario: &str, out: &Path, cert: &Path, key: &Path) {
    let root = env!("CARGO_MANIFEST_DIR");
    let status = Command::new("bash")
        .arg("-c")
        .arg(r#"set -eu; source bench/lib/common.sh; source bench/lib/peers.sh; render bench/peers/portcullis.toml "$1" "$2""#)
        .arg("render")
        .args([scenario, out.to_str().expect("utf-8 path")])
        .current_dir(root)
        .env("ROUTES", "1000")
        .env("R_PORT", "0")
        .env("R_UP_PORT", "9")
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
        assert_eq!(text.contains("[listeners.tls]"), matches!(*scenario, "tls" | "h2"), "{scenario}: TLS");
        assert_eq!(text.contains("[[auth.jwt]]"), *scenario == "jwt", "{scenario}: JWT");
        assert_eq!(text.contains("rate_limits = "), *scenario == "ratelimit", "{scenario}: rate limit");
    }
}
