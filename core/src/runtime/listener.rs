//! Listening sockets: one SO_REUSEPORT socket per listener per shard, so the kernel spreads
//! connections over shards and no accept lock is shared.
//!
//! Owns: binding and socket options. Must not: accept or serve connections.

use std::io;
use std::net::{SocketAddr, TcpListener, UdpSocket};

use socket2::{Domain, Protocol, Socket, Type};

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

/// Binds every listener once per shard. A port of 0 is resolved by the first bind and reused
/// by the others, so all shards share one port. Returns the sockets per shard and the bound
/// addresses (in listener order).
pub fn bind_all(
    addrs: &[(SocketAddr, u32)],
    shards: usize,
) -> io::Result<(Vec<Vec<TcpListener>>, Vec<SocketAddr>)> {
    let mut per_shard: Vec<Vec<TcpListener>> = (0..shards).map(|_| Vec::with_capacity(addrs.len())).collect();
    let mut bound = Vec::with_capacity(addrs.len());
    for &(addr, backlog) in addrs {
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
