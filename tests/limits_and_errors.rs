//! Every error the gateway answers itself: malformed requests (400), slow heads (408), bodies
//! over the limit (413), heads over the limits (431), unsupported expectations (417), upstream
//! failures (502) and slowness (504). Each reply has the JSON error shape, and connections whose
//! framing can no longer be trusted are closed.

mod common;

use std::time::{Duration, Instant};

use common::{Client, Gateway, LONG, Reply, Upstream, closed_port, config, upstream_toml};

/// A gateway with tight limits in front of an echo upstream. Routes: `/small` (body limit
/// 1000 bytes), `/slow` (timeout 1 s), everything else.
fn limited(up: &Upstream) -> Gateway {
    Gateway::start(&config(
        "max_header_bytes = \"1KiB\"\nmax_headers = 8\nheader_timeout = \"1s\"\nmax_body_bytes = \"1MiB\"",
        &format!(
            "{}\n[[routes]]\nprefix = \"/small\"\nmax_body_bytes = 1000\nupstream = \"app\"\n\n\
             [[routes]]\nprefix = \"/slow\"\ntimeout = \"1s\"\nupstream = \"app\"\n\n\
             [[routes]]\nprefix = \"/\"\nupstream = \"app\"\n",
            upstream_toml("app", up.addr)
        ),
    ))
}

/// Sends `raw` on a fresh connection, expects a closing error reply with `status`/`code`.
fn expect_closing_error(gw: &Gateway, raw: &[u8], status: u16, code: &str) -> String {
    let mut c = Client::connect(gw.addr);
    c.send(raw);
    let resp = c.read_response();
    let id = resp.assert_error(status, code);
    assert_eq!(resp.header("connection"), Some("close"), "{status} {code} announces the close");
    c.expect_closed(LONG);
    id
}

