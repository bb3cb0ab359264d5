//! HTTP/2 upstreams (`protocol = "h2c"` and `"h2"`) against the real binary: the request head as
//! the upstream sees it (`:authority` from Host, `te: trailers`, no connection fields), trailers
//! both ways (to HTTP/2 clients always, to HTTP/1.1 clients only after `TE: trailers`), another
//! connection when the upstream's stream limit is full, a closed connection replaced without an
//! error, retries to another endpoint, and HTTP/2 over TLS (ALPN `h2`) to a second gateway.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::h2::{block_on, connect};
use common::h2_upstream::{H2Reply, H2Upstream};
use common::tls::Pki;
use common::{Client, Framing, Gateway, Upstream, closed_port};

/// One shard; a listener taking HTTP/1.1 and h2c; every path to the upstream `app` (`upstream`
/// is the rest of its table).
fn gateway(upstream: &str) -> Gateway {
    Gateway::start(&format!(
        "[server]\nshards = 1\npin_cpus = false\nwatch_config = false\n\n\
         [[listeners]]\nbind = \"127.0.0.1:0\"\nh2c = true\n\n\
         [[upstreams]]\nname = \"app\"\n{upstream}\n\
         [[routes]]\nprefix = \"/\"\nupstream = \"app\"\n"
    ))
}

fn with_trailers(_: &common::h2_upstream::H2Req) -> H2Reply {
    H2Reply {
        headers: vec![("content-type", "text/plain".into())],
        body: b"hello".to_vec(),
        trailers: vec![("x-checksum", "abc123".into())],
        ..H2Reply::default()
    }
}

/// Sends a POST with `body` and request trailers on an h2c connection; returns the status, body
/// and response trailers.
async fn h2_post_with_trailers(
    addr: std::net::SocketAddr,
    body: &'static [u8],
) -> (u16, Vec<u8>, Option<http::HeaderMap>) {
    let client = connect(addr).await;
    let mut ready = client.ready().await.expect("ready");
    let req = http::Request::post("http://api.test/upload").header("te", "trailers").body(()).expect("req");
    let (resp, mut send) = ready.send_request(req, false).expect("send");
    send.send_data(Bytes::from_static(body), false).expect("data");
    let mut trailers = http::HeaderMap::new();
    trailers.insert("x-req-sum", "42".parse().expect("value"));
    send.send_trailers(trailers).expect("request trailers");
    let resp = resp.await.expect("response");
    let status = resp.status().as_u16();
    let mut recv = resp.into_body();
    let mut got = Vec::new();
    while let Some(chunk) = recv.data().await {
        let chunk = chunk.expect("data");
        let _ = recv.flow_control().release_capacity(chunk.len());
        got.extend_from_slice(&chunk);
    }
    (status, got, recv.trailers().await.expect("trailers"))
}

#[test]
fn heads_and_trailers_pass_both_ways_over_one_multiplexed_connection() {
    let up = H2Upstream::start(100, with_trailers);
    let gw = gateway(&format!("protocol = \"h2c\"\nendpoints = [\"{}\"]\n", up.addr));

    // An HTTP/1.1 client that accepts trailers gets them as chunked trailers.
    let mut c = Client::connect(gw.addr);
    let r = c.request(
        b"POST /echo?x=1 HTTP/1.1\r\nHost: api.test\r\nTE: trailers\r\nConnection: keep-alive\r\n\
          Content-Length: 3\r\n\r\nabc",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"hello");
    assert_eq!(r.framing, Framing::Chunked);
    let trailers = String::from_utf8_lossy(&r.trailers).to_ascii_lowercase();
    assert!(trailers.contains("x-checksum: abc123"), "trailers: {trailers:?}");
    let seen = up.last();
    assert_eq!((seen.method.as_str(), seen.uri.as_str()), ("POST", "http://api.test/echo?x=1"));
    assert_eq!(seen.body, b"abc");
    assert_eq!(seen.headers.get("te").map(|v| v.as_bytes()), Some(&b"trailers"[..]));
    assert!(seen.headers.get("connection").is_none() && seen.headers.get("host").is_none());

    // Without `TE: trailers` the body arrives and the trailers are dropped.
    let r = c.request(b"GET /plain HTTP/1.1\r\nHost: api.test\r\n\r\n");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"hello"[..]));
    assert!(r.trailers.is_empty(), "no trailers unasked: {:?}", String::from_utf8_lossy(&r.trailers));
    assert!(up.last().headers.get("te").is_none(), "te only when the client sent it");

    // An HTTP/2 client gets the response trailers, and its request trailers reach the upstream.
    let (status, body, trailers) = block_on(h2_post_with_trailers(gw.addr, b"payload"));
    assert_eq!((status, body.as_slice()), (200, &b"hello"[..]));
    let trailers = trailers.expect("response trailers");
    assert_eq!(trailers.get("x-checksum").map(|v| v.as_bytes()), Some(&b"abc123"[..]));
    let seen = up.last();
    assert_eq!(seen.body, b"payload");
    let req_trailers = seen.trailers.expect("request trailers reached the upstream");
    assert_eq!(req_trailers.get("x-req-sum").map(|v| v.as_bytes()), Some(&b"42"[..]));

    assert_eq!(up.accepted(), 1, "every request shared one upstream connection");
}

