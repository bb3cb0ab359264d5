//! Helpers of the bench integration tests: the real reference upstream on a free port and the
//! real `load` binary.
#![allow(dead_code)]

use std::{
    io::{BufRead, BufReader},
    net::{TcpListener, UdpSocket},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_portcullis-bench");

/// The reference upstream on a free port; killed on drop.
pub struct Upstream {
    child: Child,
    /// The TCP (and, with `--h3`, UDP) port.
    pub port: u16,
}

impl Upstream {
    /// HTTP/1.1 and h2c.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// With extra `upstream` arguments.
    pub fn start_with(extra: &[&str]) -> Self {
        let h3 = extra.contains(&"--h3");
        let port = free_port(h3);
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
                if line.contains("listening on") && (!h3 || line.contains("h3 listening")) {
                    let _ = tx.send(());
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(30)).expect("upstream printed its listening line");
        Self { child, port }
    }
}

/// A port free on TCP (and on UDP when `udp`): bound to learn it, released for the upstream.
pub fn free_port(udp: bool) -> u16 {
    for _ in 0..50 {
        let port = TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        if !udp || UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no port free on both TCP and UDP");
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `load` with `args`; its JSON report.
pub fn load(args: &[&str]) -> Value {
    load_with_stderr(args).0
}

/// Runs `load` with `args`; its JSON report and its stderr.
pub fn load_with_stderr(args: &[&str]) -> (Value, String) {
    let out = Command::new(BIN).arg("load").args(args).output().expect("run load");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "load failed: {stderr}");
    (serde_json::from_slice(&out.stdout).expect("stdout is one JSON document"), stderr)
}

/// What every healthy run reports: no errors, ordered percentiles, bytes for every response.
pub fn check_common(r: &Value) {
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