#[test]
fn malformed_requests_are_400_and_close_the_connection() {
    let up = Upstream::echo("app");
    let gw = limited(&up);
    let cases: [(&str, &[u8]); 12] = [
        ("garbage request line", b"HELLO\r\n\r\n"),
        ("space in the target", b"GET /a b HTTP/1.1\r\nHost: t\r\n\r\n"),
        ("no version", b"GET /\r\nHost: t\r\n\r\n"),
        ("control byte in the target", b"GET /a\x01b HTTP/1.1\r\nHost: t\r\n\r\n"),
        (
            "CL and TE together",
            b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ),
        (
            "conflicting Content-Length",
            b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        ),
        ("non-numeric Content-Length", b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5x\r\n\r\nhello"),
        ("obs-fold", b"GET / HTTP/1.1\r\nHost: t\r\nX-Folded: a\r\n  b\r\n\r\n"),
        ("bare CR in a field value", b"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\rb\r\n\r\n"),
        ("invalid header name", b"GET / HTTP/1.1\r\nHost: t\r\nBad Name: x\r\n\r\n"),
        ("missing Host in HTTP/1.1", b"GET / HTTP/1.1\r\nX: y\r\n\r\n"),
        ("two Host fields", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
    ];
    for (what, raw) in cases {
        let mut c = Client::connect(gw.addr);
        c.send(raw);
        let resp = c.try_read_response(false).unwrap_or_else(|e| panic!("{what}: no response: {e}"));
        assert_eq!(resp.status, 400, "{what}: {}", resp.text());
        let id = resp.assert_error(400, "bad_request");
        assert_eq!(id.len(), 32, "{what}: a parse error still gets a generated request id");
        assert_eq!(resp.header("x-request-id"), Some(id.as_str()), "{what}: the id is echoed");
        assert_eq!(resp.header("connection"), Some("close"), "{what}");
        c.expect_closed(LONG);
    }
    assert_eq!(up.requests(), 0, "nothing malformed reached the upstream");
}

#[test]
fn unsupported_http_version_is_505() {
    let up = Upstream::echo("app");
    let gw = limited(&up);
    expect_closing_error(&gw, b"GET / HTTP/1.2\r\nHost: t\r\n\r\n", 505, "http_version_not_supported");
    expect_closing_error(&gw, b"GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505, "http_version_not_supported");
}

#[test]
fn invalid_chunk_size_is_400_and_closes() {
    let up = Upstream::echo("app");
    let gw = limited(&up);
    for body in [
        &b"zz\r\nhello\r\n0\r\n\r\n"[..],
        b"5 \r\nhello\r\n0\r\n\r\n",
        b"-5\r\nhello\r\n0\r\n\r\n",
        b"5\r\nhelloXX0\r\n\r\n",
    ] {
        let mut raw = b"POST /chunk HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        raw.extend_from_slice(body);
        let id = expect_closing_error(&gw, &raw, 400, "bad_request");
        assert!(!id.is_empty(), "the request was parsed, so the reply has its id");
    }
}

#[test]
fn unsupported_transfer_coding_is_501() {
    let up = Upstream::echo("app");
    let gw = limited(&up);
    expect_closing_error(
        &gw,
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        501,
        "not_implemented",
    );
}

#[test]
fn slow_request_head_is_408_after_header_timeout() {
    let up = Upstream::echo("app");
    let gw = limited(&up);
    let mut c = Client::connect(gw.addr);
    let start = Instant::now();
    c.send(b"GET /partial HTTP/1.1\r\nHost: t\r\n");
    let resp = c.read_response();
    let waited = start.elapsed();
    resp.assert_error(408, "request_timeout");
    assert!(waited >= Duration::from_millis(800), "408 came after {waited:?}, before the 1 s timeout");
    assert_eq!(resp.header("connection"), Some("close"));
    c.expect_closed(LONG);

    // Trickling bytes does not extend the deadline: the timeout runs from the first byte.
    let mut c = Client::connect(gw.addr);
    let start = Instant::now();
    for b in b"GET /trickle HTTP/1.1\r\nHost: t\r\nX-Slow: " {
        if c.try_send(&[*b]).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        if start.elapsed() > Duration::from_millis(1600) {
            break;
        }
    }
    let resp = c.read_response();
    resp.assert_error(408, "request_timeout");
    assert_eq!(up.requests(), 0);
}

#[test]
fn content_length_over_the_route_limit_is_413_before_the_body() {
    let up = Upstream::echo("app");
    let gw = limited(&up);
    // Only the head is sent: the gateway answers without waiting for the body.
    let id = expect_closing_error(
        &gw,
        b"POST /small/upload HTTP/1.1\r\nHost: t\r\nContent-Length: 1001\r\n\r\n",
        413,
        "payload_too_large",
    );
    assert!(!id.is_empty());
    assert_eq!(up.requests(), 0, "a refused body never reaches the upstream");

    // Exactly at the limit is fine.
    let mut raw = b"POST /small/upload HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n".to_vec();
    raw.extend_from_slice(&[b'a'; 1000]);
    let resp = Client::connect(gw.addr).request(&raw);
    assert_eq!(resp.status, 200);
    assert_eq!(up.last().body.len(), 1000);

    // The global limit applies to routes without their own.
    let resp =
        Client::connect(gw.addr).request(b"POST /big HTTP/1.1\r\nHost: t\r\nContent-Length: 1048577\r\n\r\n");
    resp.assert_routed_error(413, "payload_too_large");
}

#[test]
fn chunked_body_over_the_route_limit_is_413_mid_stream() {
    let up = Upstream::echo("app");
    let gw = limited(&up);
    // 3 x 400 bytes: the limit (1000) is crossed inside the third chunk. Everything is sent in
    // one write, so the gateway has read it all when it answers (no reset on close).
    let mut raw = b"POST /small/chunked HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..3 {
        raw.extend_from_slice(b"190\r\n");
        raw.extend_from_slice(&[b'z'; 400]);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    let id = expect_closing_error(&gw, &raw, 413, "payload_too_large");
    assert!(!id.is_empty());
    // Under the limit, chunked passes.
    let resp = Client::connect(gw.addr).request(
        b"POST /small/chunked HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    );
    assert_eq!(resp.status, 200);
    assert_eq!(up.last().body, b"abc");
}

#[test]
fn oversized_head_is_431() {
    let up = Upstream::echo("app");
    let gw = limited(&up);
    let big = format!("GET / HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n", "v".repeat(1500));
    expect_closing_error(&gw, big.as_bytes(), 431, "request_header_too_large");
    // A head that never ends is cut off at the limit too.
    let endless = format!("GET / HTTP/1.1\r\nHost: t\r\nX-Big: {}", "v".repeat(2000));
    expect_closing_error(&gw, endless.as_bytes(), 431, "request_header_too_large");
    // Just under the limit passes.
    let ok = format!("GET / HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n", "v".repeat(900));
    assert_eq!(Client::connect(gw.addr).request(ok.as_bytes()).status, 200);
}

#[test]
fn too_many_header_fields_is_431() {
    let up = Upstream::echo("app");
    let gw = limited(&up);
    let mut raw = String::from("GET / HTTP/1.1\r\nHost: t\r\n");
    for i in 0..12 {
        raw.push_str(&format!("X-H{i}: {i}\r\n"));
    }
    raw.push_str("\r\n");
    expect_closing_error(&gw, raw.as_bytes(), 431, "too_many_headers");
    // Eight fields (the limit) pass.
    let mut raw = String::from("GET / HTTP/1.1\r\nHost: t\r\n");
    for i in 0..7 {
        raw.push_str(&format!("X-H{i}: {i}\r\n"));
    }
    raw.push_str("\r\n");
    assert_eq!(Client::connect(gw.addr).request(raw.as_bytes()).status, 200);
}

#[test]
fn unsupported_expectation_is_417() {
    let up = Upstream::echo("app");
    let gw = limited(&up);
    expect_closing_error(
        &gw,
        b"POST / HTTP/1.1\r\nHost: t\r\nExpect: 200-ok\r\nContent-Length: 2\r\n\r\nhi",
        417,
        "expectation_failed",
    );
    assert_eq!(up.requests(), 0);
}

#[test]
fn refused_upstream_is_502_and_the_client_connection_survives() {
    let live = Upstream::echo("live");
    let dead = closed_port();
    let gw = Gateway::start(&config(
        "",
        &format!(
            "{}{}\n[[routes]]\nprefix = \"/dead\"\nupstream = \"dead\"\n\n[[routes]]\nprefix = \"/\"\nupstream = \"live\"\n",
            upstream_toml("dead", dead),
            upstream_toml("live", live.addr)
        ),
    ));
    let mut c = Client::connect(gw.addr);
    let resp = c.get("/dead/x");
    resp.assert_routed_error(502, "upstream_connect_failed");
    assert!(resp.header("connection").is_none(), "a 502 does not close the client connection");
    assert_eq!(c.get("/fine").status, 200, "the same connection serves the next request");
    // A request with a buffered body to the dead upstream: same, and the body is discarded.
    let resp = c.request(b"POST /dead HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc");
    resp.assert_routed_error(502, "upstream_connect_failed");
    assert_eq!(c.get("/fine").status, 200);
}

#[test]
fn upstream_closing_without_a_response_is_502() {
    let up = Upstream::start(|_| Reply::Close);
    let gw = Gateway::start(&config(
        "",
        &format!("{}\n[[routes]]\nprefix = \"/\"\nupstream = \"app\"\n", upstream_toml("app", up.addr)),
    ));
    let mut c = Client::connect(gw.addr);
    c.get("/x").assert_routed_error(502, "upstream_reset");
    c.get("/y").assert_routed_error(502, "upstream_reset");
    // A truncated response (head promises more than arrives) aborts the client connection.
    let up2 = Upstream::start(|_| {
        Reply::RawThenClose(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly-this".to_vec())
    });
    let gw2 = Gateway::start(&config(
        "",
        &format!("{}\n[[routes]]\nprefix = \"/\"\nupstream = \"app\"\n", upstream_toml("app", up2.addr)),
    ));
    let mut c = Client::connect(gw2.addr);
    c.send(b"GET /t HTTP/1.1\r\nHost: t\r\n\r\n");
    let err = c.try_read_response(false).expect_err("a truncated body cannot be read in full");
    assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof, "{err}");
}

#[test]
fn invalid_upstream_response_is_502() {
    let up = Upstream::start(|_| Reply::RawThenClose(b"HTTP/1.1 2xx Nope\r\n\r\n".to_vec()));
    let gw = Gateway::start(&config(
        "",
        &format!("{}\n[[routes]]\nprefix = \"/\"\nupstream = \"app\"\n", upstream_toml("app", up.addr)),
    ));
    get_error(&gw, "/", 502, "upstream_bad_response");
}

fn get_error(gw: &Gateway, path: &str, status: u16, code: &str) {
    common::get(gw.addr, path).assert_routed_error(status, code);
}

#[test]
fn slow_upstream_is_504_after_the_route_timeout() {
    let up = Upstream::start(|req| {
        let delay = if req.path().starts_with("/slow") { 4000 } else { 0 };
        Reply::Delay(Duration::from_millis(delay), Box::new(common::echo_reply("app", req)))
    });
    let gw = limited(&up);
    let mut c = Client::connect(gw.addr);
    let start = Instant::now();
    let resp = c.get("/slow/x");
    let waited = start.elapsed();
    resp.assert_routed_error(504, "upstream_timeout");
    assert!(waited >= Duration::from_millis(800), "504 after {waited:?}, before the 1 s timeout");
    assert!(waited < Duration::from_millis(3500), "504 after {waited:?}: the timeout was not applied");
    // The client connection is still usable, and the next request does not get the late answer.
    let resp = c.get("/fast");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json()["target"], "/fast");
}
