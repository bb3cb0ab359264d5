//! A tiny blocking DNS client: one question to one name server over UDP (EDNS, 1232-byte
//! answers), again over TCP when the answer was truncated; and the name servers of
//! /etc/resolv.conf.
//!
//! Owns: the wire exchange and matching an answer to its question. Must not: interpret records
//! (that is `lookup.rs`) or run on a shard (it blocks; only the resolver thread calls it).

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, Query};
use hickory_proto::rr::{Name, RecordType};

use super::error::DnsError;

/// Largest UDP answer asked for (the DNS flag day 2020 size: no IP fragmentation).
const UDP_PAYLOAD: u16 = 1232;

/// Asks `server` for `name`'s `rtype` records within `timeout`; the answer may carry any
/// response code (the caller interprets NXDOMAIN and the like).
pub fn exchange(
    server: SocketAddr,
    name: &Name,
    rtype: RecordType,
    timeout: Duration,
) -> Result<Message, DnsError> {
    let deadline = Instant::now() + timeout;
    let mut query = Message::query();
    query.metadata.recursion_desired = true;
    query.add_query(Query::query(name.clone(), rtype));
    let mut edns = Edns::new();
    edns.set_max_payload(UDP_PAYLOAD);
    query.set_edns(edns);
    let bytes = query.to_vec().map_err(|e| DnsError::Malformed(e.to_string()))?;
    let id = query.metadata.id;
    let answer = udp(server, &bytes, id, deadline)?;
    if answer.metadata.truncation {
        return tcp(server, &bytes, id, deadline);
    }
    Ok(answer)
}

/// The answer to message `id`, or `None` for a datagram that is not one (ignored).
fn decode(buf: &[u8], id: u16) -> Result<Option<Message>, DnsError> {
    if buf.len() < 2 || u16::from_be_bytes([buf[0], buf[1]]) != id {
        return Ok(None);
    }
    let msg = Message::from_vec(buf).map_err(|e| DnsError::Malformed(e.to_string()))?;
    Ok((msg.metadata.message_type == MessageType::Response).then_some(msg))
}

fn remaining(deadline: Instant) -> io::Result<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() { Err(io::Error::new(io::ErrorKind::TimedOut, "no answer in time")) } else { Ok(left) }
}

fn udp(server: SocketAddr, query: &[u8], id: u16, deadline: Instant) -> Result<Message, DnsError> {
    let local: SocketAddr =
        if server.is_ipv4() { (Ipv4Addr::UNSPECIFIED, 0).into() } else { (Ipv6Addr::UNSPECIFIED, 0).into() };
    let sock = UdpSocket::bind(local)?;
    sock.connect(server)?;
    sock.send(query)?;
    let mut buf = vec![0u8; usize::from(UDP_PAYLOAD)];
    loop {
        sock.set_read_timeout(Some(remaining(deadline)?))?;
        let n = sock.recv(&mut buf)?;
        if let Some(msg) = decode(&buf[..n], id)? {
            return Ok(msg);
        }
    }
}

fn tcp(server: SocketAddr, query: &[u8], id: u16, deadline: Instant) -> Result<Message, DnsError> {
    let mut stream = TcpStream::connect_timeout(&server, remaining(deadline)?)?;
    stream.set_write_timeout(Some(remaining(deadline)?))?;
    let len = u16::try_from(query.len()).map_err(|_| DnsError::Malformed("query too long".into()))?;
    stream.write_all(&[&len.to_be_bytes()[..], query].concat())?;
    stream.set_read_timeout(Some(remaining(deadline)?))?;
    let mut len = [0u8; 2];
    stream.read_exact(&mut len)?;
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut buf)?;
    decode(&buf, id)?.ok_or_else(|| DnsError::Malformed("answer to another question".into()))
}

/// The `nameserver` addresses of a resolv.conf text (port 53).
pub fn nameservers(resolv_conf: &str) -> Vec<SocketAddr> {
    resolv_conf
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|rest| {
            // A link-local IPv6 server may carry a `%zone` suffix, which an address cannot.
            let ip = rest.trim().split('%').next()?;
            Some(SocketAddr::new(ip.parse().ok()?, 53))
        })
        .collect()
}

/// The name servers of /etc/resolv.conf (read at each lookup, so edits apply).
pub fn system_nameservers() -> Vec<SocketAddr> {
    std::fs::read_to_string("/etc/resolv.conf").map(|t| nameservers(&t)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_nameservers() {
        let text = "# generated\nsearch corp\nnameserver 10.0.0.2\nnameserver  fe80::1%eth0\nnameserver bogus\noptions ndots:2\n";
        let got = nameservers(text);
        assert_eq!(got, vec!["10.0.0.2:53".parse().expect("v4"), "[fe80::1]:53".parse().expect("v6")]);
    }

    #[test]
    fn a_silent_server_times_out() {
        // A bound socket that never answers.
        let silent = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let server = silent.local_addr().expect("addr");
        let name = Name::from_ascii("a.test.").expect("name");
        let started = Instant::now();
        let err = exchange(server, &name, RecordType::A, Duration::from_millis(200)).expect_err("no answer");
        assert!(matches!(err, DnsError::Io(_)), "{err}");
        assert!(started.elapsed() >= Duration::from_millis(200));
    }
}
