//! Reading forwarding chains: `X-Forwarded-For` entries, RFC 7239 `for=` nodes, and the walk
//! that finds the original client behind a run of trusted proxies.
//!
//! Owns: tolerant, allocation-free parsing of incoming forwarding headers. Must not: write any
//! header or decide trust (the caller passes the trust test in).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use portcullis_core::pipeline::Headers;

/// `X-Forwarded-For`.
pub(crate) const XFF: &str = "x-forwarded-for";
/// RFC 7239 `Forwarded`.
pub(crate) const FORWARDED: &str = "forwarded";

/// Parses one forwarding node: `1.2.3.4`, `1.2.3.4:80`, `::1`, `[::1]`, `[::1]:443`, optionally
/// inside double quotes. Anything else (`unknown`, obfuscated ids, garbage) is `None`.
pub(crate) fn parse_node(raw: &[u8]) -> Option<IpAddr> {
    let mut s = std::str::from_utf8(raw).ok()?.trim_matches([' ', '\t']);
    if let Some(inner) = s.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        s = inner;
    }
    let ip = if let Some(rest) = s.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        IpAddr::V6(inside.parse::<Ipv6Addr>().ok()?)
    } else if let Ok(ip) = s.parse::<IpAddr>() {
        ip
    } else {
        let (host, port) = s.split_once(':')?;
        if !is_port(port) {
            return None;
        }
        IpAddr::V4(host.parse::<Ipv4Addr>().ok()?)
    };
    Some(ip.to_canonical())
}

fn is_port(p: &str) -> bool {
    !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit())
}

/// Splits `s` on `sep` outside double-quoted strings (backslash escapes honoured).
pub(crate) fn split_unquoted(s: &[u8], sep: u8) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(s);
    std::iter::from_fn(move || {
        let cur = rest?;
        let (mut quoted, mut escaped) = (false, false);
        for (i, &b) in cur.iter().enumerate() {
            if escaped {
                escaped = false;
            } else if quoted && b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                quoted = !quoted;
            } else if b == sep && !quoted {
                rest = Some(&cur[i + 1..]);
                return Some(&cur[..i]);
            }
        }
        rest = None;
        Some(cur)
    })
}

fn trim(s: &[u8]) -> &[u8] {
    s.trim_ascii()
}

/// Every non-empty `X-Forwarded-For` entry, left to right across all fields.
fn xff_nodes(headers: &Headers) -> impl Iterator<Item = Option<IpAddr>> + '_ {
    headers
        .get_all(XFF)
        .flat_map(|v| v.split(|&b| b == b','))
        .map(trim)
        .filter(|e| !e.is_empty())
        .map(parse_node)
}

/// The `for=` node of every non-empty `Forwarded` element, left to right across all fields;
/// an element without `for=` counts as an unknown node.
fn forwarded_nodes(headers: &Headers) -> impl Iterator<Item = Option<IpAddr>> + '_ {
    headers.get_all(FORWARDED).flat_map(|v| split_unquoted(v, b',')).map(trim).filter(|e| !e.is_empty()).map(
        |element| {
            split_unquoted(element, b';').find_map(|pair| {
                let pair = trim(pair);
                let eq = pair.iter().position(|&b| b == b'=')?;
                if !trim(&pair[..eq]).eq_ignore_ascii_case(b"for") {
                    return None;
                }
                parse_node(trim(&pair[eq + 1..]))
            })
        },
    )
}

/// Where the right-to-left walk stopped, tracked while scanning left to right.
enum Stop {
    /// An untrusted address: the client.
    Client(IpAddr),
    /// An unparseable node; the client is the trusted hop right of it (or the peer).
    Unknown { right: Option<IpAddr> },
}

/// The standard walk: from the right, skip trusted hops; the first untrusted address is the
/// client. An unparseable node ends the walk at the trusted hop right of it; when every hop is
/// trusted the left-most one is the client. `None` when the chain yields nothing usable.
fn walk(nodes: impl Iterator<Item = Option<IpAddr>>, trusted: impl Fn(IpAddr) -> bool) -> Option<IpAddr> {
    // Scanning left to right keeps this allocation-free: the last stop seen is the first one a
    // right-to-left walk would meet.
    let mut leftmost = None;
    let mut stop = None;
    for node in nodes {
        match node {
            Some(ip) if !trusted(ip) => stop = Some(Stop::Client(ip)),
            Some(ip) => {
                leftmost.get_or_insert(ip);
                if let Some(Stop::Unknown { right: right @ None }) = &mut stop {
                    *right = Some(ip);
                }
            }
            None => stop = Some(Stop::Unknown { right: None }),
        }
    }
    match stop {
        Some(Stop::Client(ip)) => Some(ip),
        Some(Stop::Unknown { right }) => right,
        None => leftmost,
    }
}

