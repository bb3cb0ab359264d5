//! io_uring runtime construction for the bench tools: tries the ring flags that measured
//! cheapest on this class of machine and falls back when an older kernel refuses one.

use std::fmt;

use anyhow::{Context, Result};
use monoio::{IoUringDriver, Runtime, RuntimeBuilder, time::TimeDriver};

/// Which io_uring setup flags to ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RingMode {
    /// COOP_TASKRUN + SINGLE_ISSUER + DEFER_TASKRUN, falling back to `coop`, then `default`.
    Auto,
    /// COOP_TASKRUN only, falling back to `default`.
    Coop,
    /// No setup flags (monoio's default ring).
    Default,
}

/// The flag set a runtime was actually built with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingFlags {
    /// COOP_TASKRUN + SINGLE_ISSUER + DEFER_TASKRUN.
    Full,
    /// COOP_TASKRUN only.
    Coop,
    /// No setup flags.
    Plain,
}

impl fmt::Display for RingFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RingFlags::Full => "coop_taskrun+single_issuer+defer_taskrun",
            RingFlags::Coop => "coop_taskrun",
            RingFlags::Plain => "default",
        })
    }
}

/// The runtime type every bench tool runs on: io_uring with the timer enabled.
pub type BenchRuntime = Runtime<TimeDriver<IoUringDriver>>;

fn try_build(flags: RingFlags) -> std::io::Result<BenchRuntime> {
    let mut urb = io_uring::IoUring::builder();
    match flags {
        RingFlags::Full => {
            urb.setup_coop_taskrun().setup_single_issuer().setup_defer_taskrun();
        }
        RingFlags::Coop => {
            urb.setup_coop_taskrun();
        }
        RingFlags::Plain => {}
    }
    RuntimeBuilder::<IoUringDriver>::new().uring_builder(urb).enable_timer().build()
}

/// Builds a runtime on the current thread (the ring must stay on it: SINGLE_ISSUER).
pub fn build(mode: RingMode) -> Result<(BenchRuntime, RingFlags)> {
    let ladder: &[RingFlags] = match mode {
        RingMode::Auto => &[RingFlags::Full, RingFlags::Coop, RingFlags::Plain],
        RingMode::Coop => &[RingFlags::Coop, RingFlags::Plain],
        RingMode::Default => &[RingFlags::Plain],
    };
    let mut last = None;
    for &flags in ladder {
        match try_build(flags) {
            Ok(rt) => return Ok((rt, flags)),
            Err(e) => {
                eprintln!("io_uring ring with {flags} refused: {e}; trying fewer flags");
                last = Some(e);
            }
        }
    }
    let err = last.unwrap_or_else(|| std::io::Error::other("no ring flag set to try"));
    Err(err).context("cannot create an io_uring instance (RLIMIT_MEMLOCK? seccomp? io_uring_disabled?)")
}
