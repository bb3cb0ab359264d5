//! Which processes hold a port: the sockets on it from `/proc/net/{tcp,tcp6,udp,udp6}` (TCP:
//! listening ones only), mapped to processes through the `socket:[inode]` links under
//! `/proc/<pid>/fd`. Processes of other users cannot be read without privileges: their sockets
//! are still counted, only without a PID.
//!
//! Owns: reading `/proc` to name a port's holders. Must not: bind, connect or decide anything.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The transport of a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// TCP (listening sockets).
    Tcp,
    /// UDP (bound sockets).
    Udp,
}

/// A process holding a socket on the port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Process {
    /// Its PID.
    pub pid: u32,
    /// Its name (`/proc/<pid>/comm`).
    pub name: String,
}

/// Who holds a port.
#[derive(Clone, Debug, Default)]
pub struct Holders {
    /// Sockets found on the port (TCP: listening) whose address overlaps the one asked about.
    pub sockets: usize,
    /// The processes owning them that could be read (other users' need privileges).
    pub processes: Vec<Process>,
}

impl Holders {
    /// The holders other than this process.
    pub fn others(&self) -> Holders {
        let me = std::process::id();
        Holders {
            sockets: self.sockets,
            processes: self.processes.iter().filter(|p| p.pid != me).cloned().collect(),
        }
    }

    /// Whether this process is the only holder that could be read.
    pub fn only_this_process(&self) -> bool {
        let me = std::process::id();
        !self.processes.is_empty() && self.processes.iter().all(|p| p.pid == me)
    }

    /// `PID 12 (portcullis), PID 34 (nginx)`, or a note that they cannot be read.
    pub fn describe(&self) -> String {
        if self.processes.is_empty() {
            return "a process whose PID cannot be read here (another user's, or /proc is restricted)"
                .to_owned();
        }
        let list: Vec<String> =
            self.processes.iter().map(|p| format!("PID {} ({})", p.pid, p.name)).collect();
        list.join(", ")
    }
}

/// `hex` as `/proc/net` prints a socket address: each 32-bit word of the address in host order.
fn parse_addr(hex: &str) -> Option<SocketAddr> {
    let (ip_hex, port_hex) = hex.split_once(':')?;
    let port = u16::from_str_radix(port_hex, 16).ok()?;
    let mut bytes = Vec::with_capacity(16);
    for i in (0..ip_hex.len()).step_by(8) {
        let word = u32::from_str_radix(ip_hex.get(i..i + 8)?, 16).ok()?;
        bytes.extend_from_slice(&word.to_ne_bytes());
    }
    let ip = match bytes.len() {
        4 => IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3])),
        16 => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(bytes.as_slice()).ok()?)),
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Whether a socket bound to `held` keeps a bind to `wanted` (same port) from succeeding.
fn overlaps(held: IpAddr, wanted: IpAddr) -> bool {
    let (held, wanted) = (held.to_canonical(), wanted.to_canonical());
    held.is_unspecified() || wanted.is_unspecified() || held == wanted
}

/// Inodes of the sockets on `addr`'s port, from `/proc/net` tables; `None` when none is readable.
fn socket_inodes(addr: SocketAddr, transport: Transport) -> Option<BTreeSet<u64>> {
    let files: [&str; 2] = match transport {
        Transport::Tcp => ["/proc/net/tcp", "/proc/net/tcp6"],
        Transport::Udp => ["/proc/net/udp", "/proc/net/udp6"],
    };
    let mut read_any = false;
    let mut inodes = BTreeSet::new();
    for file in files {
        let Ok(text) = std::fs::read_to_string(file) else { continue };
        read_any = true;
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state), Some(inode)) = (cols.get(1), cols.get(3), cols.get(9)) else {
                continue;
            };
            // TCP_LISTEN is 0A; a bound UDP socket is 07 (TCP_CLOSE) or 01 when connected.
            if transport == Transport::Tcp && *state != "0A" {
                continue;
            }
            let (Some(local), Ok(inode)) = (parse_addr(local), inode.parse::<u64>()) else { continue };
            if local.port() == addr.port() && overlaps(local.ip(), addr.ip()) && inode != 0 {
                inodes.insert(inode);
            }
        }
    }
    read_any.then_some(inodes)
}

/// The processes holding a socket whose inode is in `inodes` (this one included).
fn owners(inodes: &BTreeSet<u64>) -> Vec<Process> {
    let mut found = Vec::new();
    let Ok(procs) = std::fs::read_dir("/proc") else { return found };
    for entry in procs.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else { continue };
        let holds = fds.flatten().any(|fd| {
            std::fs::read_link(fd.path()).ok().and_then(|l| {
                let l = l.to_str()?.strip_prefix("socket:[")?.strip_suffix(']')?.parse::<u64>().ok()?;
                Some(inodes.contains(&l))
            }) == Some(true)
        });
        if holds {
            let name = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
            found.push(Process { pid, name: name.trim().to_owned() });
        }
    }
    found
}

/// Who holds `addr`'s port for `transport`; `None` when `/proc/net` cannot be read.
pub fn holders(addr: SocketAddr, transport: Transport) -> Option<Holders> {
    let inodes = socket_inodes(addr, transport)?;
    let processes = if inodes.is_empty() { Vec::new() } else { owners(&inodes) };
    Some(Holders { sockets: inodes.len(), processes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_net_addresses() {
        let v4 = parse_addr("0100007F:1F90").expect("v4");
        assert_eq!(v4, "127.0.0.1:8080".parse().expect("addr"));
        let v6 = parse_addr("00000000000000000000000001000000:0050").expect("v6");
        assert_eq!(v6, "[::1]:80".parse().expect("addr"));
        assert!(parse_addr("zz:1").is_none());
    }

    #[test]
    fn finds_a_listener_in_this_process_by_inode() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        let inodes = socket_inodes(addr, Transport::Tcp).expect("/proc/net/tcp readable");
        assert_eq!(inodes.len(), 1, "our listener is found");
        let h = holders(addr, Transport::Tcp).expect("holders");
        assert!(h.only_this_process() && h.others().processes.is_empty(), "{h:?}");
        assert_eq!(h.processes[0].pid, std::process::id());
        let other: SocketAddr = "127.0.0.2:1".parse().expect("addr");
        assert!(overlaps("0.0.0.0".parse().expect("ip"), other.ip()));
        assert!(!overlaps("127.0.0.1".parse().expect("ip"), other.ip()));
    }
}
