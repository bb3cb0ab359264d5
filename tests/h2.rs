//! HTTP/2 toward clients against the real binary: TLS with ALPN h2 and cleartext prior
//! knowledge through the same engine (routing, filters, JSON errors, bodies both ways), stream
//! limits, and each flood defence (rapid reset, CONTINUATION, PING, SETTINGS) with a raw client.

mod common;

use std::process::Command;
use std::time::Duration;

use common::h2::{self as h2c, RawH2, frame, get_block, kind};
use common::tls::Pki;
use common::{Gateway, LONG, Reply, Upstream, echo_reply, upstream_toml};

/// A TLS listener offering h2 and an h2c plain listener, `http2` as the `[http2]` section, and
/// routes: `/slow` (upstream waits 3 s) and everything else to the echo upstream.
fn gateway(pki: &Pki, http2: &str, up: &Upstream) -> Gateway {
    let (crt, key) = pki.issue("server", &["localhost"]);
    Gateway::start(&format!(
        "[server]\nshards = 2\npin_cpus = false\nwatch_config = false\n\n\
         [[listeners]]\nname = \"tls\"\nbind = \"127.0.0.1:0\"\n[listeners.tls]\nalpn = [\"h2\", \"http/1.1\"]\n\
         [[listeners.tls.certificates]]\ncert = {:?}\nkey = {:?}\n\n\
         [[listeners]]\nname = \"h2c\"\nbind = \"127.0.0.1:0\"\nh2c = true\n\n\
         [http2]\n{http2}\n\n{}\n\
         [[routes]]\nprefix = \"/api\"\nupstream = \"app\"\n",
        crt.display().to_string(),
        key.display().to_string(),
        upstream_toml("app", up.addr)
    ))
}

fn echo_with_slow() -> Upstream {
    Upstream::start(|req| {
        if req.path().starts_with("/api/slow") {
            Reply::Delay(Duration::from_secs(3), Box::new(echo_reply("app", req)))
        } else if req.path().starts_with("/api/brief") {
            Reply::Delay(Duration::from_millis(300), Box::new(echo_reply("app", req)))
        } else {
            echo_reply("app", req)
        }
    })
}

