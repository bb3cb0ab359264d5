//! systemd's `sd_notify` protocol in a few lines: one datagram per state change to the unix
//! socket named by `NOTIFY_SOCKET` (a path, or `@name` for the abstract namespace), and the
//! watchdog interval from `WATCHDOG_USEC`.
//!
//! Owns: talking to the service manager. Must not: decide when the gateway is ready (the
//! supervisor and the binary call it at the right moments).

use std::ffi::OsStr;
use std::io;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// Sends `state` (e.g. `"READY=1"`) to the service manager. Returns `Ok(false)` when not run
/// under a manager that asked for notifications (no `NOTIFY_SOCKET`).
pub fn notify(state: &str) -> io::Result<bool> {
    match std::env::var_os("NOTIFY_SOCKET") {
        Some(target) => send_state(&target, state).map(|()| true),
        None => Ok(false),
    }
}

/// Sends `state` to the socket `target` names: a path, or `@name` in the abstract namespace.
fn send_state(target: &OsStr, state: &str) -> io::Result<()> {
    let sock = UnixDatagram::unbound()?;
    let bytes = target.as_encoded_bytes();
    if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        sock.send_to_addr(state.as_bytes(), &addr)?;
    } else {
        sock.send_to(state.as_bytes(), target)?;
    }
    Ok(())
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
    let pid = std::env::var("WATCHDOG_PID").ok();
    let usec = std::env::var("WATCHDOG_USEC").ok();
    watchdog_from(pid.as_deref(), usec.as_deref(), std::process::id())
}

/// The interval `WATCHDOG_USEC` = `usec` asks for, when `WATCHDOG_PID` = `pid` (if set) is `me`.
fn watchdog_from(pid: Option<&str>, usec: Option<&str>, me: u32) -> Option<Duration> {
    if let Some(pid) = pid
        && pid.trim().parse::<u32>().ok() != Some(me)
    {
        return None;
    }
    let usec: u64 = usec?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}

#[cfg(test)]
mod tests {
    use super::*;

    // The tests drive the functions behind the environment lookups: changing the process
    // environment while other test threads run is unsound (`std::env::set_var`).
    #[test]
    fn sends_datagrams_to_path_and_abstract_sockets() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify.sock");
        let rx = UnixDatagram::bind(&path).expect("bind");
        rx.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        send_state(path.as_os_str(), "READY=1").expect("send");
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
        send_state(OsStr::new(&format!("@{name}")), "STOPPING=1").expect("send");
        let n = abs.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..n], b"STOPPING=1");
    }

    #[test]
    fn watchdog_interval_is_for_this_process_only() {
        assert_eq!(watchdog_from(Some("42"), Some("2000000"), 42), Some(Duration::from_secs(2)));
        assert_eq!(watchdog_from(None, Some(" 500000 "), 42), Some(Duration::from_millis(500)));
        assert_eq!(watchdog_from(Some("1"), Some("2000000"), 42), None, "meant for another process");
        assert_eq!(watchdog_from(None, None, 42), None);
        assert_eq!(watchdog_from(None, Some("0"), 42), None);
        assert_eq!(watchdog_from(None, Some("soon"), 42), None);
    }
}
