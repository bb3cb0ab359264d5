//! Authorisation on the mTLS client-certificate identity through the real binary: routes that
//! accept only certain SPIFFE ids, subjects or DNS names, with real certificates from a generated
//! CA (403 JSON for the others, and for clients without a certificate).

mod common;

use std::sync::Arc;

use common::tls::{Pki, TlsClient};
use common::{Gateway, Upstream, upstream_toml};

const BILLING: &str = "spiffe://example.org/ns/prod/sa/billing";

#[test]
fn routes_accept_only_the_certificate_identities_they_name() {
    let pki = Pki::new();
    let (crt, key) = pki.issue("server", &["localhost"]);
    let up = Upstream::echo("app");
    let gw = Gateway::start(&format!(
        "[server]\nshards = 2\npin_cpus = false\nwatch_config = false\n\n\
         [[listeners]]\nbind = \"127.0.0.1:0\"\n[listeners.tls]\nclient_auth = \"optional\"\nclient_ca = {:?}\n\
         [[listeners.tls.certificates]]\ncert = {:?}\nkey = {:?}\n\n{}\n\
         [[routes]]\nprefix = \"/billing\"\nupstream = \"app\"\n\
         authz = {{ client_cert = {{ spiffe_id = [\"{BILLING}\", \"spiffe://example.org/ns/prod/sa/audit\"] }} }}\n\
         [[routes]]\nprefix = \"/ops\"\nupstream = \"app\"\nauthz = {{ client_cert = {{ subject = [\"CN=ops\"] }} }}\n\
         [[routes]]\nprefix = \"/\"\nupstream = \"app\"\n",
        pki.ca_pem.display().to_string(),
        crt.display().to_string(),
        key.display().to_string(),
        upstream_toml("app", up.addr)
    ));
    let connect = |cn: &str, spiffe: Option<&str>| {
        let (cert, ckey) = pki.issue_client(cn, spiffe);
        TlsClient::connect(gw.addr, "localhost", &Arc::new(pki.client_config_with_cert(cert, ckey)))
            .expect("connect with a certificate")
    };

    let mut billing = connect("billing", Some(BILLING));
    assert_eq!(billing.get("localhost", "/billing/invoices").expect("billing").status, 200);
    assert_eq!(up.last().header("x-client-cert-spiffe-id"), Some(BILLING));
    billing.get("localhost", "/ops/restart").expect("ops").assert_error(403, "forbidden");
    assert_eq!(billing.get("localhost", "/other").expect("open").status, 200);

    let mut ops = connect("ops", None);
    assert_eq!(ops.get("localhost", "/ops/restart").expect("ops").status, 200);
    let r = ops.get("localhost", "/billing/invoices").expect("billing");
    r.assert_error(403, "forbidden");
    assert!(r.text().contains("client certificate"), "{}", r.text());

    // Another workload of the same trust domain is not on the list.
    let mut other = connect("web", Some("spiffe://example.org/ns/prod/sa/web"));
    other.get("localhost", "/billing/invoices").expect("billing").assert_error(403, "forbidden");

    // No certificate at all.
    let mut anon = TlsClient::connect(gw.addr, "localhost", &Arc::new(pki.client_config(&["http/1.1"])))
        .expect("connect");
    anon.get("localhost", "/billing/invoices")
        .expect("billing")
        .assert_error(403, "client_certificate_required");
    assert_eq!(anon.get("localhost", "/other").expect("open").status, 200);
    assert!(
        up.seen().iter().filter(|q| q.path().starts_with("/billing")).count() == 1
            && up.seen().iter().filter(|q| q.path().starts_with("/ops")).count() == 1,
        "refused requests never reached the upstream"
    );
}
