//! mTLS against the real binary: optional and required client certificates, verification
//! against the listener's CA, the verified identity (subject, SPIFFE id) handed to the upstream,
//! and routes that require a certificate (403 JSON otherwise).

mod common;

use std::path::Path;
use std::sync::Arc;

use common::tls::{Pki, TlsClient};
use common::{Gateway, Upstream, upstream_toml};

fn config(mode: &str, server_cert: (&Path, &Path), client_ca: &Path, up: &Upstream) -> String {
    format!(
        "[server]\nshards = 2\npin_cpus = false\nwatch_config = false\n\n\
         [[listeners]]\nbind = \"127.0.0.1:0\"\n[listeners.tls]\nclient_auth = \"{mode}\"\nclient_ca = {:?}\n\
         [[listeners.tls.certificates]]\ncert = {:?}\nkey = {:?}\n\n{}\n\
         [[routes]]\nprefix = \"/secure\"\nupstream = \"app\"\nrequire_client_cert = true\n\
         [[routes]]\nprefix = \"/\"\nupstream = \"app\"\n",
        client_ca.display().to_string(),
        server_cert.0.display().to_string(),
        server_cert.1.display().to_string(),
        upstream_toml("app", up.addr)
    )
}

#[test]
fn optional_client_certificates_identify_clients_and_guard_routes() {
    let pki = Pki::new();
    let (crt, key) = pki.issue("server", &["localhost"]);
    let up = Upstream::echo("app");
    let gw = Gateway::start(&config("optional", (&crt, &key), &pki.ca_pem, &up));

    // Without a certificate: open routes work (forged identity headers are dropped), the
    // protected route answers 403 JSON.
    let mut anon = TlsClient::connect(gw.addr, "localhost", &Arc::new(pki.client_config(&["http/1.1"])))
        .expect("connect");
    let r = anon
        .request(b"GET /open HTTP/1.1\r\nHost: localhost\r\nx-client-cert-subject: CN=admin\r\n\r\n")
        .expect("open");
    assert_eq!(r.status, 200);
    assert_eq!(
        up.last().header("x-client-cert-subject"),
        None,
        "a forged identity never reaches the upstream"
    );
    let r = anon.get("localhost", "/secure/data").expect("secure");
    r.assert_error(403, "client_certificate_required");
    assert!(up.seen().iter().all(|q| !q.path().starts_with("/secure")));

    // With a certificate from the CA: the identity reaches the upstream.
    let (cert, ckey) = pki.issue_client("svc-a", Some("spiffe://example.org/ns/prod/sa/svc-a"));
    let cfg = Arc::new(pki.client_config_with_cert(cert, ckey));
    let mut known = TlsClient::connect(gw.addr, "localhost", &cfg).expect("connect with a certificate");
    assert_eq!(known.get("localhost", "/secure/data").expect("secure").status, 200);
    let seen = up.last();
    assert_eq!(seen.header("x-client-cert-subject"), Some("CN=svc-a"));
    assert_eq!(seen.header("x-client-cert-spiffe-id"), Some("spiffe://example.org/ns/prod/sa/svc-a"));

    // A certificate from another CA fails the handshake.
    let other = Pki::new();
    let (cert, ckey) = other.issue_client("mallory", None);
    // Trusts the gateway's CA, presents a certificate the gateway's client CA never issued.
    let cfg = pki.client_config_with_cert(cert, ckey);
    let refused = TlsClient::connect(gw.addr, "localhost", &Arc::new(cfg))
        .and_then(|mut c| c.get("localhost", "/open"));
    assert!(refused.is_err(), "an untrusted client certificate is refused");
}

#[test]
fn required_client_certificates_refuse_anonymous_handshakes() {
    let pki = Pki::new();
    let (crt, key) = pki.issue("server", &["localhost"]);
    let up = Upstream::echo("app");
    let gw = Gateway::start(&config("required", (&crt, &key), &pki.ca_pem, &up));

    let anon = TlsClient::connect(gw.addr, "localhost", &Arc::new(pki.client_config(&["http/1.1"])))
        .and_then(|mut c| c.get("localhost", "/open"));
    let err = anon.expect_err("no certificate, no connection");
    assert!(err.to_string().contains("CertificateRequired") || err.to_string().contains("alert"), "{err}");
    assert_eq!(up.requests(), 0);

    let (cert, ckey) = pki.issue_client("svc-b", None);
    let mut c = TlsClient::connect(gw.addr, "localhost", &Arc::new(pki.client_config_with_cert(cert, ckey)))
        .expect("connect");
    assert_eq!(c.get("localhost", "/open").expect("open").status, 200);
    assert_eq!(up.last().header("x-client-cert-subject"), Some("CN=svc-b"));
}
