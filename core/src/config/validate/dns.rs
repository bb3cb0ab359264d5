//! Validation of `[upstreams.dns]`: a well-formed name, a port exactly when the record type needs
//! one, TTL bounds in order, a parseable name server.
//!
//! Owns: those rules, reported with their key paths. Must not: send a query (a name that does not
//! resolve yet is not a config error: the resolver keeps trying at runtime).

use super::Issues;
use crate::config::model_dns::{DnsConfig, DnsRecordType};
use crate::config::spans::KeyPath;

/// Checks one upstream's `dns` table at `path`.
pub(super) fn check(d: &DnsConfig, path: &KeyPath, out: &mut Issues) {
    if !is_dns_name(&d.name) {
        out.push(
            path.key("name"),
            format!(
                "name {:?} must be a DNS name, like \"api.internal\" or \"_http._tcp.api.internal\"",
                d.name
            ),
        );
    }
    match (d.kind, d.port) {
        (DnsRecordType::Srv, Some(_)) => {
            out.push(path.key("port"), "port does not apply with type = \"srv\" (SRV records carry the port)")
        }
        (DnsRecordType::Srv, None) => {}
        (_, None) => out.push(path.key("port"), "port is required with type = \"a\", \"aaaa\" or \"a+aaaa\""),
        (_, Some(0)) => out.push(path.key("port"), "port must be from 1 to 65535"),
        (_, Some(_)) => {}
    }
    match d.weight {
        Some(_) if d.kind == DnsRecordType::Srv => {
            out.push(path.key("weight"), "weight does not apply with type = \"srv\" (SRV records carry it)")
        }
        Some(w) if !(1..=1000).contains(&w) => {
            out.push(path.key("weight"), format!("weight {w} must be from 1 to 1000"))
        }
        _ => {}
    }
    out.nonzero(path.key("min_ttl"), d.min_ttl);
    if d.max_ttl.0 < d.min_ttl.0 {
        out.push(
            path.key("max_ttl"),
            format!("max_ttl {} must not be shorter than min_ttl {}", d.max_ttl, d.min_ttl),
        );
    }
    out.nonzero(path.key("timeout"), d.timeout);
    if let Some(Err(e)) = d.server_addr() {
        out.push(path.key("server"), e);
    }
}

/// A DNS name: dot-separated labels of letters, digits, `-` and `_` (SRV names), each 1 to 63
/// characters, 253 in all; one trailing dot allowed.
fn is_dns_name(name: &str) -> bool {
    let bare = name.strip_suffix('.').unwrap_or(name);
    !bare.is_empty()
        && bare.len() <= 253
        && bare.split('.').all(|l| {
            (1..=63).contains(&l.len())
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use super::is_dns_name;
    use crate::config::DnsRecordType;
    use crate::config::validate::tests::{load, one};

    const U: &str = "[[upstreams]]\nname = \"b\"\n";

    #[test]
    fn dns_alone_is_an_upstream_and_keys_parse() {
        let cfg = load(&format!(
            "{U}dns = {{ name = \"_http._tcp.api.internal\", type = \"srv\", server = \"127.0.0.1:5353\" }}\n"
        ))
        .expect("valid");
        let d = cfg.upstreams[1].dns.as_ref().expect("dns");
        assert_eq!(d.kind, DnsRecordType::Srv);
        assert_eq!((d.min_ttl.0.as_secs(), d.max_ttl.0.as_secs(), d.timeout.0.as_secs()), (1, 300, 2));
        let both = load(&format!(
            "{U}endpoints = [\"127.0.0.1:1\"]\n[upstreams.dns]\nname = \"api.internal.\"\ntype = \"a+aaaa\"\nport = 8080\n"
        ))
        .expect("dns next to static endpoints");
        assert_eq!(both.upstreams[1].dns.as_ref().map(|d| d.kind), Some(DnsRecordType::AAndAaaa));
    }

    #[test]
    fn bad_values_point_at_their_key() {
        let t = |body: &str| format!("{U}[upstreams.dns]\n{body}\n");
        one(&t("name = \"api.internal\""), "upstreams[1].dns.port", 3, "required");
        one(&t("name = \"a..b\"\nport = 80"), "upstreams[1].dns.name", 4, "DNS name");
        one(
            &t("name = \"_x._tcp.a\"\ntype = \"srv\"\nport = 80"),
            "upstreams[1].dns.port",
            6,
            "does not apply",
        );
        one(
            &t("name = \"a\"\nport = 80\nmin_ttl = \"10s\"\nmax_ttl = \"5s\""),
            "upstreams[1].dns.max_ttl",
            7,
            "min_ttl",
        );
        one(&t("name = \"a\"\nport = 80\nserver = \"ns1:53\""), "upstreams[1].dns.server", 6, "IP address");
        one(&t("name = \"a\"\nport = 80\nweight = 0"), "upstreams[1].dns.weight", 6, "from 1 to 1000");
        one(
            &t("name = \"a\"\nport = 80\ntimeout = \"0s\""),
            "upstreams[1].dns.timeout",
            6,
            "greater than zero",
        );
        one(&t("name = \"a\"\nport = 80\ntype = \"mx\""), "upstreams[1].dns.type", 6, "unknown variant");
    }

    #[test]
    fn dns_names() {
        assert!(is_dns_name("api.internal") && is_dns_name("api.internal.") && is_dns_name("_http._tcp.x"));
        assert!(!is_dns_name("") && !is_dns_name(".") && !is_dns_name("a b") && !is_dns_name("-a.b"));
        assert!(!is_dns_name(&"a".repeat(64)));
    }
}
