//! Sub-millisecond waits for the open-loop sender. monoio's timer wheel has a 1 ms resolution,
//! which would bunch arrivals into 1 ms bursts; each connection instead owns a `timerfd` armed
//! at the absolute intended send time and read through io_uring. Owns only that descriptor.

use std::{
    cell::Cell,
    os::fd::{FromRawFd, RawFd},
    time::{Duration, Instant},
};

use anyhow::{Result, bail};
use monoio::fs::File;

/// A one-shot absolute timer on CLOCK_MONOTONIC (the clock `Instant` reads on Linux).
pub struct Pacer {
    file: File,
    fd: RawFd,
    /// An `Instant` and the CLOCK_MONOTONIC reading taken right after it.
    anchor: (Instant, Duration),
    buf: Cell<Option<Vec<u8>>>,
}

fn monotonic_now() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

impl Pacer {
    /// The open-loop timer of one sender; on failure says why, counts a connect error in
    /// `errors` and gives `None` (the sender then stops).
    pub fn for_sender(errors: &mut super::errors::Errors) -> Option<Self> {
        match Self::new() {
            Ok(p) => Some(p),
            Err(e) => {
                eprintln!("portcullis-bench load: {e:#}");
                errors.connect += 1;
                None
            }
        }
    }

    /// Creates the timer (non-blocking, so io_uring polls it instead of parking a worker).
    pub fn new() -> Result<Self> {
        // SAFETY: plain syscall with constant arguments; the result is checked.
        let fd =
            unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC) };
        if fd < 0 {
            bail!("timerfd_create: {}", std::io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor this function owns; the File takes it over.
        let std_file = unsafe { std::fs::File::from_raw_fd(fd) };
        let file = File::from_std(std_file)?;
        let anchor = (Instant::now(), monotonic_now());
        Ok(Self { file, fd, anchor, buf: Cell::new(Some(vec![0; 8])) })
    }

    /// Waits until `at` (returns at once when it has passed).
    pub async fn until(&self, at: Instant) -> Result<()> {
        if at <= Instant::now() {
            return Ok(());
        }
        let abs = self.anchor.1 + at.saturating_duration_since(self.anchor.0);
        let spec = libc::itimerspec {
            it_interval: libc::timespec { tv_sec: 0, tv_nsec: 0 },
            it_value: libc::timespec { tv_sec: abs.as_secs() as _, tv_nsec: abs.subsec_nanos() as _ },
        };
        // SAFETY: `self.fd` is the timerfd owned by `self.file`; `spec` outlives the call.
        let rc =
            unsafe { libc::timerfd_settime(self.fd, libc::TFD_TIMER_ABSTIME, &spec, std::ptr::null_mut()) };
        if rc != 0 {
            bail!("timerfd_settime: {}", std::io::Error::last_os_error());
        }
        let buf = self.buf.take().unwrap_or_else(|| vec![0; 8]);
        let (res, buf) = self.file.read_at(buf, 0).await;
        self.buf.set(Some(buf));
        res?;
        Ok(())
    }
}
