use std::net::IpAddr;

use portcullis_core::config::{ForwardedConfig, ForwardedMode};
use portcullis_core::pipeline::{Cx, Filter, RequestHead};

use super::ForwardedFilter;
use crate::error::BuildError;
use crate::testutil::{block_on, cx, request, values};

const ALL: [&str; 5] = ["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-real-ip", "forwarded"];

fn filter(mode: ForwardedMode, trusted: &[&str]) -> ForwardedFilter {
    let cfg = ForwardedConfig { mode, trusted_proxies: trusted.iter().map(|s| (*s).to_owned()).collect() };
    ForwardedFilter::build(&cfg).expect("valid config")
}

fn run(f: &ForwardedFilter, req: &mut RequestHead, peer: &str) -> Cx {
    let mut c = cx(peer);
    block_on(f.on_request(req, &mut c));
    c
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test ip")
}

fn spoofed() -> RequestHead {
    request(
        "/",
        Some("api.example.com"),
        &[
            ("X-Forwarded-For", "6.6.6.6"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "evil.example"),
            ("X-Real-IP", "6.6.6.6"),
            ("Forwarded", "for=6.6.6.6;proto=https"),
            ("Accept", "*/*"),
        ],
    )
}

#[test]
fn untrusted_peer_cannot_spoof_x_forwarded() {
    let f = filter(ForwardedMode::XForwarded, &["10.0.0.0/8"]);
    let mut req = spoofed();
    let c = run(&f, &mut req, "203.0.113.7:5555");
    assert_eq!(c.client_ip, ip("203.0.113.7"));
    assert_eq!(values(&req.headers, "x-forwarded-for"), vec!["203.0.113.7"]);
    assert_eq!(values(&req.headers, "x-forwarded-proto"), vec!["http"]);
    assert_eq!(values(&req.headers, "x-forwarded-host"), vec!["api.example.com"]);
    assert!(!req.headers.contains("x-real-ip"));
    assert!(!req.headers.contains("forwarded"));
    assert_eq!(values(&req.headers, "accept"), vec!["*/*"], "unrelated headers untouched");
}

#[test]
fn untrusted_peer_cannot_spoof_forwarded_mode() {
    let f = filter(ForwardedMode::Forwarded, &[]);
    let mut req = spoofed();
    let c = run(&f, &mut req, "203.0.113.7:5555");
    assert_eq!(c.client_ip, ip("203.0.113.7"));
    assert_eq!(values(&req.headers, "forwarded"), vec!["for=203.0.113.7;proto=http;host=api.example.com"]);
    for name in ["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-real-ip"] {
        assert!(!req.headers.contains(name), "{name} should be stripped");
    }
}

#[test]
fn mode_none_only_strips() {
    let f = filter(ForwardedMode::None, &["10.0.0.0/8"]);
    let mut req = spoofed();
    let c = run(&f, &mut req, "203.0.113.7:5555");
    assert_eq!(c.client_ip, ip("203.0.113.7"));
    for name in ALL {
        assert!(!req.headers.contains(name), "{name} should be stripped");
    }
    assert_eq!(req.headers.len(), 1);
}

#[test]
fn mode_none_keeps_and_reads_headers_from_trusted_peer() {
    let f = filter(ForwardedMode::None, &["10.0.0.0/8"]);
    let mut req = spoofed();
    let c = run(&f, &mut req, "10.1.1.1:5555");
    assert_eq!(c.client_ip, ip("6.6.6.6"));
    assert_eq!(values(&req.headers, "x-forwarded-for"), vec!["6.6.6.6"], "not extended in mode none");
    assert_eq!(req.headers.len(), 6);
}

#[test]
fn trusted_peer_chain_extends_and_derives_client() {
    let f = filter(ForwardedMode::XForwarded, &["10.0.0.0/8", "192.168.0.0/16"]);
    // Client 198.51.100.9 prepended a lie; then a trusted hop added the real client address.
    let mut req = request(
        "/",
        Some("api.example.com"),
        &[("X-Forwarded-For", "1.2.3.4, 198.51.100.9"), ("X-Forwarded-For", "192.168.1.1")],
    );
    let c = run(&f, &mut req, "10.0.0.5:4000");
    assert_eq!(c.client_ip, ip("198.51.100.9"));
    assert_eq!(values(&req.headers, "x-forwarded-for"), vec!["1.2.3.4, 198.51.100.9, 192.168.1.1, 10.0.0.5"]);
}

#[test]
fn trusted_peer_all_trusted_chain_gives_leftmost() {
    let f = filter(ForwardedMode::XForwarded, &["10.0.0.0/8"]);
    let mut req = request("/", None, &[("X-Forwarded-For", "10.9.9.9, 10.0.0.2")]);
    let c = run(&f, &mut req, "10.0.0.5:4000");
    assert_eq!(c.client_ip, ip("10.9.9.9"));
}

#[test]
fn trusted_peer_without_xff_is_the_client() {
    let f = filter(ForwardedMode::XForwarded, &["10.0.0.0/8"]);
    let mut req = request("/", Some("h"), &[]);
    let c = run(&f, &mut req, "10.0.0.5:4000");
    assert_eq!(c.client_ip, ip("10.0.0.5"));
    assert_eq!(values(&req.headers, "x-forwarded-for"), vec!["10.0.0.5"]);
}

