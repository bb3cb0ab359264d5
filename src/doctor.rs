//! `portcullis doctor`: checks the host against what the gateway needs and prints what to
//! change, each with why. Reads only (`/proc/sys`, rlimits, a throw-away io_uring probe).
//!
//! Owns: the checks and their advice. Must not: change the host (`tuning/apply.sh` does that).

use std::path::Path;
use std::process::ExitCode;

use portcullis_core::config::{self, DriverMode};
use portcullis_core::runtime::{allowed_cpus, choose_driver};

/// How a check came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// Fine.
    Ok,
    /// Works, but costs performance or headroom.
    Warn,
    /// Will not work as configured.
    Fail,
}

/// One finding.
#[derive(Debug)]
pub struct Finding {
    /// Outcome.
    pub level: Level,
    /// What was checked.
    pub name: &'static str,
    /// What was found.
    pub value: String,
    /// Why it matters and what to change (empty when fine).
    pub advice: String,
}

fn finding(level: Level, name: &'static str, value: String, advice: &str) -> Finding {
    Finding { level, name, value, advice: if level == Level::Ok { String::new() } else { advice.to_owned() } }
}

const INFINITY: u64 = u64::MAX;

/// `RLIMIT_MEMLOCK` (bytes; `u64::MAX` = unlimited) for a process with or without CAP_IPC_LOCK.
pub fn memlock(limit: u64, root: bool) -> Finding {
    let value = if limit == INFINITY { "unlimited".to_owned() } else { format!("{} KiB", limit / 1024) };
    let level = if root || limit == INFINITY || limit >= 64 << 20 {
        Level::Ok
    } else if limit <= 128 << 10 {
        Level::Fail
    } else {
        Level::Warn
    };
    finding(
        level,
        "locked memory (RLIMIT_MEMLOCK)",
        value,
        "io_uring rings and registered buffers are charged to it; at 128 KiB or less even a default \
         ring fails (the gateway falls back to epoll). Set LimitMEMLOCK=infinity in the unit, or \
         `memlock unlimited` in /etc/security/limits.d/",
    )
}

/// `RLIMIT_NOFILE` soft limit.
pub fn nofile(soft: u64) -> Finding {
    let level = if soft >= 65536 {
        Level::Ok
    } else if soft >= 4096 {
        Level::Warn
    } else {
        Level::Fail
    };
    finding(
        level,
        "open files (RLIMIT_NOFILE)",
        soft.to_string(),
        "one descriptor per client connection and per pooled upstream connection; set \
         LimitNOFILE=1048576 in the unit (and keep fs.nr_open at least that high)",
    )
}

/// `net.core.somaxconn` against the largest configured backlog.
pub fn somaxconn(value: u64, backlog: u64) -> Finding {
    let level = if value >= backlog.max(4096) { Level::Ok } else { Level::Warn };
    finding(
        level,
        "net.core.somaxconn",
        format!("{value} (largest listener backlog {backlog})"),
        "caps every listen backlog: connection bursts beyond it are dropped; set 65535 \
         (tuning/sysctl.conf)",
    )
}

/// Shards configured against CPUs allowed.
pub fn cpus(shards: usize, allowed: usize) -> Finding {
    let level = if shards <= allowed { Level::Ok } else { Level::Warn };
    finding(
        level,
        "shards vs CPUs",
        format!("{} shards on {allowed} allowed CPUs", if shards == 0 { allowed } else { shards }),
        "more shards than CPUs makes pinned shards share cores; set server.shards = 0 (one per CPU)",
    )
}

/// UDP socket buffer ceilings (QUIC needs large ones).
pub fn udp_buffers(rmem_max: u64, wmem_max: u64) -> Finding {
    let want = 7_500_000;
    let level = if rmem_max >= want && wmem_max >= want { Level::Ok } else { Level::Warn };
    finding(
        level,
        "UDP buffers (net.core.rmem_max / wmem_max)",
        format!("{rmem_max} / {wmem_max}"),
        "HTTP/3 (QUIC) loses packets under load with small UDP buffers; set both to 7500000 \
         (tuning/sysctl.conf)",
    )
}

