//! Process-level knobs the bench tools need: raising RLIMIT_NOFILE and pinning to a CPU.

use anyhow::{Result, bail};

/// Raises the soft RLIMIT_NOFILE to the hard limit; returns the new soft limit.
pub fn raise_nofile() -> Result<u64> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `lim` is a valid, writable rlimit for the duration of the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        bail!("getrlimit(RLIMIT_NOFILE): {}", std::io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: `lim` is a valid rlimit read back from the kernel above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
            bail!("setrlimit(RLIMIT_NOFILE): {}", std::io::Error::last_os_error());
        }
    }
    Ok(lim.rlim_cur)
}

/// Sets RLIMIT_NOFILE (soft and hard) to `n`; raising the hard limit needs CAP_SYS_RESOURCE.
pub fn set_nofile(n: u64) -> Result<()> {
    let lim = libc::rlimit { rlim_cur: n, rlim_max: n };
    // SAFETY: `lim` is a valid rlimit for the duration of the call.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        bail!(
            "setrlimit(RLIMIT_NOFILE, {n}): {} (raising the hard limit needs root)",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// Pins the calling thread to `cpu`.
pub fn pin(cpu: usize) -> Result<()> {
    let ids = core_affinity::get_core_ids().unwrap_or_default();
    let Some(id) = ids.into_iter().find(|c| c.id == cpu) else {
        bail!("CPU {cpu} is not in this process's affinity set");
    };
    if !core_affinity::set_for_current(id) {
        bail!("pinning to CPU {cpu} failed");
    }
    Ok(())
}
