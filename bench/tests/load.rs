//! Integration test of `portcullis-bench load`: runs the real binary for about a second against
//! the real reference upstream (`portcullis-bench upstream`) on a free port, closed and open
//! loop, and checks the JSON report.

use std::{
    io::{BufRead, BufReader},
    net::TcpListener,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_portcullis-bench");

/// The reference upstream on a free port; killed on drop.
struct Upstream {
    child: Child,
    port: u16,
}

impl Upstream {
    fn start() -> Self {
        Self::start_with(&[])
    }

    fn start_with(extra: &[&str]) -> Self {
        // Bind port 0 to learn a free port, release it, then let the upstream take it.
        let port = TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        let mut child = Command::new(BIN)
            .args(["upstream", "--listen", &format!("127.0.0.1:{port}")])
            .args(extra)
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn upstream");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("listening on") {
                    let _ = tx.send(());
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(30)).expect("upstream printed its listening line");
        Self { child, port }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn load(args: &[&str]) -> Value {
    let out = Command::new(BIN).arg("load").args(args).output().expect("run load");
    assert!(out.status.success(), "load failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("stdout is one JSON document")
}

fn check_common(r: &Value) {
    assert_eq!(r["tool"], "portcullis-bench load");
    assert_eq!(r["errors_total"], 0, "{r}");
    assert_eq!(r["reconnects"], 0, "{r}");
    let l = &r["latency_us"];
    let get = |k: &str| l[k].as_f64().unwrap_or_else(|| panic!("latency_us.{k} in {r}"));
    assert!(get("min") > 0.0);
    assert!(get("p50") <= get("p90") && get("p90") <= get("p99"));
    assert!(get("p99") <= get("p99.9") && get("p99.9") <= get("max"));
    assert_eq!(l["count"], r["requests"]);
    // 13-byte body plus a head: every counted response carried bytes.
    assert!(r["bytes_read"].as_u64().unwrap_or(0) >= r["requests"].as_u64().unwrap_or(u64::MAX) * 13);
}

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
