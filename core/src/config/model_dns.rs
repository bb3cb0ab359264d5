//! DNS service discovery of an `[[upstreams]]` entry: the `[upstreams.dns]` table (which name to
//! resolve, which record type, the port, TTL bounds and the name server).
//!
//! Owns: what that table may say and the parsing of its `server` address. Must not: resolve
//! anything (the HTTP crate's resolver thread does) or check values (`validate/dns.rs`).

use std::net::{IpAddr, SocketAddr};

use serde::Deserialize;

use super::units::Dur;

/// `type`: which records give the endpoints.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
pub enum DnsRecordType {
    /// IPv4 addresses; the port comes from `port`.
    #[default]
    #[serde(rename = "a")]
    A,
    /// IPv6 addresses; the port comes from `port`.
    #[serde(rename = "aaaa")]
    Aaaa,
    /// Both IPv4 and IPv6 addresses; the port comes from `port`.
    #[serde(rename = "a+aaaa")]
    AAndAaaa,
    /// Service records: target, port and weight per record (lowest priority only).
    #[serde(rename = "srv")]
    Srv,
}

/// `[upstreams.dns]`: endpoints found by resolving a name, re-resolved when its TTL expires.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DnsConfig {
    /// The name to resolve (absolute: no search domains are applied).
    pub name: String,
    /// Record type.
    #[serde(default, rename = "type")]
    pub kind: DnsRecordType,
    /// Port of every address (A/AAAA; SRV records carry their own).
    #[serde(default)]
    pub port: Option<u16>,
    /// Weight of every address found by A/AAAA (1 when unset; SRV records carry their own).
    #[serde(default)]
    pub weight: Option<u32>,
    /// Shortest time between two lookups, whatever the TTL says.
    #[serde(default = "default_min_ttl")]
    pub min_ttl: Dur,
    /// Longest time between two lookups, whatever the TTL says.
    #[serde(default = "default_max_ttl")]
    pub max_ttl: Dur,
    /// Name server `ip` or `ip:port` (port 53 by default); the `nameserver`s of /etc/resolv.conf
    /// when unset.
    #[serde(default)]
    pub server: Option<String>,
    /// One query without an answer within this fails (the next server is then tried).
    #[serde(default = "default_timeout")]
    pub timeout: Dur,
}

fn default_min_ttl() -> Dur {
    Dur::secs(1)
}

fn default_max_ttl() -> Dur {
    Dur::secs(300)
}

fn default_timeout() -> Dur {
    Dur::secs(2)
}

impl DnsConfig {
    /// The configured name server as an address (port 53 when not given), or why it is not one.
    pub fn server_addr(&self) -> Option<Result<SocketAddr, String>> {
        let s = self.server.as_deref()?;
        let parsed =
            s.parse::<SocketAddr>().ok().or_else(|| s.parse::<IpAddr>().ok().map(|ip| (ip, 53).into()));
        Some(parsed.filter(|a| a.port() != 0).ok_or_else(|| {
            format!("server {s:?} must be an IP address with an optional port, like \"10.0.0.2\" or \"127.0.0.1:5353\"")
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_server(s: &str) -> DnsConfig {
        DnsConfig {
            name: "a.test".into(),
            kind: DnsRecordType::A,
            port: Some(80),
            weight: None,
            min_ttl: default_min_ttl(),
            max_ttl: default_max_ttl(),
            server: Some(s.into()),
            timeout: default_timeout(),
        }
    }

    #[test]
    fn server_takes_an_ip_with_an_optional_port() {
        let addr = |s: &str| with_server(s).server_addr().and_then(Result::ok);
        assert_eq!(addr("10.0.0.2"), Some(SocketAddr::from(([10, 0, 0, 2], 53))));
        assert_eq!(addr("127.0.0.1:5353"), Some(SocketAddr::from(([127, 0, 0, 1], 5353))));
        assert_eq!(addr("::1"), Some(SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 53))));
        assert_eq!(addr("[::1]:5353"), Some(SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 5353))));
        assert_eq!(addr("ns.internal:53"), None);
        assert_eq!(addr("127.0.0.1:0"), None);
    }
}
