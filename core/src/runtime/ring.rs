//! io_uring probing and ring construction, with the epoll fallback decision.
//!
//! Owns: which driver a shard runs and with which ring flags. Must not: spawn threads or know
//! any protocol. On this machine `IORING_SETUP_COOP_TASKRUN` cut a bare proxy's CPU per request
//! by a third (completions no longer interrupt the loop as task work), so every ring asks for
//! COOP_TASKRUN + SINGLE_ISSUER + DEFER_TASKRUN and falls back flag by flag on older kernels.

use std::io;

use crate::config::DriverMode;

/// Which ring flags a successfully probed ring uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingFlags {
    /// COOP_TASKRUN + SINGLE_ISSUER + DEFER_TASKRUN (kernel >= 6.1).
    CoopSingleDefer,
    /// COOP_TASKRUN only (kernel >= 5.19).
    Coop,
    /// No setup flags (older kernels).
    Plain,
}

impl RingFlags {
    /// Human-readable list of flags.
    pub fn describe(self) -> &'static str {
        match self {
            RingFlags::CoopSingleDefer => "COOP_TASKRUN|SINGLE_ISSUER|DEFER_TASKRUN",
            RingFlags::Coop => "COOP_TASKRUN",
            RingFlags::Plain => "none",
        }
    }

    /// An io_uring builder with these flags.
    pub fn builder(self) -> io_uring::Builder {
        let mut b = io_uring::IoUring::builder();
        match self {
            RingFlags::CoopSingleDefer => {
                b.setup_coop_taskrun().setup_single_issuer().setup_defer_taskrun();
            }
            RingFlags::Coop => {
                b.setup_coop_taskrun();
            }
            RingFlags::Plain => {}
        }
        b
    }
}

/// The driver every shard will run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Driver {
    /// io_uring with the given ring flags and entries.
    IoUring {
        /// Setup flags the kernel accepted.
        flags: RingFlags,
        /// Submission queue entries.
        entries: u32,
    },
    /// epoll (monoio's legacy driver).
    Epoll,
}

impl Driver {
    /// Short label for logs and metrics.
    pub fn describe(&self) -> String {
        match self {
            Driver::IoUring { flags, entries } => {
                format!("io_uring (flags {}, {entries} entries)", flags.describe())
            }
            Driver::Epoll => "epoll".to_owned(),
        }
    }
}

/// Why io_uring could not be used.
#[derive(Debug, thiserror::Error)]
#[error("io_uring is unavailable: {reason}")]
pub struct UringUnavailable {
    /// Explanation with a hint at the cause (seccomp, sysctl, memlock, old kernel).
    pub reason: String,
}

fn explain(err: &io::Error) -> String {
    let hint = match err.raw_os_error() {
        Some(libc::ENOSYS) => "kernel built without io_uring or older than 5.1",
        Some(libc::EPERM) => {
            "blocked by seccomp (Docker's default profile) or kernel.io_uring_disabled; \
             allow io_uring_setup/enter/register or run with --security-opt seccomp=unconfined"
        }
        Some(libc::ENOMEM) => {
            "locked memory limit too low: raise RLIMIT_MEMLOCK (LimitMEMLOCK=infinity) or grant CAP_IPC_LOCK"
        }
        Some(libc::EINVAL) => "kernel rejected the ring parameters",
        _ => "unexpected error",
    };
    format!("{err} ({hint})")
}

fn read_disabled_sysctl() -> Option<String> {
    let v = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled").ok()?;
    match v.trim() {
        "0" => None,
        other => Some(format!("kernel.io_uring_disabled = {other}")),
    }
}

/// Probes the kernel once (at start-up, on the control thread) and picks the driver.
///
/// `Auto` falls back to epoll (the caller must warn loudly with the returned reason);
/// `IoUring` turns unavailability into an error; `Epoll` never touches io_uring.
pub fn choose_driver(
    mode: DriverMode,
    entries: u32,
) -> Result<(Driver, Option<UringUnavailable>), UringUnavailable> {
    if mode == DriverMode::Epoll {
        return Ok((Driver::Epoll, None));
    }
    let mut last_err = None;
    for flags in [RingFlags::CoopSingleDefer, RingFlags::Coop, RingFlags::Plain] {
        match flags.builder().build(entries) {
            Ok(ring) => {
                drop(ring);
                return Ok((Driver::IoUring { flags, entries }, None));
            }
            // EINVAL means this flag set is too new for the kernel: try the next one down.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => last_err = Some(e),
            Err(e) => {
                last_err = Some(e);
                break;
            }
        }
    }
    let mut reason = last_err.map(|e| explain(&e)).unwrap_or_else(|| "unknown".to_owned());
    if let Some(sysctl) = read_disabled_sysctl() {
        reason = format!("{reason}; {sysctl}");
    }
    let unavailable = UringUnavailable { reason };
    match mode {
        DriverMode::IoUring => Err(unavailable),
        _ => Ok((Driver::Epoll, Some(unavailable))),
    }
}

/// Runs `fut` to completion on a new runtime of the chosen driver, on the calling thread.
pub fn block_on<F: std::future::Future>(driver: Driver, fut: F) -> io::Result<F::Output> {
    match driver {
        Driver::IoUring { flags, entries } => {
            let mut rt = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
                .with_entries(entries)
                .uring_builder(flags.builder())
                .enable_timer()
                .build()?;
            Ok(rt.block_on(fut))
        }
        Driver::Epoll => {
            let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new().enable_timer().build()?;
            Ok(rt.block_on(fut))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoll_mode_never_probes() {
        let (d, why) = choose_driver(DriverMode::Epoll, 256).expect("epoll always works");
        assert_eq!(d, Driver::Epoll);
        assert!(why.is_none());
    }

    #[test]
    fn auto_picks_a_driver_that_runs() {
        let (d, _) = choose_driver(DriverMode::Auto, 256).expect("auto never refuses");
        let out = block_on(d, async { 41 + 1 }).expect("runtime builds");
        assert_eq!(out, 42);
    }
}