/// Ephemeral port range width (upstream connections).
pub fn port_range(low: u64, high: u64) -> Finding {
    let width = high.saturating_sub(low) + 1;
    let level = if width >= 50_000 { Level::Ok } else { Level::Warn };
    finding(
        level,
        "net.ipv4.ip_local_port_range",
        format!("{low}-{high} ({width} ports)"),
        "every upstream ip:port can have at most this many connections (incl. TIME_WAIT); widen \
         to 10240 65535 (tuning/sysctl.conf)",
    )
}

fn sysctl(name: &str) -> Option<Vec<u64>> {
    let text = std::fs::read_to_string(format!("/proc/sys/{}", name.replace('.', "/"))).ok()?;
    text.split_whitespace().map(|v| v.parse().ok()).collect()
}

fn rlimit(resource: libc::__rlimit_resource_t) -> u64 {
    let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the valid struct we pass.
    if unsafe { libc::getrlimit(resource, &mut r) } != 0 {
        return 0;
    }
    if r.rlim_cur == libc::RLIM_INFINITY { INFINITY } else { r.rlim_cur }
}

/// Runs every check and prints them; exit 1 when any fails.
pub fn run(config_path: Option<&Path>) -> ExitCode {
    let cfg = match config_path.map(config::load_file) {
        Some(Ok(c)) => Some(c),
        Some(Err(e)) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
        None => None,
    };
    let mut out = Vec::new();
    match choose_driver(DriverMode::Auto, 256) {
        Ok((d, None)) => out.push(finding(Level::Ok, "io_uring", d.describe(), "")),
        Ok((_, Some(why))) | Err(why) => out.push(Finding {
            level: Level::Warn,
            name: "io_uring",
            value: "unavailable".to_owned(),
            advice: format!("{why}; the gateway runs on epoll (noticeably more CPU per request)"),
        }),
    }
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    out.push(memlock(rlimit(libc::RLIMIT_MEMLOCK), root));
    out.push(nofile(rlimit(libc::RLIMIT_NOFILE)));
    let backlog =
        cfg.as_ref().and_then(|c| c.listeners.iter().map(|l| u64::from(l.backlog)).max()).unwrap_or(1024);
    if let Some(v) = sysctl("net.core.somaxconn") {
        out.push(somaxconn(v[0], backlog));
    }
    out.push(cpus(cfg.as_ref().map_or(0, |c| c.server.shards), allowed_cpus().len()));
    if let (Some(r), Some(w)) = (sysctl("net.core.rmem_max"), sysctl("net.core.wmem_max")) {
        out.push(udp_buffers(r[0], w[0]));
    }
    if let Some(v) = sysctl("net.ipv4.ip_local_port_range").filter(|v| v.len() == 2) {
        out.push(port_range(v[0], v[1]));
    }
    let mut failed = false;
    for f in &out {
        let tag = match f.level {
            Level::Ok => "ok  ",
            Level::Warn => "WARN",
            Level::Fail => {
                failed = true;
                "FAIL"
            }
        };
        println!("{tag} {}: {}", f.name, f.value);
        if !f.advice.is_empty() {
            println!("     -> {}", f.advice);
        }
    }
    if failed { ExitCode::from(1) } else { ExitCode::SUCCESS }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds() {
        assert_eq!(memlock(INFINITY, false).level, Level::Ok);
        assert_eq!(memlock(8 << 20, false).level, Level::Warn);
        assert_eq!(memlock(64 << 10, false).level, Level::Fail);
        assert_eq!(memlock(64 << 10, true).level, Level::Ok, "root has CAP_IPC_LOCK");
        assert_eq!(nofile(1024).level, Level::Fail);
        assert_eq!(nofile(1 << 20).level, Level::Ok);
        assert_eq!(somaxconn(4096, 8192).level, Level::Warn);
        assert_eq!(somaxconn(65535, 1024).level, Level::Ok);
        assert_eq!(cpus(4, 2).level, Level::Warn);
        assert_eq!(cpus(0, 2).level, Level::Ok);
        assert_eq!(udp_buffers(212_992, 212_992).level, Level::Warn);
        assert_eq!(port_range(32768, 60999).level, Level::Warn);
        assert_eq!(port_range(10240, 65535).level, Level::Ok);
        assert!(nofile(1024).advice.contains("LimitNOFILE"));
        assert!(nofile(1 << 20).advice.is_empty());
    }
}
