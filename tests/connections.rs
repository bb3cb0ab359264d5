//! Client connection behaviour: HTTP/1.0 framing and keep-alive, pipelining, upstream
//! connection reuse, `Expect: 100-continue`, the idle keep-alive timeout and the per-connection
//! request limit.

mod common;

use std::time::Duration;

use common::{Client, Framing, Gateway, LONG, Reply, Upstream, config, response, upstream_toml};

fn catch_all(http: &str, up: &Upstream) -> Gateway {
    Gateway::start(&config(
        http,
        &format!("{}\n[[routes]]\nprefix = \"/\"\nupstream = \"app\"\n", upstream_toml("app", up.addr)),
    ))
}

#[test]
fn http10_client_gets_a_length_framed_response_and_a_close() {
    let up = Upstream::fixed(200, "hello 1.0");
    let gw = catch_all("", &up);
    let mut c = Client::connect(gw.addr);
    // HTTP/1.0 needs no Host.
    let resp = c.request(b"GET /old HTTP/1.0\r\n\r\n");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.framing, Framing::Length(9));
    assert_eq!(resp.body, b"hello 1.0");
    assert_eq!(resp.header("connection"), Some("close"));
    c.expect_closed(LONG);
    // The upstream still got HTTP/1.1.
    assert_eq!(up.last().version, "HTTP/1.1");
}