/// The original client behind a trusted peer, read from the preferred header (falling back to
/// the other one when the preferred is absent); `None` means "use the peer".
pub(crate) fn client_behind(
    headers: &Headers,
    prefer_forwarded: bool,
    trusted: impl Fn(IpAddr) -> bool,
) -> Option<IpAddr> {
    let (has_xff, has_fwd) = (headers.contains(XFF), headers.contains(FORWARDED));
    if has_fwd && (prefer_forwarded || !has_xff) {
        walk(forwarded_nodes(headers), trusted)
    } else if has_xff {
        walk(xff_nodes(headers), trusted)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test ip")
    }

    #[test]
    fn nodes() {
        assert_eq!(parse_node(b"1.2.3.4"), Some(ip("1.2.3.4")));
        assert_eq!(parse_node(b" 1.2.3.4:8080 "), Some(ip("1.2.3.4")));
        assert_eq!(parse_node(b"2001:db8::1"), Some(ip("2001:db8::1")));
        assert_eq!(parse_node(b"[2001:db8::1]"), Some(ip("2001:db8::1")));
        assert_eq!(parse_node(b"\"[2001:db8::1]:4711\""), Some(ip("2001:db8::1")));
        assert_eq!(parse_node(b"::ffff:10.0.0.1"), Some(ip("10.0.0.1")));
        for bad in [&b"unknown"[..], b"_hidden", b"1.2.3.4:x", b"[::1]x", b"[::1", b"", b"\xff"] {
            assert_eq!(parse_node(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn splitting_respects_quotes() {
        let parts: Vec<_> = split_unquoted(br#"for=a;host="x,y\"z",for=b"#, b',').collect();
        assert_eq!(parts, vec![&br#"for=a;host="x,y\"z""#[..], b"for=b"]);
    }

    fn t(ip: IpAddr) -> bool {
        matches!(ip, IpAddr::V4(v) if v.octets()[0] == 10)
    }

    fn walk_str(chain: &[Option<&str>]) -> Option<IpAddr> {
        walk(chain.iter().map(|n| n.map(ip)), t)
    }

    #[test]
    fn walk_rules() {
        // Right-most untrusted wins, whatever the client prepended.
        assert_eq!(walk_str(&[Some("6.6.6.6"), Some("1.1.1.1"), Some("10.0.0.2")]), Some(ip("1.1.1.1")));
        // All trusted: the left-most.
        assert_eq!(walk_str(&[Some("10.0.0.3"), Some("10.0.0.2")]), Some(ip("10.0.0.3")));
        // Garbage stops the walk at the trusted hop to its right.
        assert_eq!(walk_str(&[Some("1.1.1.1"), None, Some("10.0.0.2")]), Some(ip("10.0.0.2")));
        assert_eq!(walk_str(&[Some("1.1.1.1"), None]), None);
        // An untrusted hop right of garbage still wins.
        assert_eq!(walk_str(&[None, Some("2.2.2.2"), Some("10.0.0.2")]), Some(ip("2.2.2.2")));
        assert_eq!(walk_str(&[]), None);
    }

    #[test]
    fn forwarded_elements() {
        let mut h = Headers::default();
        h.append("Forwarded", r#"for=192.0.2.43, for="[2001:db8:cafe::17]";proto=https"#);
        h.append("forwarded", "proto=http;For=10.0.0.9");
        let nodes: Vec<_> = forwarded_nodes(&h).collect();
        assert_eq!(nodes, vec![Some(ip("192.0.2.43")), Some(ip("2001:db8:cafe::17")), Some(ip("10.0.0.9"))]);
        assert_eq!(client_behind(&h, true, t), Some(ip("2001:db8:cafe::17")));
    }

    #[test]
    fn element_without_for_is_unknown() {
        let mut h = Headers::default();
        h.append("Forwarded", "for=1.1.1.1, proto=https");
        assert_eq!(client_behind(&h, true, t), None);
    }

    #[test]
    fn xff_across_fields_and_empty_entries() {
        let mut h = Headers::default();
        h.append("X-Forwarded-For", "5.5.5.5, ,1.1.1.1");
        h.append("x-forwarded-for", "10.0.0.1");
        assert_eq!(client_behind(&h, false, t), Some(ip("1.1.1.1")));
    }

    #[test]
    fn header_preference() {
        let mut h = Headers::default();
        h.append("X-Forwarded-For", "1.1.1.1");
        h.append("Forwarded", "for=2.2.2.2");
        assert_eq!(client_behind(&h, false, t), Some(ip("1.1.1.1")));
        assert_eq!(client_behind(&h, true, t), Some(ip("2.2.2.2")));
        let mut only_fwd = Headers::default();
        only_fwd.append("Forwarded", "for=2.2.2.2");
        assert_eq!(client_behind(&only_fwd, false, t), Some(ip("2.2.2.2")));
        assert_eq!(client_behind(&Headers::default(), false, t), None);
    }
}