fn curl(args: &[&str]) -> String {
    let out = Command::new("curl").args(["-sS", "--max-time", "30"]).args(args).output().expect("run curl");
    assert!(out.status.success(), "curl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn tls_alpn_h2_and_h2c_go_through_the_same_engine() {
    let pki = Pki::new();
    let up = echo_with_slow();
    let gw = gateway(&pki, "", &up);
    let (tls, plain) = (gw.listeners[0].1, gw.listeners[1].1);

    // curl negotiates h2 by ALPN over TLS.
    let ca = pki.ca_pem.display().to_string();
    let resolve = format!("localhost:{}:127.0.0.1", tls.port());
    let url = format!("https://localhost:{}/api/tls", tls.port());
    let out = curl(&[
        "--http2",
        "--cacert",
        &ca,
        "--resolve",
        &resolve,
        "-o",
        "/dev/null",
        "-w",
        "%{http_version} %{http_code}",
        &url,
    ]);
    assert_eq!(out, "2 200");
    let seen = up.last();
    assert_eq!(seen.header("x-forwarded-proto"), Some("https"));
    assert_eq!(seen.version, "HTTP/1.1", "upstreams still get HTTP/1.1");
    // HTTP/1.1 on the same TLS listener still works.
    let out = curl(&[
        "--http1.1",
        "--cacert",
        &ca,
        "--resolve",
        &resolve,
        "-o",
        "/dev/null",
        "-w",
        "%{http_version} %{http_code}",
        &url,
    ]);
    assert_eq!(out, "1.1 200");

    // Prior knowledge on the h2c listener, and HTTP/1.1 on the same port.
    let url = format!("http://127.0.0.1:{}/api/plain", plain.port());
    assert_eq!(
        curl(&["--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_version} %{http_code}", &url]),
        "2 200"
    );
    assert_eq!(up.last().header("x-forwarded-proto"), Some("http"));
    assert_eq!(
        curl(&["--http1.1", "-o", "/dev/null", "-w", "%{http_version} %{http_code}", &url]),
        "1.1 200"
    );

    h2c::block_on(async {
        let mut c = h2c::connect(plain).await;
        // Gateway-made errors are the usual JSON, with the request id.
        let r = h2c::send(&mut c, "GET", "/nowhere", &[], None).await.expect("404");
        assert_eq!(r.status, 404);
        assert_eq!(r.headers.get("content-type").map(|v| v.as_bytes()), Some(&b"application/json"[..]));
        assert_eq!(r.json()["error"]["code"], "route_not_found", "{:?}", r.json());
        assert!(r.headers.contains_key("x-request-id"));
        // Filters ran: the upstream sees the request id and forwarding headers; bodies arrive.
        let body = vec![b'x'; 300_000];
        let r = h2c::send(&mut c, "POST", "/api/upload?q=1", &[("x-request-id", "abc123")], Some(body))
            .await
            .expect("post");
        assert_eq!(r.status, 200);
        let echo = r.json();
        assert_eq!(echo["body_len"], 300_000);
        assert_eq!(echo["target"], "/api/upload?q=1");
        assert_eq!(r.headers.get("x-request-id").map(|v| v.as_bytes()), Some(&b"abc123"[..]));
    });
    let seen = up.last();
    assert_eq!(seen.header("x-request-id"), Some("abc123"));
    assert_eq!(seen.header("host"), Some("test"));
    assert!(seen.header("x-forwarded-for").is_some());
}

#[test]
fn many_streams_share_one_connection() {
    let pki = Pki::new();
    let up = echo_with_slow();
    let gw = gateway(&pki, "", &up);
    let plain = gw.listeners[1].1;
    h2c::block_on(async {
        let c = h2c::connect(plain).await;
        let tasks: Vec<_> = (0..40)
            .map(|i| {
                let mut c = c.clone();
                tokio::spawn(async move {
                    let body = format!("stream {i}").into_bytes();
                    let r = h2c::send(&mut c, "POST", &format!("/api/s/{i}"), &[], Some(body))
                        .await
                        .expect("stream");
                    (i, r)
                })
            })
            .collect();
        for t in tasks {
            let (i, r) = t.await.expect("task");
            assert_eq!(r.status, 200);
            assert_eq!(r.json()["body"], format!("stream {i}"));
            assert_eq!(r.json()["target"], format!("/api/s/{i}"));
        }
    });
    assert_eq!(up.requests(), 40);
}

#[test]
fn a_stream_reset_while_the_upstream_answers_cancels_its_upstream_exchange() {
    let pki = Pki::new();
    let up = echo_with_slow();
    // The access log tells when the reset stream's exchange has finished.
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("access.log");
    let gw = gateway(
        &pki,
        &format!("\n[access_log]\nenabled = true\npath = {:?}\n", log.display().to_string()),
        &up,
    );
    let mut raw = RawH2::connect(gw.listeners[1].1);
    raw.send(&frame(kind::HEADERS, 0x5, 1, &get_block("/api/brief"))).expect("send");
    up.wait_requests(1, LONG);
    // The client gives up (as every in-flight stream does when a load run stops).
    raw.send(&frame(kind::RST_STREAM, 0, 1, &8u32.to_be_bytes())).expect("reset");
    let deadline = std::time::Instant::now() + LONG;
    while !std::fs::read_to_string(&log).unwrap_or_default().contains("/api/brief") {
        assert!(std::time::Instant::now() < deadline, "no access log line for the reset stream");
        std::thread::sleep(Duration::from_millis(20));
    }
    let line = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        line.contains("\"status\":499") && line.contains("client_reset"),
        "logged as the client's: {line}"
    );
    raw.send(&frame(kind::HEADERS, 0x5, 3, &get_block("/api/again"))).expect("send");
    let done = raw.until(|f| f.stream == 3 && f.flags & 0x1 == 0x1);
    assert!(done.is_some(), "the second stream was answered");
    assert_eq!(up.requests(), 2);
    // The reset dropped the exchange mid-answer: its upstream connection was closed, not reused.
    assert_eq!(up.accepted(), 2, "the cancelled exchange's connection was not returned to the pool");
}

#[test]
fn stream_and_header_limits_are_advertised_and_enforced() {
    let pki = Pki::new();
    let up = echo_with_slow();
    let gw = gateway(&pki, "max_concurrent_streams = 3\nmax_header_list_size = \"4KiB\"", &up);
    let plain = gw.listeners[1].1;

    let mut raw = RawH2::connect(plain);
    let settings = raw.until(|f| f.kind == kind::SETTINGS && f.flags & 1 == 0).expect("server SETTINGS");
    let advertised: Vec<(u16, u32)> = settings
        .payload
        .chunks(6)
        .map(|c| (u16::from_be_bytes([c[0], c[1]]), u32::from_be_bytes([c[2], c[3], c[4], c[5]])))
        .collect();
    assert!(advertised.contains(&(0x3, 3)), "MAX_CONCURRENT_STREAMS 3 in {advertised:?}");
    assert!(
        advertised.contains(&(0x6, 16 * 1024)),
        "MAX_HEADER_LIST_SIZE (at least [http] max_header_bytes) in {advertised:?}"
    );
    // Three slow streams stay open; the fourth is refused.
    let mut burst = Vec::new();
    for id in [1u32, 3, 5, 7] {
        burst.extend(frame(kind::HEADERS, 0x4 | 0x1, id, &get_block("/api/slow")));
    }
    raw.send(&burst).expect("send");
    let refused = raw.until(|f| f.kind == kind::RST_STREAM).expect("a RST_STREAM");
    assert_eq!((refused.stream, refused.error_code()), (7, 0x7), "stream 7 REFUSED_STREAM");

    // A header list over the limit is answered 431 without reaching the upstream.
    let before = up.requests();
    h2c::block_on(async {
        let mut c = h2c::connect(plain).await;
        let big = "v".repeat(20_000);
        let r = h2c::send(&mut c, "GET", "/api/big", &[("x-big", &big)], None).await.expect("answered");
        assert_eq!(r.status, 431);
        // The connection stays usable.
        assert_eq!(h2c::send(&mut c, "GET", "/api/small", &[], None).await.expect("next").status, 200);
    });
    assert!(up.seen().iter().all(|r| r.path() != "/api/big"));
    assert!(up.requests() > before);
}

