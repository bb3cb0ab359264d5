//! A small CIDR matcher for `forwarded.trusted_proxies`.
//!
//! Owns: parsing `10.0.0.0/8`, `::1/128` or a bare address, and membership tests. Must not:
//! allocate on lookup. IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`, what a dual-stack listener
//! reports) are matched as the IPv4 address they carry, both in entries and in lookups.

use std::net::IpAddr;

/// An address block: network bits and prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cidr {
    /// IPv4 block.
    V4 {
        /// Network address with host bits cleared.
        net: u32,
        /// Mask for `len` leading bits.
        mask: u32,
    },
    /// IPv6 block.
    V6 {
        /// Network address with host bits cleared.
        net: u128,
        /// Mask for `len` leading bits.
        mask: u128,
    },
}

impl Cidr {
    /// Parses `addr/len` or a bare address (a host block). Host bits set below the prefix are
    /// cleared (`10.1.2.3/8` is `10.0.0.0/8`).
    pub(crate) fn parse(s: &str) -> Result<Cidr, String> {
        let s = s.trim();
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => {
                let len: u8 = l.parse().map_err(|_| format!("prefix length {l:?} is not a number"))?;
                (a, Some(len))
            }
            None => (s, None),
        };
        let ip: IpAddr = addr.parse().map_err(|_| format!("{addr:?} is not an IP address"))?;
        match ip {
            IpAddr::V4(v4) => Cidr::v4(u32::from(v4), len.unwrap_or(32)),
            IpAddr::V6(v6) => match (v6.to_ipv4_mapped(), len) {
                (Some(v4), None) => Cidr::v4(u32::from(v4), 32),
                (Some(v4), Some(l)) if l >= 96 => Cidr::v4(u32::from(v4), l - 96),
                _ => Cidr::v6(u128::from(v6), len.unwrap_or(128)),
            },
        }
    }

    fn v4(bits: u32, len: u8) -> Result<Cidr, String> {
        if len > 32 {
            return Err(format!("prefix length {len} exceeds 32 for an IPv4 address"));
        }
        let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
        Ok(Cidr::V4 { net: bits & mask, mask })
    }

    fn v6(bits: u128, len: u8) -> Result<Cidr, String> {
        if len > 128 {
            return Err(format!("prefix length {len} exceeds 128 for an IPv6 address"));
        }
        let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
        Ok(Cidr::V6 { net: bits & mask, mask })
    }

    /// True when `ip` lies inside this block.
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        match (self, ip.to_canonical()) {
            (Cidr::V4 { net, mask }, IpAddr::V4(a)) => u32::from(a) & mask == *net,
            (Cidr::V6 { net, mask }, IpAddr::V6(a)) => u128::from(a) & mask == *net,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test ip")
    }

    fn cidr(s: &str) -> Cidr {
        Cidr::parse(s).expect("test cidr")
    }

    #[test]
    fn v4_blocks() {
        let c = cidr("10.0.0.0/8");
        assert!(c.contains(ip("10.255.1.2")));
        assert!(!c.contains(ip("11.0.0.1")));
        assert!(cidr("10.1.2.3/8").contains(ip("10.9.9.9")), "host bits are cleared");
        assert!(cidr("0.0.0.0/0").contains(ip("203.0.113.9")));
        assert!(!cidr("0.0.0.0/0").contains(ip("::1")));
    }

    #[test]
    fn bare_addresses_are_host_blocks() {
        assert!(cidr("192.0.2.1").contains(ip("192.0.2.1")));
        assert!(!cidr("192.0.2.1").contains(ip("192.0.2.2")));
        assert!(cidr("::1").contains(ip("::1")));
        assert!(cidr("::1/128").contains(ip("::1")));
        assert!(!cidr("::1/128").contains(ip("::2")));
    }

    #[test]
    fn v6_blocks() {
        let c = cidr("2001:db8::/32");
        assert!(c.contains(ip("2001:db8:1::7")));
        assert!(!c.contains(ip("2001:db9::1")));
        assert!(cidr("::/0").contains(ip("fe80::1")));
    }

    #[test]
    fn mapped_addresses_match_as_v4() {
        assert!(cidr("10.0.0.0/8").contains(ip("::ffff:10.1.1.1")));
        assert!(cidr("::ffff:10.0.0.0/104").contains(ip("10.2.3.4")));
        assert!(cidr("::ffff:10.0.0.1").contains(ip("10.0.0.1")));
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "10.0.0.0/33", "::/129", "10.0.0/8", "10.0.0.0/x", "host.example", "10.0.0.0/-1"] {
            assert!(Cidr::parse(bad).is_err(), "{bad:?} should not parse");
        }
    }
}
