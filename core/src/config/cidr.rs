//! IP networks in CIDR notation (`10.0.0.0/8`, `2001:db8::/32`) and single addresses.
//!
//! Owns: parsing a network and testing membership. Must not: know where networks are configured
//! (validation and the filters that use them decide that).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An IP network: an address and a prefix length; a bare address is a /32 or /128.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `"10.0.0.0/8"`, `"2001:db8::/32"`, `"192.0.2.7"` or `"::1"`; host bits must be zero.
    ///
    /// IPv4-mapped entries (`::ffff:10.0.0.0/104`) become the IPv4 network they carry.
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let s = s.trim();
        let (addr_text, prefix_text) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr =
            addr_text.parse().map_err(|_| format!("{addr_text:?} is not an IPv4 or IPv6 address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix_text {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max && !p.starts_with('+') => n,
                _ => return Err(format!("prefix length {p:?} must be a number from 0 to {max}")),
            },
        };
        // An IPv4-mapped entry (`::ffff:10.0.0.0/104`) is the IPv4 network it carries, since
        // `contains` sees mapped peers as IPv4.
        let (addr, prefix) = match addr {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) if prefix >= 96 => (IpAddr::V4(v4), prefix - 96),
                Some(_) => return Err(format!("an IPv4-mapped network needs a prefix of 96 or more: {s:?}")),
                None => (addr, prefix),
            },
            v4 => (v4, prefix),
        };
        let cidr = Cidr { addr, prefix };
        let network = cidr.network();
        if network != addr {
            return Err(format!("{s:?} has host bits set; the network is {network}/{prefix}"));
        }
        Ok(cidr)
    }

    /// The network address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length in bits.
    pub fn prefix_len(&self) -> u8 {
        self.prefix
    }

    /// True when `ip` lies in this network; IPv4-mapped IPv6 peers (`::ffff:a.b.c.d`) count as IPv4.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = mask32(self.prefix);
                u32::from(ip) & mask == u32::from(net) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = mask128(self.prefix);
                u128::from(ip) & mask == u128::from(net) & mask
            }
            _ => false,
        }
    }

    /// The address with its host bits cleared.
    fn network(&self) -> IpAddr {
        match self.addr {
            IpAddr::V4(a) => IpAddr::V4((u32::from(a) & mask32(self.prefix)).into()),
            IpAddr::V6(a) => IpAddr::V6((u128::from(a) & mask128(self.prefix)).into()),
        }
    }
}

/// The IPv4 netmask of a prefix length (0..=32).
fn mask32(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix.min(32))).unwrap_or(0)
}

/// The IPv6 netmask of a prefix length (0..=128).
fn mask128(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix.min(128))).unwrap_or(0)
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Cidr, String> {
        Cidr::parse(s)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    fn cidr(s: &str) -> Cidr {
        Cidr::parse(s).expect("test cidr")
    }

    #[test]
    fn parses_networks_and_addresses() {
        assert_eq!(cidr("10.0.0.0/8").prefix_len(), 8);
        assert_eq!(cidr("192.0.2.7").prefix_len(), 32);
        assert_eq!(cidr("::1").prefix_len(), 128);
        assert_eq!(cidr("2001:db8::/32").to_string(), "2001:db8::/32");
        assert_eq!(cidr("0.0.0.0/0").prefix_len(), 0);
        assert_eq!(cidr("::/0").prefix_len(), 0);
    }

    #[test]
    fn rejects_bad_input() {
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("::/129").is_err());
        assert!(Cidr::parse("10.0.0.0/").is_err());
        assert!(Cidr::parse("10.0.0.0/+8").is_err());
        assert!(Cidr::parse("10.0.0/8").is_err());
        assert!(Cidr::parse("example.com").is_err());
        assert!(Cidr::parse("").is_err());
        assert!(Cidr::parse("::ffff:10.0.0.0/8").is_err());
        let err = Cidr::parse("10.1.2.3/8").expect_err("host bits");
        assert!(err.contains("10.0.0.0/8"), "{err}");
    }

    #[test]
    fn membership() {
        let net = cidr("10.0.0.0/8");
        assert!(net.contains(ip("10.255.1.2")));
        assert!(!net.contains(ip("11.0.0.1")));
        assert!(net.contains(ip("::ffff:10.1.2.3")), "IPv4-mapped peers match IPv4 networks");
        assert!(!net.contains(ip("::1")));
        let one = cidr("192.0.2.7");
        assert!(one.contains(ip("192.0.2.7")));
        assert!(!one.contains(ip("192.0.2.8")));
        let v6 = cidr("2001:db8::/32");
        assert!(v6.contains(ip("2001:db8:1::5")));
        assert!(!v6.contains(ip("2001:db9::1")));
        assert!(!v6.contains(ip("10.0.0.1")));
        let mapped = cidr("::ffff:10.0.0.0/104");
        assert_eq!(mapped, cidr("10.0.0.0/8"));
        assert!(mapped.contains(ip("10.9.9.9")) && mapped.contains(ip("::ffff:10.9.9.9")));
        assert_eq!(cidr("::ffff:192.0.2.7"), cidr("192.0.2.7"));
        assert!(cidr("0.0.0.0/0").contains(ip("203.0.113.9")));
        assert!(cidr("::/0").contains(ip("2001:db8::1")));
        assert!(cidr("10.0.0.0/31").contains(ip("10.0.0.1")));
        assert!(!cidr("10.0.0.0/31").contains(ip("10.0.0.2")));
    }
}
