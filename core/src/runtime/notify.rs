//! systemd's `sd_notify` protocol in a few lines: one datagram per state change to the unix
//! socket named by `NOTIFY_SOCKET` (a path, or `@name` for the abstract namespace), and the
//! watchdog interval from `WATCHDOG_USEC`.
//!
//! Owns: talking to the service manager. Must not: decide when the gateway is ready (the
//! supervisor and the binary call it at the right moments).

use std::io;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// Sends `state` (e.g. `"READY=1"`) to the service manager. Returns `Ok(false)` when not run
/// under a manager that asked for notifications (no `NOTIFY_SOCKET`).
pub fn notify(state: &str) -> io::Result<bool> {
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(false);
    };
    let sock = UnixDatagram::unbound()?;
    let bytes = target.as_encoded_bytes();
    if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        sock.send_to_addr(state.as_bytes(), &addr)?;
    } else {
        sock.send_to(state.as_bytes(), target)?;
    }
    Ok(true)
}

/// Like [`notify`], logging a failure instead of returning it.
pub fn notify_or_log(state: &str) {
    if let Err(e) = notify(state) {
        tracing::warn!(state, error = %e, "cannot notify the service manager");
    }
}

/// The watchdog interval the manager expects pings within (`WATCHDOG_USEC`, when meant for this
/// process per `WATCHDOG_PID`).
pub fn watchdog_interval() -> Option<Duration> {
    if let Ok(pid) = std::env::var("WATCHDOG_PID")
        && pid.trim().parse::<u32>().ok() != Some(std::process::id())
    {
        return None;
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}

#[cfg(test)]
mod tests {
    use super::*;

    // One test touches the process environment, so the cases run in sequence inside it.
    #[test]
    fn sends_datagrams_to_path_and_abstract_sockets() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify.sock");
        let rx = UnixDatagram::bind(&path).expect("bind");
        rx.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        // SAFETY: no other test in this crate reads or writes these variables.
        unsafe { std::env::set_var("NOTIFY_SOCKET", &path) };
        assert!(notify("READY=1").expect("send"));
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..n], b"READY=1");

        let name = format!("portcullis-test-{}", std::process::id());
        use std::os::linux::net::SocketAddrExt;
        let abs = UnixDatagram::bind_addr(
            &std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).expect("name"),
        )
        .expect("bind abstract");
        abs.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        unsafe { std::env::set_var("NOTIFY_SOCKET", format!("@{name}")) };
        assert!(notify("STOPPING=1").expect("send"));
        let n = abs.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..n], b"STOPPING=1");

        unsafe { std::env::remove_var("NOTIFY_SOCKET") };
        assert!(!notify("READY=1").expect("no socket is fine"));

        unsafe { std::env::set_var("WATCHDOG_USEC", "2000000") };
        unsafe { std::env::set_var("WATCHDOG_PID", std::process::id().to_string()) };
        assert_eq!(watchdog_interval(), Some(Duration::from_secs(2)));
        unsafe { std::env::set_var("WATCHDOG_PID", "1") };
        assert_eq!(watchdog_interval(), None, "meant for another process");
        unsafe { std::env::remove_var("WATCHDOG_PID") };
        unsafe { std::env::remove_var("WATCHDOG_USEC") };
    }
}
