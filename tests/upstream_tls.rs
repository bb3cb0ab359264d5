//! TLS toward upstreams against the real binary and a real rustls upstream: certificates
//! verified against a configured CA with the configured SNI name, pooled keep-alive over TLS, a
//! wrong CA refused with a clear 502, and a client certificate presented to a backend that
//! requires one (mTLS to the backend).

mod common;

use std::path::Path;

use common::tls::Pki;
use common::tls_upstream::TlsUpstream;
use common::{Gateway, config, get};

/// An upstream `name` at `addr` with the given `[upstreams.tls]` keys, and a route to it at `prefix`.
fn tls_upstream(name: &str, addr: std::net::SocketAddr, tls: &str, prefix: &str) -> String {
    format!(
        "[[upstreams]]\nname = \"{name}\"\nendpoints = [\"{addr}\"]\n[upstreams.tls]\n{tls}\n\n\
         [[routes]]\nprefix = \"{prefix}\"\nupstream = \"{name}\"\n\n"
    )
}

fn path(p: &Path) -> String {
    format!("{:?}", p.display().to_string())
}

#[test]
fn verified_upstream_gets_sni_and_alpn_and_connections_are_pooled() {
    let pki = Pki::new();
    let up = TlsUpstream::start(&pki, &["backend.internal"], false);
    let tls =
        format!("ca = {}\nserver_name = \"backend.internal\"\nalpn = [\"http/1.1\"]", path(&pki.ca_pem));
    let gw = Gateway::start(&config("", &tls_upstream("app", up.addr, &tls, "/")));
    for i in 0..4 {
        let r = get(gw.addr, &format!("/r{i}"));
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
        assert_eq!(r.text(), "sni=backend.internal client=- alpn=http/1.1");
    }
    // Sequential requests from one client land on one shard: one TLS connection, kept alive.
    assert!(up.handshakes() <= 2, "TLS connections were not reused: {} handshakes", up.handshakes());
}

#[test]
fn wrong_ca_or_name_is_a_502_with_a_tls_error_code_and_insecure_skip_verify_connects() {
    let pki = Pki::new();
    let other = Pki::new();
    let up = TlsUpstream::start(&pki, &["backend.internal"], false);
    let rest = [
        tls_upstream(
            "wrong_ca",
            up.addr,
            &format!("ca = {}\nserver_name = \"backend.internal\"", path(&other.ca_pem)),
            "/ca",
        ),
        tls_upstream(
            "wrong_name",
            up.addr,
            &format!("ca = {}\nserver_name = \"evil.example\"", path(&pki.ca_pem)),
            "/name",
        ),
        tls_upstream(
            "skip",
            up.addr,
            "server_name = \"backend.internal\"\ninsecure_skip_verify = true",
            "/skip",
        ),
    ]
    .concat();
    let gw = Gateway::start(&config("", &rest));
    let r = get(gw.addr, "/ca");
    r.assert_routed_error(502, "upstream_tls_failed");
    let msg = r.json()["error"]["message"].as_str().unwrap_or_default().to_owned();
    assert!(msg.contains("certificate"), "{msg}");
    get(gw.addr, "/name").assert_routed_error(502, "upstream_tls_failed");
    let r = get(gw.addr, "/skip");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().starts_with("sni=backend.internal"), "{}", r.text());
    gw.wait_for_log("upstream TLS failed", common::LONG);
}

#[test]
fn client_certificate_is_presented_to_a_backend_that_requires_one() {
    let pki = Pki::new();
    let up = TlsUpstream::start(&pki, &["mtls.internal"], true);
    let (crt, key) = pki.issue_client_files("gateway-client", "portcullis-gateway");
    let base = format!("ca = {}\nserver_name = \"mtls.internal\"", path(&pki.ca_pem));
    let with_cert = format!("{base}\nclient_cert = {}\nclient_key = {}", path(&crt), path(&key));
    let rest = [
        tls_upstream("mtls", up.addr, &with_cert, "/with"),
        tls_upstream("anon", up.addr, &base, "/without"),
    ]
    .concat();
    let gw = Gateway::start(&config("", &rest));
    let r = get(gw.addr, "/with");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.text().contains("client=CN=portcullis-gateway") || r.text().contains("portcullis-gateway"),
        "{}",
        r.text()
    );
    // Without a certificate the backend refuses the connection: the gateway answers 502.
    let r = get(gw.addr, "/without");
    assert_eq!(r.status, 502, "{}", r.text());
}