#[test]
fn trusted_peer_garbage_in_chain_stops_walk() {
    let f = filter(ForwardedMode::XForwarded, &["10.0.0.0/8"]);
    let mut req = request("/", None, &[("X-Forwarded-For", "1.1.1.1, not-an-ip, 10.0.0.3")]);
    let c = run(&f, &mut req, "10.0.0.5:4000");
    assert_eq!(c.client_ip, ip("10.0.0.3"));
}

#[test]
fn trusted_peer_keeps_incoming_proto_and_host() {
    let f = filter(ForwardedMode::XForwarded, &["10.0.0.0/8"]);
    let mut req = request(
        "/",
        Some("internal:8080"),
        &[("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "public.example.com")],
    );
    run(&f, &mut req, "10.0.0.5:4000");
    assert_eq!(values(&req.headers, "x-forwarded-proto"), vec!["https"]);
    assert_eq!(values(&req.headers, "x-forwarded-host"), vec!["public.example.com"]);
}

#[test]
fn proto_follows_tls_and_host_absent_without_authority() {
    let f = filter(ForwardedMode::XForwarded, &[]);
    let mut req = request("/", None, &[]);
    let mut c = cx("203.0.113.7:1");
    c.tls = true;
    block_on(f.on_request(&mut req, &mut c));
    assert_eq!(values(&req.headers, "x-forwarded-proto"), vec!["https"]);
    assert!(!req.headers.contains("x-forwarded-host"));
}

#[test]
fn ipv6_peer_in_both_modes() {
    let x = filter(ForwardedMode::XForwarded, &[]);
    let mut req = request("/", Some("[::1]:8443"), &[]);
    run(&x, &mut req, "[2001:db8::7]:1234");
    assert_eq!(values(&req.headers, "x-forwarded-for"), vec!["2001:db8::7"]);

    let f = filter(ForwardedMode::Forwarded, &[]);
    let mut req = request("/", Some("[::1]:8443"), &[]);
    let mut c = cx("[::1]:1234");
    c.tls = true;
    block_on(f.on_request(&mut req, &mut c));
    assert_eq!(values(&req.headers, "forwarded"), vec![r#"for="[::1]";proto=https;host="[::1]:8443""#]);
}

#[test]
fn forwarded_mode_appends_to_trusted_chain() {
    let f = filter(ForwardedMode::Forwarded, &["10.0.0.0/8"]);
    let mut req = request(
        "/",
        Some("api.example.com"),
        &[
            ("Forwarded", r#"for=198.51.100.9;proto=https, for="[2001:db8::1]""#),
            ("X-Forwarded-For", "9.9.9.9"),
        ],
    );
    let c = run(&f, &mut req, "10.0.0.5:4000");
    assert_eq!(c.client_ip, ip("2001:db8::1"), "Forwarded preferred in forwarded mode");
    assert_eq!(
        values(&req.headers, "forwarded"),
        vec![
            r#"for=198.51.100.9;proto=https, for="[2001:db8::1]", for=10.0.0.5;proto=http;host=api.example.com"#
        ]
    );
    assert_eq!(values(&req.headers, "x-forwarded-for"), vec!["9.9.9.9"], "kept untouched");
}

#[test]
fn xff_mode_reads_forwarded_when_no_xff() {
    let f = filter(ForwardedMode::XForwarded, &["10.0.0.0/8"]);
    let mut req = request("/", None, &[("Forwarded", "for=198.51.100.9")]);
    let c = run(&f, &mut req, "10.0.0.5:4000");
    assert_eq!(c.client_ip, ip("198.51.100.9"));
}

#[test]
fn mapped_v4_peer_is_canonical() {
    let f = filter(ForwardedMode::XForwarded, &["10.0.0.0/8"]);
    let mut req = request("/", None, &[("X-Forwarded-For", "198.51.100.9")]);
    let c = run(&f, &mut req, "[::ffff:10.0.0.5]:4000");
    assert_eq!(c.client_ip, ip("198.51.100.9"), "mapped peer matched the v4 block");
    assert_eq!(values(&req.headers, "x-forwarded-for"), vec!["198.51.100.9, 10.0.0.5"]);

    let mut req = request("/", None, &[("X-Forwarded-For", "6.6.6.6")]);
    let c = run(&f, &mut req, "[::ffff:203.0.113.1]:4000");
    assert_eq!(c.client_ip, ip("203.0.113.1"));
    assert_eq!(values(&req.headers, "x-forwarded-for"), vec!["203.0.113.1"]);
}

#[test]
fn host_needing_quotes_is_escaped() {
    let f = filter(ForwardedMode::Forwarded, &[]);
    let mut req = request("/", Some("a\"b:80"), &[]);
    run(&f, &mut req, "192.0.2.1:1");
    assert_eq!(values(&req.headers, "forwarded"), vec![r#"for=192.0.2.1;proto=http;host="a\"b:80""#]);
}

#[test]
fn bad_trusted_proxy_is_a_build_error() {
    let cfg = ForwardedConfig {
        mode: ForwardedMode::XForwarded,
        trusted_proxies: vec!["10.0.0.0/8".to_owned(), "10.0.0.0/40".to_owned()],
    };
    match ForwardedFilter::build(&cfg) {
        Err(BuildError::TrustedProxy { path, entry, .. }) => {
            assert_eq!(path, "forwarded.trusted_proxies[1]");
            assert_eq!(entry, "10.0.0.0/40");
        }
        other => panic!("expected a TrustedProxy error, got {other:?}"),
    }
}
