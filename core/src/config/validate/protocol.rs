//! Validation of an upstream's `protocol` against its `tls` table: `h2` needs TLS (and offers
//! ALPN `h2`), `h2c` is cleartext.
//!
//! Owns: the rules that combine `protocol` with `[upstreams.tls]`. Must not: check the TLS
//! table's own keys (that is `edge.rs`).

use super::Issues;
use crate::config::model::UpstreamConfig;
use crate::config::model_protocol::UpstreamProtocol;
use crate::config::spans::KeyPath;

/// Checks one `[[upstreams]]` entry's `protocol` at `here`.
pub(super) fn check(u: &UpstreamConfig, here: &KeyPath, out: &mut Issues) {
    match (u.protocol, &u.tls) {
        (UpstreamProtocol::H2, None) => out.push(
            here.key("protocol"),
            "protocol = \"h2\" is HTTP/2 over TLS and needs an [upstreams.tls] table; \
             use protocol = \"h2c\" for cleartext HTTP/2",
        ),
        (UpstreamProtocol::H2, Some(tls)) if !tls.alpn.is_empty() && !tls.alpn.iter().any(|a| a == "h2") => {
            out.push(
                here.key("tls").key("alpn"),
                "protocol = \"h2\" needs \"h2\" among tls.alpn (or leave alpn empty: [\"h2\"] is offered)",
            )
        }
        (UpstreamProtocol::H2c, Some(_)) => out.push(
            here.key("protocol"),
            "protocol = \"h2c\" is cleartext HTTP/2; with [upstreams.tls] use protocol = \"h2\"",
        ),
        (UpstreamProtocol::Http1, Some(tls)) if tls.alpn.iter().any(|a| a == "h2") => out.push(
            here.key("tls").key("alpn"),
            "alpn \"h2\" needs protocol = \"h2\" (this upstream speaks HTTP/1.1)",
        ),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use crate::config::UpstreamProtocol;
    use crate::config::validate::tests::{load, one};

    const U: &str = "[[upstreams]]\nname = \"b\"\nendpoints = [\"127.0.0.1:1\"]\n";

    #[test]
    fn protocol_parses_and_defaults_to_http1() {
        let cfg = load(&format!("{U}protocol = \"h2c\"\n")).expect("valid");
        assert_eq!(cfg.upstreams[1].protocol, UpstreamProtocol::H2c);
        assert_eq!(cfg.upstreams[0].protocol, UpstreamProtocol::Http1);
        let tls = format!("{U}protocol = \"h2\"\n[upstreams.tls]\ninsecure_skip_verify = true\n");
        assert_eq!(load(&tls).expect("valid").upstreams[1].protocol, UpstreamProtocol::H2);
    }

    #[test]
    fn refused_combinations_point_at_their_key() {
        one(&format!("{U}protocol = \"h2\"\n"), "upstreams[1].protocol", 4, "needs an [upstreams.tls]");
        one(
            &format!("{U}protocol = \"h2c\"\n[upstreams.tls]\ninsecure_skip_verify = true\n"),
            "upstreams[1].protocol",
            4,
            "cleartext",
        );
        one(
            &format!("{U}protocol = \"h2\"\n[upstreams.tls]\nalpn = [\"http/1.1\"]\n"),
            "upstreams[1].tls.alpn",
            6,
            "needs \"h2\"",
        );
        one(&format!("{U}[upstreams.tls]\nalpn = [\"h2\"]\n"), "upstreams[1].tls.alpn", 5, "needs protocol");
    }
}
