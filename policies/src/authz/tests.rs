//! Unit tests of per-route authorisation: scopes (all/any), roles, claim predicates, issuers,
//! and 401 versus 403.

use std::rc::Rc;

use bytes::Bytes;
use portcullis_core::config::{
    ApiKeyEntry, ApiKeysConfig, AuthMode, ClaimMatch, Config, RouteAuthz, ScopeMatch,
};
use portcullis_core::pipeline::{ClientCert, Filter, Flow, Identity};

use super::AuthzFilter;
use super::filter::{Denial, check, check_cert};
use crate::testutil::{block_on, cx, request, values};
use crate::transform::tests::route;

fn identity() -> Identity {
    Identity {
        source: Rc::from("main"),
        consumer: Bytes::from_static(b"user-7"),
        subject: Some(Bytes::from_static(b"user-7")),
        tier: None,
        scopes: vec![Box::from("read"), Box::from("write")].into_boxed_slice(),
        roles: vec![Box::from("editor")].into_boxed_slice(),
        claims: vec![(Box::from("tenant"), vec![Box::from("acme")].into_boxed_slice())].into_boxed_slice(),
        expires_at: 0,
    }
}

fn rule(scopes: &[&str], any: bool) -> RouteAuthz {
    RouteAuthz {
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        scopes_match: if any { ScopeMatch::Any } else { ScopeMatch::All },
        ..Default::default()
    }
}

#[test]
fn scopes_roles_claims_and_issuers() {
    let id = identity();
    assert_eq!(check(&rule(&["read", "write"], false), &id), Ok(()));
    assert_eq!(check(&rule(&["read", "admin"], false), &id), Err(Denial::Scope));
    assert_eq!(check(&rule(&["read", "admin"], true), &id), Ok(()));
    assert_eq!(check(&rule(&["admin"], true), &id), Err(Denial::Scope));
    let roles = RouteAuthz { roles: vec!["admin".to_owned(), "editor".to_owned()], ..Default::default() };
    assert_eq!(check(&roles, &id), Ok(()));
    let roles = RouteAuthz { roles: vec!["admin".to_owned()], ..Default::default() };
    assert_eq!(check(&roles, &id), Err(Denial::Role));
    let claim = |equals: Option<&str>, one_of: &[&str]| RouteAuthz {
        claims: vec![ClaimMatch {
            claim: "tenant".to_owned(),
            equals: equals.map(str::to_owned),
            one_of: one_of.iter().map(|s| (*s).to_owned()).collect(),
        }],
        ..Default::default()
    };
    assert_eq!(check(&claim(Some("acme"), &[]), &id), Ok(()));
    assert_eq!(check(&claim(Some("other"), &[]), &id), Err(Denial::Claim));
    assert_eq!(check(&claim(None, &["x", "acme"]), &id), Ok(()));
    assert_eq!(check(&claim(None, &["x", "y"]), &id), Err(Denial::Claim));
    let issuers = RouteAuthz { issuers: vec!["api_key".to_owned()], ..Default::default() };
    assert_eq!(check(&issuers, &id), Err(Denial::Issuer));
}

#[test]
fn filter_answers_403_with_scope_challenge_and_401_without_identity() {
    let mut cfg = Config::default();
    cfg.auth.api_keys = Some(ApiKeysConfig {
        from: vec![],
        keys: vec![ApiKeyEntry {
            sha256: "0".repeat(64),
            consumer: "c".to_owned(),
            tier: None,
            scopes: vec![],
            roles: vec![],
        }],
        keys_file: None,
        watch_interval: portcullis_core::config::Dur::secs(1),
    });
    let mut admin = route(Some("/admin"), None);
    admin.auth = Some(AuthMode::Optional);
    admin.authz = rule(&["admin"], false);
    cfg.routes = vec![route(Some("/"), None), admin];
    let f = AuthzFilter::build(&cfg, &crate::ChainEnv::new()).expect("some route has authz");
    let run = |with_identity: bool, route: usize| {
        let mut req = request("/", None, &[]);
        let mut c = cx("10.0.0.1:1");
        c.route = Some(route);
        if with_identity {
            c.identity = Some(Rc::new(identity()));
        }
        block_on(f.on_request(&mut req, &mut c))
    };
    assert!(matches!(run(false, 0), Flow::Continue), "routes without authz pass");
    match run(true, 1) {
        Flow::Respond(r) => {
            assert_eq!((r.status, r.code), (403, "insufficient_scope"));
            assert_eq!(
                values(&r.headers, "www-authenticate"),
                vec!["Bearer realm=\"portcullis\", error=\"insufficient_scope\", scope=\"admin\""]
            );
        }
        Flow::Continue => panic!("missing scope passed"),
    }
    match run(false, 1) {
        Flow::Respond(r) => assert_eq!((r.status, r.code), (401, "unauthorized")),
        Flow::Continue => panic!("anonymous passed"),
    }
    assert_eq!(f.denied(), 2);
}

#[test]
fn client_certificate_predicates_need_every_listed_field() {
    let cert = ClientCert {
        subject: "CN=billing,O=Acme".to_owned(),
        dns_names: vec!["billing.internal".to_owned(), "billing".to_owned()],
        uris: vec!["spiffe://acme/billing".to_owned()],
        spiffe_id: Some("spiffe://acme/billing".to_owned()),
    };
    let m = |subject: &[&str], dns: &[&str], spiffe: &[&str]| portcullis_core::config::ClientCertMatch {
        subject: subject.iter().map(|s| (*s).to_owned()).collect(),
        dns: dns.iter().map(|s| (*s).to_owned()).collect(),
        spiffe_id: spiffe.iter().map(|s| (*s).to_owned()).collect(),
    };
    assert!(check_cert(&m(&["CN=billing,O=Acme"], &[], &[]), &cert));
    assert!(check_cert(&m(&[], &["billing"], &["spiffe://acme/audit", "spiffe://acme/billing"]), &cert));
    assert!(!check_cert(&m(&["CN=billing"], &[], &[]), &cert), "subjects compare whole");
    assert!(!check_cert(&m(&["CN=billing,O=Acme"], &["web"], &[]), &cert), "every list must hold");
    let no_spiffe = ClientCert { spiffe_id: None, ..cert };
    assert!(!check_cert(&m(&[], &[], &["spiffe://acme/billing"]), &no_spiffe));
}