#[test]
fn a_full_connection_opens_another_and_idle_ones_are_reused() {
    // At most 2 streams per connection; each answer waits so all requests overlap.
    let up = H2Upstream::start(2, |_| H2Reply {
        body: b"ok".to_vec(),
        delay: Duration::from_millis(600),
        ..H2Reply::default()
    });
    let gw = gateway(&format!("protocol = \"h2c\"\nendpoints = [\"{}\"]\n", up.addr));
    let statuses: Vec<u16> = block_on(async {
        let client = connect(gw.addr).await;
        let mut tasks = Vec::new();
        for i in 0..6 {
            let mut c = client.clone();
            tasks.push(tokio::spawn(async move {
                let path = format!("/r{i}");
                common::h2::send(&mut c, "GET", &path, &[], None).await.expect("response").status
            }));
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.expect("task"));
        }
        out
    });
    assert_eq!(statuses, vec![200; 6]);
    let opened = up.accepted();
    assert!(opened >= 3, "6 overlapping streams at 2 per connection need 3 connections, saw {opened}");
    // Later requests reuse the open connections.
    for _ in 0..3 {
        assert_eq!(common::get(gw.addr, "/again").status, 200);
    }
    assert_eq!(up.accepted(), opened, "no new connection for sequential requests");
}

#[test]
fn a_closed_connection_is_replaced_without_an_error() {
    // The upstream closes each connection after one answer.
    let up = H2Upstream::start_closing(100, 1, |_| H2Reply { body: b"ok".to_vec(), ..H2Reply::default() });
    let gw = gateway(&format!("protocol = \"h2c\"\nendpoints = [\"{}\"]\n", up.addr));
    let mut c = Client::connect(gw.addr);
    for i in 0..4 {
        let r = c.request(format!("GET /n{i} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes());
        assert_eq!((r.status, r.body.as_slice()), (200, &b"ok"[..]), "request {i}");
    }
    assert_eq!(up.accepted(), 4, "one connection per answer");
}

#[test]
fn connect_failures_retry_on_another_endpoint_and_answer_502_when_none_is_left() {
    let up = H2Upstream::start(100, |_| H2Reply { body: b"ok".to_vec(), ..H2Reply::default() });
    let dead = closed_port();
    let gw = Gateway::start(&format!(
        "[server]\nshards = 1\npin_cpus = false\nwatch_config = false\n\n\
         [[listeners]]\nbind = \"127.0.0.1:0\"\n\n\
         [[upstreams]]\nname = \"two\"\nprotocol = \"h2c\"\nendpoints = [\"{dead}\", \"{}\"]\n\
         outlier = {{ consecutive_failures = 0 }}\n\n\
         [[upstreams]]\nname = \"none\"\nprotocol = \"h2c\"\nendpoints = [\"{dead}\"]\n\n\
         [[routes]]\nprefix = \"/none\"\nupstream = \"none\"\n\n\
         [[routes]]\nprefix = \"/\"\nupstream = \"two\"\nretry = {{ max = 1, budget_percent = 100 }}\n",
        up.addr
    ));
    for _ in 0..4 {
        let r = common::get(gw.addr, "/x");
        assert_eq!(r.status, 200, "the dead endpoint is retried elsewhere: {}", r.text());
    }
    common::get(gw.addr, "/none").assert_routed_error(502, "upstream_connect_failed");
}

#[test]
fn h2_over_tls_with_alpn_reaches_an_h2_only_listener() {
    // The upstream is a second gateway whose TLS listener offers only h2, in front of an echo.
    let pki = Pki::new();
    let echo = Upstream::echo("echo");
    let (crt, key) = pki.issue("inner", &["localhost"]);
    let inner = Gateway::start(&format!(
        "[server]\nshards = 1\npin_cpus = false\nwatch_config = false\n\n\
         [[listeners]]\nbind = \"127.0.0.1:0\"\n[listeners.tls]\nalpn = [\"h2\"]\n\
         [[listeners.tls.certificates]]\ncert = {:?}\nkey = {:?}\n\n\
         [[upstreams]]\nname = \"echo\"\nendpoints = [\"{}\"]\n\n\
         [[routes]]\nprefix = \"/\"\nupstream = \"echo\"\n",
        crt.display().to_string(),
        key.display().to_string(),
        echo.addr
    ));
    let gw = gateway(&format!(
        "protocol = \"h2\"\nendpoints = [\"{}\"]\n[upstreams.tls]\nca = {:?}\nserver_name = \"localhost\"\n",
        inner.addr,
        pki.ca_pem.display().to_string()
    ));
    let r = common::get(gw.addr, "/over/tls");
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = echo.last();
    assert_eq!(seen.path(), "/over/tls");
    assert_eq!(seen.header("x-forwarded-proto"), Some("https"), "the inner gateway served it over TLS");
}

#[test]
fn a_slow_answer_times_out_with_504_and_the_connection_serves_the_next_request() {
    let up = H2Upstream::start(100, |r| H2Reply {
        body: b"ok".to_vec(),
        delay: if r.uri.ends_with("/slow") { Duration::from_secs(5) } else { Duration::ZERO },
        ..H2Reply::default()
    });
    let gw = Gateway::start(&format!(
        "[server]\nshards = 1\npin_cpus = false\nwatch_config = false\n\n\
         [[listeners]]\nbind = \"127.0.0.1:0\"\n\n\
         [[upstreams]]\nname = \"app\"\nprotocol = \"h2c\"\nendpoints = [\"{}\"]\n\n\
         [[routes]]\nprefix = \"/\"\nupstream = \"app\"\ntimeout = \"300ms\"\n",
        up.addr
    ));
    common::get(gw.addr, "/slow").assert_routed_error(504, "upstream_timeout");
    // The timed-out stream was reset, not the connection: the next request shares it.
    let r = common::get(gw.addr, "/fast");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"ok"[..]));
    assert_eq!(up.accepted(), 1);
}
