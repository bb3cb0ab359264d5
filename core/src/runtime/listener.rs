//! Listening sockets: one SO_REUSEPORT socket per listener per shard, so the kernel spreads
//! connections over shards and no accept lock is shared.
//!
//! SO_REUSEPORT would also let a second gateway join a port another process already serves,
//! and the kernel would silently split connections between the two. So before the first
//! reuse-port bind of a port, a plain bind (no SO_REUSEPORT) probes it; if that finds a live
//! holder, the start is refused with the port, the holder's PID and name. The one deliberate
//! exception is a zero-downtime hand-over: [`HANDOVER_ENV`] names the PID being replaced.
//!
//! Owns: binding, socket options and the shared-port refusal. Must not: accept or serve
//! connections.

use std::io;
use std::net::{SocketAddr, TcpListener, UdpSocket};

use socket2::{Domain, Protocol, Socket, Type};

use super::port_owner::{self, Transport};

/// Environment variable naming the PID a new process takes the ports over from (the documented
/// zero-downtime restart: start the new process beside the old one, then drain the old). Only
/// ports whose every holder is that PID may be shared.
pub const HANDOVER_ENV: &str = "PORTCULLIS_HANDOVER_FROM";

/// The PID named by [`HANDOVER_ENV`], if any.
pub fn handover_from_env() -> Option<u32> {
    std::env::var(HANDOVER_ENV).ok()?.trim().parse().ok()
}

fn proto_name(t: Transport) -> &'static str {
    match t {
        Transport::Tcp => "tcp",
        Transport::Udp => "udp",
    }
}

/// Refuses `addr` when another live process already serves its port (see the module comment);
/// `handover` is the PID allowed to share it. Port 0 is always free.
pub fn ensure_port_unshared(addr: SocketAddr, transport: Transport, handover: Option<u32>) -> io::Result<()> {
    if addr.port() == 0 {
        return Ok(());
    }
    let (ty, proto) = match transport {
        Transport::Tcp => (Type::STREAM, Protocol::TCP),
        Transport::Udp => (Type::DGRAM, Protocol::UDP),
    };
    let probe = Socket::new(Domain::for_address(addr), ty, Some(proto))?;
    if transport == Transport::Tcp {
        // Connections of a process that has exited (TIME_WAIT) do not count as a holder.
        probe.set_reuse_address(true)?;
    }
    if addr.is_ipv6() {
        probe.set_only_v6(true)?;
    }
    match probe.bind(&addr.into()) {
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => {}
        // Free, or another problem (no such address, no permission) the real bind reports.
        _ => return Ok(()),
    }
    drop(probe);
    let holders = port_owner::holders(addr, transport);
    if let Some(h) = &holders {
        if h.sockets == 0 {
            // Only sockets that neither listen nor serve (outbound connections) use the port.
            return Ok(());
        }
        if h.only_this_process() {
            // Another listener of this very config (e.g. `0.0.0.0:P` beside `127.0.0.1:P`).
            return Ok(());
        }
        let others = h.others();
        if let Some(pid) = handover
            && others.processes.len() == 1
            && others.processes[0].pid == pid
        {
            tracing::info!(port = addr.port(), pid, "taking the port over from the process being replaced");
            return Ok(());
        }
    }
    let who = holders.map_or_else(
        || "another process (/proc/net cannot be read to say which)".to_owned(),
        |h| h.others().describe(),
    );
    let hint = match handover {
        Some(pid) => format!("{HANDOVER_ENV}={pid} names a process that is not the only holder"),
        None => format!(
            "stop it first, or for a deliberate zero-downtime hand-over start this process with \
             {HANDOVER_ENV}=<its PID>"
        ),
    };
    Err(io::Error::new(
        io::ErrorKind::AddrInUse,
        format!(
            "port {} ({addr}/{}) is already served by {who}: a second process on it would silently \
             split its connections (SO_REUSEPORT); {hint}",
            addr.port(),
            proto_name(transport)
        ),
    ))
}

/// A note naming who holds `addr`'s TCP port, for a bind that failed with `kind`.
pub fn port_holder_note(addr: SocketAddr, kind: io::ErrorKind) -> Option<String> {
    if kind != io::ErrorKind::AddrInUse {
        return None;
    }
    let h = port_owner::holders(addr, Transport::Tcp)?;
    (h.sockets > 0).then(|| format!("port {} is held by {}", addr.port(), h.describe()))
}

/// Binds one reuse-port listening socket.
pub fn bind_reuseport(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    Ok(socket.into())
}

/// Binds every listener once per shard, refusing a port another live process already serves
/// (unless [`HANDOVER_ENV`] names it). A port of 0 is resolved by the first bind and reused
/// by the others, so all shards share one port. Returns the sockets per shard and the bound
/// addresses (in listener order).
pub fn bind_all(
    addrs: &[(SocketAddr, u32)],
    shards: usize,
) -> io::Result<(Vec<Vec<TcpListener>>, Vec<SocketAddr>)> {
    let mut per_shard: Vec<Vec<TcpListener>> = (0..shards).map(|_| Vec::with_capacity(addrs.len())).collect();
    let mut bound = Vec::with_capacity(addrs.len());
    let handover = handover_from_env();
    for &(addr, backlog) in addrs {
        ensure_port_unshared(addr, Transport::Tcp, handover)?;
        let first = bind_reuseport(addr, backlog)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot bind {addr}: {e}")))?;
        let actual = first.local_addr()?;
        bound.push(actual);
        let mut slots = per_shard.iter_mut();
        if let Some(s) = slots.next() {
            s.push(first);
        }
        for s in slots {
            s.push(
                bind_reuseport(actual, backlog)
                    .map_err(|e| io::Error::new(e.kind(), format!("cannot bind {actual}: {e}")))?,
            );
        }
    }
    Ok((per_shard, bound))
}

/// Binds one reuse-port UDP socket (for QUIC).
pub fn bind_udp_reuseport(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// Binds one UDP socket per shard on `addr` (the TCP listener's actual address, so HTTP/3 is
/// on the same port number as HTTP/1.1 and HTTP/2).
pub fn bind_udp_all(addr: SocketAddr, shards: usize) -> io::Result<Vec<UdpSocket>> {
    ensure_port_unshared(addr, Transport::Udp, handover_from_env())?;
    (0..shards)
        .map(|_| {
            bind_udp_reuseport(addr)
                .map_err(|e| io::Error::new(e.kind(), format!("cannot bind udp {addr}: {e}")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_this_process_already_listens_on_is_not_refused() {
        // Another process holding the port is refused (tests/hardening_admin.rs, with a real
        // second process); this process's own listener is another listener of its config.
        let held = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = held.local_addr().expect("addr");
        assert!(ensure_port_unshared(addr, Transport::Tcp, None).is_ok());
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        assert!(ensure_port_unshared(udp.local_addr().expect("addr"), Transport::Udp, None).is_ok());
    }

    #[test]
    fn port_zero_is_shared_by_all_shards() {
        let addr: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        let (socks, bound) = bind_all(&[(addr, 16)], 3).expect("bind");
        assert_eq!(socks.len(), 3);
        assert_ne!(bound[0].port(), 0);
        for s in &socks {
            assert_eq!(s[0].local_addr().expect("local").port(), bound[0].port());
        }
        let udp = bind_udp_all(bound[0], 3).expect("udp on the same port");
        assert!(udp.iter().all(|u| u.local_addr().expect("local") == bound[0]));
    }
}
