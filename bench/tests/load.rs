//! Integration test of `portcullis-bench load`: runs the real binary for about a second against
//! the real reference upstream (`portcullis-bench upstream`) on a free port, closed and open
//! loop, and checks the JSON report.

mod common;

use std::net::TcpListener;

use common::{Upstream, check_common, load};

#[test]
fn closed_loop_with_pipelining_reports_throughput_and_percentiles() {
    let up = Upstream::start();
    let url = format!("http://127.0.0.1:{}/", up.port);
    let r = load(&[&url, "-c", "4", "-p", "4", "-t", "2", "-w", "300ms", "-d", "1s"]);
    check_common(&r);
    assert_eq!(r["mode"], "closed");
    assert_eq!(r["pipeline"], 4);
    assert_eq!(r["threads"], 2);
    assert!(r["rate"].is_null() && r["send_lag_us"].is_null());
    // Even a debug build on a loaded 2-core machine does far more than this.
    assert!(r["requests"].as_u64().unwrap_or(0) > 500, "{r}");
}

#[test]
fn open_loop_holds_the_offered_rate() {
    let up = Upstream::start();
    let url = format!("http://127.0.0.1:{}/", up.port);
    let r = load(&[&url, "-c", "8", "-r", "1000", "-w", "300ms", "-d", "1s"]);
    check_common(&r);
    assert_eq!(r["mode"], "open");
    assert_eq!(r["rate"], 1000.0);
    // The schedule is fixed in advance: exactly rate x duration requests are intended in the
    // window, and all of them complete against a healthy upstream.
    assert_eq!(r["requests"], 1000, "{r}");
    // Responses to the last requests may land just after the window: throughput is within a
    // few percent of the offered rate, never above it.
    let rps = r["rps"].as_f64().unwrap_or(0.0);
    assert!((800.0..=1000.0).contains(&rps), "{r}");
    assert!(r["send_lag_us"]["p50"].is_number());
}

#[test]
fn dead_target_counts_connect_errors_and_exits_cleanly() {
    let port = TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let url = format!("http://127.0.0.1:{port}/");
    let r = load(&[&url, "-c", "2", "-w", "0s", "-d", "300ms", "--timeout", "1s"]);
    assert_eq!(r["requests"], 0);
    assert!(r["errors"]["connect"].as_u64().unwrap_or(0) > 0, "{r}");
    assert_eq!(r["errors_total"], r["errors"]["connect"]);
}

#[test]
fn upstream_delay_shows_in_the_latency() {
    let up = Upstream::start_with(&["--delay", "20ms"]);
    let url = format!("http://127.0.0.1:{}/", up.port);
    let r = load(&[&url, "-c", "2", "-w", "100ms", "-d", "500ms"]);
    check_common(&r);
    // Every response waited at least the delay (timers never fire early); one connection
    // cannot exceed 1 request per 20 ms.
    let min = r["latency_us"]["min"].as_f64().unwrap_or(0.0);
    assert!(min >= 19_000.0, "{r}");
    assert!(r["requests"].as_u64().unwrap_or(u64::MAX) <= 2 * 500 / 20 + 2, "{r}");
}