/// Floods `addr` with `frames` after the preface; returns the frames the server sent until it
/// closed the connection (fails if it never does).
fn flood(addr: std::net::SocketAddr, frames: &[u8]) -> Vec<common::h2::Frame> {
    let mut raw = RawH2::connect(addr);
    // The server may close while the flood is still being written.
    let _ = raw.send(frames);
    let start = std::time::Instant::now();
    let got = raw.drain();
    assert!(start.elapsed() < LONG, "the connection was closed");
    got
}

#[test]
fn ping_and_settings_floods_close_the_connection_but_normal_use_does_not() {
    let pki = Pki::new();
    let up = echo_with_slow();
    let gw = gateway(&pki, "max_pings_per_second = 10\nmax_settings_per_second = 10", &up);
    let plain = gw.listeners[1].1;

    // Five pings: five acks, connection open.
    let mut raw = RawH2::connect(plain);
    let mut pings = Vec::new();
    for i in 0..5u64 {
        pings.extend(frame(kind::PING, 0, 0, &i.to_be_bytes()));
    }
    raw.send(&pings).expect("pings");
    for _ in 0..5 {
        raw.until(|f| f.kind == kind::PING && f.flags & 1 == 1).expect("PING ack");
    }
    raw.send(&frame(kind::HEADERS, 0x5, 1, &get_block("/api/after-pings"))).expect("request");
    let resp = raw.until(|f| f.kind == kind::HEADERS && f.stream == 1).expect("response");
    assert_eq!(resp.payload.first(), Some(&0x88), ":status 200 (static index 8)");

    let mark = gw.log_mark();
    let mut burst = Vec::new();
    for i in 0..200u64 {
        burst.extend(frame(kind::PING, 0, 0, &i.to_be_bytes()));
    }
    let got = flood(plain, &burst);
    assert!(got.iter().filter(|f| f.kind == kind::PING).count() < 200, "not every ping was answered");
    gw.wait_for_log_after(mark, "HTTP/2 PING flood: connection closed", LONG);

    let mut burst = Vec::new();
    for _ in 0..200 {
        burst.extend(frame(kind::SETTINGS, 0, 0, &[0, 0x3, 0, 0, 0, 100]));
    }
    flood(plain, &burst);
    gw.wait_for_log_after(mark, "HTTP/2 SETTINGS flood: connection closed", LONG);
}

#[test]
fn rapid_reset_is_stopped() {
    let pki = Pki::new();
    let up = echo_with_slow();
    let gw = gateway(&pki, "max_pending_resets = 10\nmax_resets_per_second = 50", &up);
    let plain = gw.listeners[1].1;
    let mark = gw.log_mark();
    // CVE-2023-44487: open a stream and cancel it at once, over and over.
    let mut burst = Vec::new();
    for i in 0..500u32 {
        let id = 2 * i + 1;
        burst.extend(frame(kind::HEADERS, 0x5, id, &get_block("/api/slow")));
        burst.extend(frame(kind::RST_STREAM, 0, id, &8u32.to_be_bytes()));
    }
    let got = flood(plain, &burst);
    let goaway = got.iter().find(|f| f.kind == kind::GOAWAY);
    let guarded = gw.logs()[mark..].iter().any(|l| l.contains("RST_STREAM flood"));
    assert!(
        goaway.is_some_and(|g| g.error_code() == 0xb) || guarded,
        "ENHANCE_YOUR_CALM or the reset guard closed it: {got:?}"
    );
    // Far fewer than 500 requests reached the upstream.
    std::thread::sleep(Duration::from_millis(300));
    assert!(up.requests() < 100, "{} requests reached the upstream", up.requests());
}

#[test]
fn continuation_flood_is_stopped() {
    let pki = Pki::new();
    let up = echo_with_slow();
    let gw = gateway(&pki, "max_continuation_frames = 8", &up);
    let plain = gw.listeners[1].1;
    let mark = gw.log_mark();
    // A header block that never ends: HEADERS without END_HEADERS, then endless CONTINUATIONs
    // of a few bytes each (small enough to stay under the header list size for a long time).
    let block = get_block("/api/c");
    let mut burst = frame(kind::HEADERS, 0x1, 1, &block);
    for _ in 0..1000 {
        burst.extend(frame(kind::CONTINUATION, 0, 1, &[]));
    }
    flood(plain, &burst);
    gw.wait_for_log_after(mark, "HTTP/2 CONTINUATION flood: connection closed", LONG);
    assert_eq!(up.requests(), 0);
}
