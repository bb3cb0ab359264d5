//! systemd integration: `Type=notify` readiness, reload and stop notifications and watchdog
//! pings, received on a real unix datagram socket passed as `NOTIFY_SOCKET`; and the shipped
//! unit file checked by `systemd-analyze verify` where systemd is installed; and
//! `portcullis doctor` on this host.

mod common;

use std::os::unix::net::UnixDatagram;
use std::time::Instant;

use common::gateway::binary;
use common::{Gateway, LONG, Upstream, config, upstream_toml};

/// Receives datagrams until one satisfies `want`; returns every message seen, in order.
fn until(sock: &UnixDatagram, want: impl Fn(&str) -> bool) -> Vec<String> {
    let deadline = Instant::now() + LONG;
    let mut seen = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no matching notification; saw {seen:?}");
        sock.set_read_timeout(Some(left)).expect("timeout");
        let n = sock.recv(&mut buf).unwrap_or_else(|e| panic!("no notification ({e}); saw {seen:?}"));
        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
        let done = want(&msg);
        seen.push(msg);
        if done {
            return seen;
        }
    }
}

#[test]
fn notifies_ready_reloading_stopping_and_pings_the_watchdog() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).expect("bind the notify socket");
    let app = Upstream::echo("app");
    let toml = config("", &upstream_toml("app", app.addr));
    let path_s = path.display().to_string();
    let mut gw = Gateway::start_with_env(&toml, &[("NOTIFY_SOCKET", &path_s), ("WATCHDOG_USEC", "300000")]);

    // READY=1 comes once every shard listens: the listening lines are already printed by now.
    let seen = until(&sock, |m| m == "READY=1");
    assert!(seen.iter().all(|m| m == "READY=1"), "nothing before readiness: {seen:?}");
    let seen = until(&sock, |m| m == "WATCHDOG=1");
    assert!(seen.iter().all(|m| m == "WATCHDOG=1"), "{seen:?}");

    gw.signal("HUP");
    let seen = until(&sock, |m| m.starts_with("RELOADING=1"));
    let reloading = seen.last().expect("message");
    let usec: u64 = reloading
        .lines()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("RELOADING=1 carries MONOTONIC_USEC: {reloading:?}"));
    assert!(usec > 0);
    until(&sock, |m| m == "READY=1");
    gw.wait_for_log("config generation 2 applied", LONG);

    gw.signal("TERM");
    until(&sock, |m| m == "STOPPING=1");
    assert!(gw.wait_exit(LONG).success());
}

#[test]
fn without_notify_socket_nothing_is_sent_and_it_still_starts() {
    let app = Upstream::echo("app");
    let gw = Gateway::start(&config("", &upstream_toml("app", app.addr)));
    assert_eq!(common::get(gw.addr, "/").status, 404);
    assert!(!gw.logs().iter().any(|l| l.contains("cannot notify")), "{:?}", gw.logs());
}

#[test]
fn unit_file_passes_systemd_analyze_verify() {
    let Ok(out) = std::process::Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("systemd-analyze is not installed; skipping (CI installs systemd)");
        return;
    };
    assert!(out.status.success());
    let unit = include_str!("../systemd/portcullis.service");
    assert!(unit.contains("\nType=notify\n"), "Type=notify");
    assert!(unit.contains("\nWatchdogSec="), "watchdog");
    // The unit names /usr/local/bin/portcullis, which verify wants to exist: point it at the
    // binary under test, in a copy named like the real unit.
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = dir.path().join("portcullis.service");
    std::fs::write(&copy, unit.replace("/usr/local/bin/portcullis", binary())).expect("write");
    let out = std::process::Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&copy)
        .output()
        .expect("run systemd-analyze");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let relevant: Vec<&str> = stderr.lines().filter(|l| l.contains("portcullis.service")).collect();
    assert!(out.status.success() && relevant.is_empty(), "systemd-analyze verify: {stderr}");
}

#[test]
fn doctor_reports_every_check_with_advice() {
    let out = std::process::Command::new(binary()).arg("doctor").output().expect("run doctor");
    let text = String::from_utf8_lossy(&out.stdout);
    for name in ["io_uring", "RLIMIT_MEMLOCK", "RLIMIT_NOFILE", "somaxconn", "shards vs CPUs", "UDP buffers"]
    {
        assert!(text.contains(name), "doctor lacks {name}:\n{text}");
    }
    let warned = text.lines().any(|l| l.starts_with("WARN") || l.starts_with("FAIL"));
    assert_eq!(warned, text.contains("-> "), "every warning carries advice:\n{text}");
    assert_eq!(out.status.success(), !text.lines().any(|l| l.starts_with("FAIL")), "{text}");
}
