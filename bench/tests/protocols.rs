//! Integration tests of `portcullis-bench load --proto h2|h3`: the real binary for about a
//! second against the real reference upstream, which answers HTTP/2 cleartext (prior
//! knowledge) on its TCP port and HTTP/3 on the same UDP port (`--h3`, self-signed, loaded with
//! `--insecure`). Checks the JSON report: protocol, streams, requests, zero errors.

mod common;

use common::{Upstream, check_common, free_port, load, load_with_stderr};

#[test]
fn h2c_closed_loop_multiplexes_streams() {
    let up = Upstream::start();
    let url = format!("http://127.0.0.1:{}/", up.port);
    let r = load(&[&url, "--proto", "h2", "-c", "2", "-m", "8", "-t", "2", "-w", "300ms", "-d", "1s"]);
    check_common(&r);
    assert_eq!(r["protocol"], "h2c");
    assert_eq!(r["mode"], "closed");
    assert_eq!(r["streams"], 8);
    assert_eq!(r["connections"], 2);
    assert!(r["requests"].as_u64().unwrap_or(0) > 200, "{r}");
}

#[test]
fn h2c_and_h1_share_the_upstream_port() {
    // The upstream tells HTTP/2 from HTTP/1.1 by the preface: both work on one port.
    let up = Upstream::start();
    let url = format!("http://127.0.0.1:{}/", up.port);
    let h1 = load(&[&url, "-c", "1", "-w", "100ms", "-d", "300ms"]);
    check_common(&h1);
    assert_eq!(h1["protocol"], "h1");
    let h2 = load(&[&url, "--proto", "h2", "-c", "1", "-m", "2", "-w", "100ms", "-d", "300ms"]);
    check_common(&h2);
    assert!(h2["requests"].as_u64().unwrap_or(0) > 0, "{h2}");
}

#[test]
fn h2c_open_loop_holds_the_offered_rate() {
    let up = Upstream::start();
    let url = format!("http://127.0.0.1:{}/", up.port);
    let r = load(&[&url, "--proto", "h2", "-c", "2", "-m", "4", "-r", "800", "-w", "300ms", "-d", "1s"]);
    check_common(&r);
    assert_eq!(r["mode"], "open");
    // The schedule is fixed in advance over the 2 x 4 stream slots: exactly rate x duration.
    assert_eq!(r["requests"], 800, "{r}");
    assert!(r["send_lag_us"]["p50"].is_number());
}

#[test]
fn h3_closed_and_open_loop_against_the_upstream() {
    let up = Upstream::start_with(&["--h3"]);
    let url = format!("https://127.0.0.1:{}/", up.port);
    let r = load(&[&url, "--proto", "h3", "-k", "-c", "2", "-m", "4", "-w", "300ms", "-d", "1s"]);
    check_common(&r);
    assert_eq!(r["protocol"], "h3");
    assert_eq!(r["streams"], 4);
    assert!(r["requests"].as_u64().unwrap_or(0) > 100, "{r}");
    let r =
        load(&[&url, "--proto", "h3", "-k", "-c", "2", "-m", "2", "-r", "400", "-w", "300ms", "-d", "1s"]);
    check_common(&r);
    assert_eq!(r["mode"], "open");
    assert_eq!(r["requests"], 400, "{r}");
}

#[test]
fn h3_without_a_server_counts_connect_errors() {
    let port = free_port(true);
    let url = format!("https://127.0.0.1:{port}/");
    let (r, stderr) = load_with_stderr(&[
        &url,
        "--proto",
        "h3",
        "-k",
        "-c",
        "1",
        "-w",
        "0s",
        "-d",
        "600ms",
        "--timeout",
        "300ms",
    ]);
    assert_eq!(r["requests"], 0);
    assert!(stderr.contains("first connect error: QUIC/HTTP/3"), "{stderr}");
    assert!(r["errors"]["connect"].as_u64().unwrap_or(0) > 0, "{r}");
    assert_eq!(r["errors_total"], r["errors"]["connect"]);
}

#[test]
fn h2_over_tls_to_a_cleartext_port_names_the_handshake_failure() {
    let up = Upstream::start();
    let url = format!("https://127.0.0.1:{}/", up.port);
    let (r, stderr) = load_with_stderr(&[
        &url,
        "--proto",
        "h2",
        "-k",
        "-c",
        "1",
        "-w",
        "0s",
        "-d",
        "300ms",
        "--timeout",
        "1s",
    ]);
    assert_eq!(r["requests"], 0);
    assert_eq!(r["protocol"], "h2");
    assert!(r["errors"]["connect"].as_u64().unwrap_or(0) > 0, "{r}");
    assert!(stderr.contains("first connect error: TLS handshake"), "{stderr}");
}

#[test]
fn https_without_a_trust_decision_is_refused() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis-bench"))
        .args(["load", "https://127.0.0.1:1/", "--proto", "h2", "-d", "100ms"])
        .output()
        .expect("run load");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--insecure"));
}
