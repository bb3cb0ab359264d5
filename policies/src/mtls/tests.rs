use std::rc::Rc;

use portcullis_core::config::load_str;
use portcullis_core::pipeline::{ClientCert, Filter, Flow};

use super::filter::{DNS, MtlsFilter, SPIFFE, SUBJECT};
use crate::testutil::{block_on, request};

fn filter() -> MtlsFilter {
    let cfg = load_str(
        "[[listeners]]\nbind = \"127.0.0.1:0\"\n[[upstreams]]\nname = \"a\"\nendpoints = [\"127.0.0.1:9\"]\n\
         [[routes]]\nprefix = \"/secure\"\nupstream = \"a\"\nrequire_client_cert = true\n\
         [[routes]]\nprefix = \"/\"\nupstream = \"a\"\n",
        "t.toml",
    )
    .expect("config");
    assert!(MtlsFilter::is_needed(&cfg));
    MtlsFilter::build(&cfg)
}

#[test]
fn a_required_certificate_is_enforced_and_forged_headers_removed() {
    let f = filter();
    let mut req = request("/secure", Some("a"), &[(SUBJECT, "CN=admin")]);
    let mut c = crate::testutil::cx("192.0.2.1:5000");
    c.route = Some(0);
    match block_on(f.on_request(&mut req, &mut c)) {
        Flow::Respond(r) => assert_eq!((r.status, r.code), (403, "client_certificate_required")),
        Flow::Continue => panic!("no certificate must be refused"),
    }
    let mut req = request("/open", Some("a"), &[(SUBJECT, "CN=admin")]);
    let mut c = crate::testutil::cx("192.0.2.1:5000");
    c.route = Some(1);
    assert!(matches!(block_on(f.on_request(&mut req, &mut c)), Flow::Continue));
    assert!(req.headers.get(SUBJECT).is_none(), "a forged identity header is removed");
}

#[test]
fn the_verified_identity_is_forwarded() {
    let f = filter();
    let mut req = request("/secure", Some("a"), &[]);
    let mut c = crate::testutil::cx("192.0.2.1:5000");
    c.route = Some(0);
    c.client_cert = Some(Rc::new(ClientCert {
        subject: "CN=svc-a,O=Example".into(),
        dns_names: vec!["a.internal".into(), "b.internal".into()],
        uris: vec!["spiffe://example.org/svc/a".into()],
        spiffe_id: Some("spiffe://example.org/svc/a".into()),
    }));
    assert!(matches!(block_on(f.on_request(&mut req, &mut c)), Flow::Continue));
    assert_eq!(req.headers.get(SUBJECT).map(|v| &v[..]), Some(&b"CN=svc-a,O=Example"[..]));
    assert_eq!(req.headers.get(SPIFFE).map(|v| &v[..]), Some(&b"spiffe://example.org/svc/a"[..]));
    assert_eq!(req.headers.get(DNS).map(|v| &v[..]), Some(&b"a.internal,b.internal"[..]));
}