#[test]
fn http10_client_gets_a_close_delimited_body_for_a_chunked_upstream_response() {
    let len = 300_000;
    let up = Upstream::start(move |_| Reply::Chunked { len, seed: 10, max_chunk: 40_000 });
    let gw = catch_all("", &up);
    let mut c = Client::connect(gw.addr);
    let resp = c.request(b"GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.framing, Framing::UntilClose, "no chunked coding toward HTTP/1.0: {:?}", resp.headers);
    assert!(resp.header("transfer-encoding").is_none());
    assert!(resp.header("content-length").is_none());
    assert_eq!(resp.header("connection"), Some("close"), "close-delimited means closing");
    let mut d = common::Digest::default();
    d.update(&resp.body);
    assert_eq!(d.finish(), common::Pattern::digest(10, len), "body intact");
}

#[test]
fn http10_keep_alive_is_honoured_for_length_framed_responses() {
    let up = Upstream::fixed(200, "again");
    let gw = catch_all("", &up);
    let mut c = Client::connect(gw.addr);
    for _ in 0..3 {
        let resp = c.request(b"GET /ka HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body, b"again");
        assert_eq!(resp.header("connection"), Some("keep-alive"));
    }
    // Without the keep-alive token the connection closes after the response.
    let resp = c.request(b"GET /ka HTTP/1.0\r\n\r\n");
    assert_eq!(resp.header("connection"), Some("close"));
    c.expect_closed(LONG);
    // A local reply to an HTTP/1.0 client closes too.
    let gw2 = Gateway::start(&config("", &upstream_toml("app", up.addr)));
    let mut c = Client::connect(gw2.addr);
    let resp = c.request(b"GET /none HTTP/1.0\r\n\r\n");
    resp.assert_routed_error(404, "route_not_found");
    c.expect_closed(LONG);
}

#[test]
fn pipelined_requests_are_answered_in_order_on_one_connection() {
    let up = Upstream::start(|req| {
        // Later requests answer sooner: order must come from the gateway, not from timing.
        let delay = match req.path() {
            "/p0" => 60,
            "/p1" => 30,
            _ => 0,
        };
        let body = format!("{} {} {}", req.method, req.target, String::from_utf8_lossy(&req.body));
        Reply::Delay(
            Duration::from_millis(delay),
            Box::new(Reply::Raw(response(200, "OK", &[], body.as_bytes()))),
        )
    });
    let gw = catch_all("", &up);
    let mut c = Client::connect(gw.addr);
    let mut batch = Vec::new();
    batch.extend_from_slice(b"GET /p0 HTTP/1.1\r\nHost: t\r\n\r\n");
    batch.extend_from_slice(b"POST /p1 HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nfirst");
    batch.extend_from_slice(b"GET /p2?x=1 HTTP/1.1\r\nHost: t\r\n\r\n");
    batch.extend_from_slice(
        b"POST /p3 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    );
    batch.extend_from_slice(b"GET /p4 HTTP/1.1\r\nHost: t\r\n\r\n");
    c.send(&batch);
    let want = ["GET /p0 ", "POST /p1 first", "GET /p2?x=1 ", "POST /p3 abc", "GET /p4 "];
    for w in want {
        let resp = c.read_response();
        assert_eq!(resp.status, 200);
        assert_eq!(resp.text(), w);
    }
    c.expect_open(Duration::from_millis(200));
    assert_eq!(c.get("/after").text(), "GET /after ");
}

#[test]
fn keep_alive_reuses_upstream_connections() {
    let up = Upstream::echo("app");
    let gw = catch_all("", &up);
    let mut total = 0;
    for conn in 0..5 {
        let mut c = Client::connect(gw.addr);
        for i in 0..10 {
            let resp = c.get(&format!("/ka/{conn}/{i}"));
            assert_eq!(resp.status, 200);
            assert!(resp.header("connection").is_none());
            total += 1;
        }
    }
    assert_eq!(up.requests(), total);
    assert_eq!(total, 50);
    let accepted = up.accepted();
    assert!(accepted < 10, "upstream accepted {accepted} connections for {total} requests");
    // Several requests shared an upstream connection.
    let mut per_conn = std::collections::HashMap::new();
    for r in up.seen() {
        *per_conn.entry(r.conn).or_insert(0) += 1;
    }
    assert!(per_conn.values().any(|&n| n >= 10), "reuse per upstream connection: {per_conn:?}");
}

#[test]
fn expect_100_continue_gets_an_interim_response_before_the_body() {
    let up = Upstream::echo("app");
    let gw = catch_all("", &up);
    let mut c = Client::connect(gw.addr);
    c.send(b"PUT /upload HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 11\r\n\r\n");
    let interim = c.read_response();
    assert_eq!((interim.status, interim.reason.as_str()), (100, "Continue"));
    assert_eq!(interim.raw_head, b"HTTP/1.1 100 Continue\r\n\r\n");
    c.send(b"hello world");
    let resp = c.read_response();
    assert_eq!(resp.status, 200);
    let echo = resp.json();
    assert_eq!(echo["body"], "hello world");
    let seen = up.last();
    assert!(seen.header("expect").is_none(), "Expect is hop-by-hop here: {:?}", seen.headers);
    // The connection is reusable, also with a chunked body after Expect.
    c.send(b"POST /c HTTP/1.1\r\nHost: t\r\nExpect: 100-Continue\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_eq!(c.read_response().status, 100);
    c.send(b"4\r\nwiki\r\n0\r\n\r\n");
    let resp = c.read_response();
    assert_eq!(resp.json()["body"], "wiki");
}

#[test]
fn idle_keep_alive_connection_is_closed_after_idle_timeout() {
    let up = Upstream::fixed(200, "x");
    let gw = catch_all("idle_timeout = \"1s\"\nheader_timeout = \"5s\"", &up);
    let mut c = Client::connect(gw.addr);
    assert_eq!(c.get("/one").status, 200);
    let start = std::time::Instant::now();
    c.expect_closed(LONG);
    let waited = start.elapsed();
    assert!(waited >= Duration::from_millis(800), "closed after {waited:?}, before the idle timeout");
    // A connection that keeps working is not closed early: requests 0.3 s apart stay on it.
    let mut c = Client::connect(gw.addr);
    for _ in 0..3 {
        assert_eq!(c.get("/busy").status, 200);
        c.expect_open(Duration::from_millis(300));
    }
}

#[test]
fn max_requests_per_connection_closes_after_the_last_one() {
    let up = Upstream::fixed(200, "x");
    let gw = catch_all("max_requests_per_connection = 3", &up);
    let mut c = Client::connect(gw.addr);
    for i in 0..3 {
        let resp = c.get("/n");
        assert_eq!(resp.status, 200);
        let expect_close = i == 2;
        assert_eq!(
            resp.header("connection") == Some("close"),
            expect_close,
            "request {i}: {:?}",
            resp.headers
        );
    }
    c.expect_closed(LONG);
}

#[test]
fn client_connection_close_is_honoured() {
    let up = Upstream::fixed(200, "bye");
    let gw = catch_all("", &up);
    let mut c = Client::connect(gw.addr);
    let resp = c.request(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert_eq!(resp.body, b"bye");
    assert_eq!(resp.header("connection"), Some("close"));
    c.expect_closed(LONG);
    assert!(up.last().header("connection").is_none(), "Connection is hop-by-hop");
}

/// Runs curl; returns (stdout, stderr) after asserting it succeeded.
fn curl(args: &[&str]) -> (String, String) {
    let out = std::process::Command::new("curl").args(args).output().expect("run curl (the suite needs it)");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "curl {args:?} failed: {stderr}");
    (stdout, stderr)
}

#[test]
fn curl_uploads_through_100_continue_and_reuses_its_connection() {
    let up = Upstream::echo("app");
    let gw = catch_all("", &up);
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("body.bin");
    let mut body = vec![0u8; 2 * 1024 * 1024 + 3];
    common::Pattern::new(11).fill(&mut body);
    std::fs::write(&file, &body).expect("write the body file");
    let url = format!("http://{}/curl/upload?x=1", gw.addr);
    let data = format!("@{}", file.display());
    let (_, stderr) = curl(&[
        "-sS",
        "-v",
        "-o",
        "/dev/null",
        "--expect100-timeout",
        "20",
        "-H",
        "Expect: 100-continue",
        "--data-binary",
        &data,
        &url,
    ]);
    assert!(stderr.contains("HTTP/1.1 100 Continue"), "curl saw the interim response: {stderr}");
    assert!(stderr.contains("HTTP/1.1 200"), "{stderr}");
    let seen = up.last();
    assert_eq!(seen.target, "/curl/upload?x=1");
    let mut d = common::Digest::default();
    d.update(&body);
    assert_eq!(seen.body_digest, d.finish(), "curl's body arrived intact");

    // Two transfers in one invocation share one connection (the second made no new connect).
    let (stdout, _) = curl(&[
        "-sS",
        "-o",
        "/dev/null",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}:%{num_connects}\n",
        &format!("http://{}/a", gw.addr),
        &format!("http://{}/b", gw.addr),
    ]);
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        vec!["200:1", "200:0"],
        "second transfer reused the connection"
    );
}
