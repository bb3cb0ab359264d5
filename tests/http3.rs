//! HTTP/3 against the real binary: our own HTTP/3 client (Debian's curl has none) over real UDP
//! and TLS 1.3 with a test CA, through the same router, filter chain, upstream pool and error
//! shape as HTTP/1.1; `Alt-Svc` on the TCP side; the graceful drain with a request in flight;
//! trailers from an HTTP/2 upstream.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use common::tls::{Pki, TlsClient};
use common::wire::Pattern;
use common::{Gateway, LONG, Reply, Upstream, echo_reply, upstream_toml};
use portcullis_quic::client::{H3Client, Response};
use rustls::pki_types::pem::PemObject;

fn config(pki: &Pki, up: &Upstream, http3: &str) -> String {
    let (crt, key) = pki.issue("server", &["localhost"]);
    format!(
        "[server]\nshards = 2\npin_cpus = false\nwatch_config = false\n\n\
         [[listeners]]\nname = \"edge\"\nbind = \"127.0.0.1:0\"\n\
         [listeners.tls]\n[[listeners.tls.certificates]]\ncert = {:?}\nkey = {:?}\n\
         [listeners.http3]\n{http3}\n\n{}\n\
         [[routes]]\nname = \"users\"\npath = \"/users/{{id}}\"\nupstream = \"app\"\n\
         request_headers = {{ add = {{ \"x-via\" = \"portcullis\" }} }}\n\
         [[routes]]\nname = \"files\"\nprefix = \"/files/\"\nupstream = \"app\"\n",
        crt.display().to_string(),
        key.display().to_string(),
        upstream_toml("app", up.addr)
    )
}

fn roots(pki: &Pki) -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    let ca = rustls::pki_types::CertificateDer::from_pem_file(&pki.ca_pem).expect("CA pem");
    roots.add(ca).expect("CA root");
    roots
}

fn runtime() -> monoio::Runtime<monoio::time::TimeDriver<monoio::LegacyDriver>> {
    monoio::RuntimeBuilder::<monoio::LegacyDriver>::new().enable_timer().build().expect("runtime")
}

fn request(method: &str, path: &str) -> http::Request<()> {
    http::Request::builder().method(method).uri(format!("https://localhost{path}")).body(()).expect("request")
}

/// Runs `f` with a connected client, bounded in time.
fn with_client<T>(addr: SocketAddr, pki: &Pki, f: impl AsyncFnOnce(&mut H3Client) -> T) -> T {
    let roots = roots(pki);
    runtime().block_on(async move {
        let run = async move {
            let mut c = H3Client::connect(addr, "localhost", roots).await.expect("HTTP/3 connect");
            let out = f(&mut c).await;
            c.close().await;
            out
        };
        monoio::time::timeout(LONG, run).await.expect("the HTTP/3 exchange finished in time")
    })
}

/// A header the echo upstream saw (its JSON lists `[name, value]` pairs).
fn seen_header<'a>(seen: &'a serde_json::Value, name: &str) -> Option<&'a str> {
    seen["headers"].as_array()?.iter().find_map(|pair| {
        let n = pair.get(0)?.as_str()?;
        n.eq_ignore_ascii_case(name).then(|| pair.get(1)?.as_str()).flatten()
    })
}

fn json(resp: &Response) -> serde_json::Value {
    serde_json::from_slice(&resp.body).unwrap_or_else(|e| panic!("JSON body ({e}): {:?}", resp.body))
}

#[test]
fn http3_requests_take_the_same_route_chain_and_pool_as_http1() {
    let pki = Pki::new();
    let up = Upstream::start(|req| {
        if req.target.starts_with("/files/big") {
            Reply::Sized { len: 3 * 1024 * 1024 + 17, seed: 7 }
        } else {
            echo_reply("app", req)
        }
    });
    let gw = Gateway::start(&config(&pki, &up, ""));
    let (get, post, missing, big) = with_client(gw.addr, &pki, async |c| {
        let get = c.request(request("GET", "/users/42?x=1"), Bytes::new()).await.expect("GET");
        let post = c.request(request("POST", "/files/upload"), Bytes::from_static(b"hello over h3")).await;
        let missing = c.request(request("GET", "/nowhere"), Bytes::new()).await.expect("404");
        let big = c.request(request("GET", "/files/big"), Bytes::new()).await.expect("big");
        (get, post.expect("POST"), missing, big)
    });

    assert_eq!(get.status, 200);
    let seen = json(&get);
    assert_eq!(seen["method"], "GET");
    assert_eq!(seen["target"], "/users/42?x=1");
    assert_eq!(seen_header(&seen, "x-via"), Some("portcullis"), "route header edits apply: {seen}");
    assert_eq!(seen_header(&seen, "x-forwarded-proto"), Some("https"));
    assert_eq!(seen_header(&seen, "host"), Some("localhost"), ":authority becomes Host toward HTTP/1.1");
    let rid = get.headers.get("x-request-id").expect("request id echoed").to_str().expect("ascii");
    assert_eq!(seen_header(&seen, "x-request-id"), Some(rid));

    assert_eq!(post.status, 200);
    let seen = json(&post);
    assert_eq!(seen["body"], "hello over h3", "a body without a length is forwarded whole: {seen}");

    assert_eq!(missing.status, 404);
    let err = json(&missing);
    assert_eq!(err["error"]["code"], "route_not_found");
    assert_eq!(err["error"]["status"], 404);

    assert_eq!(big.status, 200);
    let mut want = vec![0u8; 3 * 1024 * 1024 + 17];
    Pattern::new(7).fill(&mut want);
    assert!(big.body == want, "a 3 MiB body arrives intact ({} bytes)", big.body.len());
    assert!(up.accepted() < up.requests(), "upstream connections are pooled across HTTP/3 streams");
}

#[test]
fn tcp_responses_advertise_http3_with_alt_svc() {
    let pki = Pki::new();
    let up = Upstream::echo("app");
    let gw = Gateway::start(&config(&pki, &up, "alt_svc_max_age = \"1h\""));
    let cfg = std::sync::Arc::new(pki.client_config(&["http/1.1"]));
    let mut c = TlsClient::connect(gw.addr, "localhost", &cfg).expect("TLS connect");
    let ok = c.get("localhost", "/users/1").expect("GET");
    let want = format!("h3=\":{}\"; ma=3600", gw.addr.port());
    assert_eq!(ok.header("alt-svc"), Some(want.as_str()));
    let missing = c.get("localhost", "/nowhere").expect("GET 404");
    assert_eq!(missing.status, 404);
    assert_eq!(missing.header("alt-svc"), Some(want.as_str()), "local replies advertise too");

    let quiet = Gateway::start(&config(&pki, &up, "advertise = false"));
    let mut c = TlsClient::connect(quiet.addr, "localhost", &cfg).expect("TLS connect");
    assert_eq!(c.get("localhost", "/users/1").expect("GET").header("alt-svc"), None);
}

#[test]
fn sigterm_lets_an_http3_request_in_flight_finish() {
    let pki = Pki::new();
    let up =
        Upstream::start(|req| Reply::Delay(Duration::from_millis(800), Box::new(echo_reply("app", req))));
    let mut gw = Gateway::start(&config(&pki, &up, ""));
    let addr = gw.addr;
    let roots = roots(&pki);
    let (tx, rx) = std::sync::mpsc::channel();
    let client = std::thread::spawn(move || {
        runtime().block_on(async move {
            let mut c = H3Client::connect(addr, "localhost", roots).await.expect("connect");
            tx.send(()).expect("connected");
            let resp = c.request(request("GET", "/users/9"), Bytes::new()).await;
            c.close().await;
            resp.map(|r| r.status)
        })
    });
    rx.recv().expect("client connected");
    // The request is on its way to the slow upstream once the upstream has accepted it.
    let deadline = std::time::Instant::now() + LONG;
    while up.requests() == 0 {
        assert!(std::time::Instant::now() < deadline, "the request never reached the upstream");
        std::thread::sleep(Duration::from_millis(5));
    }
    gw.signal("TERM");
    let status = client.join().expect("client thread");
    assert_eq!(status.expect("the in-flight request completed"), 200);
    let exit = gw.wait_exit(LONG);
    assert!(exit.success(), "clean exit after the drain: {exit:?}");
}

#[test]
fn http3_without_tls_is_refused_with_its_line() {
    let up = Upstream::echo("app");
    let toml = format!(
        "[[listeners]]\nbind = \"127.0.0.1:0\"\n[listeners.http3]\nzero_rtt = false\n\n{}\n\
         [[routes]]\nprefix = \"/\"\nupstream = \"app\"\n",
        upstream_toml("app", up.addr)
    );
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, toml).expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .expect("run check");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("listeners[0].http3") && err.contains("gateway.toml:3"), "{err}");
}

/// Resumes a session and sends a GET as 0-RTT early data when the ticket allows it; returns
/// whether 0-RTT was attempted and accepted (`None`: the ticket did not allow early data) and the
/// status of the request.
fn zero_rtt_round(addr: SocketAddr, pki: &Pki) -> (Option<bool>, u16) {
    let config = H3Client::config(roots(pki)).expect("client config");
    runtime().block_on(async move {
        let run = async move {
            // First connection: a full handshake that leaves a session ticket behind.
            let (mut first, _) =
                H3Client::connect_with(addr, "localhost", config.clone(), false).await.expect("first");
            assert_eq!(
                first.request(request("GET", "/users/1"), Bytes::new()).await.expect("first GET").status,
                200
            );
            first.close().await;
            // Second: resumed, the request leaves before the handshake completes.
            let (mut second, early) =
                H3Client::connect_with(addr, "localhost", config, true).await.expect("resumed connect");
            let status =
                second.request(request("GET", "/users/2"), Bytes::new()).await.expect("0-RTT GET").status;
            let accepted = match early {
                Some(accepted) => Some(accepted.await),
                None => None,
            };
            second.close().await;
            (accepted, status)
        };
        monoio::time::timeout(LONG, run).await.expect("0-RTT exchange in time")
    })
}

#[test]
fn zero_rtt_is_refused_by_default_and_accepted_when_enabled() {
    let pki = Pki::new();
    let up = Upstream::echo("app");
    let off = Gateway::start(&config(&pki, &up, ""));
    let (accepted, status) = zero_rtt_round(off.addr, &pki);
    assert_ne!(accepted, Some(true), "0-RTT is off by default: no early data is accepted");
    assert_eq!(status, 200, "the request is resent after the handshake and succeeds");

    let on = Gateway::start(&config(&pki, &up, "zero_rtt = true"));
    let (accepted, status) = zero_rtt_round(on.addr, &pki);
    assert_eq!(accepted, Some(true), "zero_rtt = true issues early-data tickets and accepts early data");
    assert_eq!(status, 200, "a GET is safe to accept early");
}

#[test]
fn retry_always_validates_addresses_and_still_serves() {
    let pki = Pki::new();
    let up = Upstream::echo("app");
    let gw = Gateway::start(&config(&pki, &up, "retry = \"always\"\nmax_concurrent_streams = 2"));
    let statuses = with_client(gw.addr, &pki, async |c| {
        let mut out = Vec::new();
        for i in 0..5 {
            out.push(
                c.request(request("GET", &format!("/users/{i}")), Bytes::new()).await.expect("GET").status,
            );
        }
        out
    });
    assert_eq!(statuses, vec![200; 5]);
}

#[test]
fn a_one_mebibyte_post_reaches_the_upstream_intact() {
    let pki = Pki::new();
    let up = Upstream::echo("app");
    let gw = Gateway::start(&config(&pki, &up, ""));
    let mut body = vec![0u8; 1024 * 1024];
    Pattern::new(11).fill(&mut body);
    let body = Bytes::from(body);
    let sent = body.clone();
    let resp = with_client(gw.addr, &pki, async move |c| {
        let req = http::Request::builder()
            .method("POST")
            .uri("https://localhost/files/big-upload")
            .header("content-length", sent.len().to_string())
            .body(())
            .expect("request");
        c.request(req, sent).await.expect("POST")
    });
    assert_eq!(resp.status, 200);
    let seen = json(&resp);
    let mut digest = common::Digest::default();
    digest.update(&body);
    let want = digest.finish();
    assert_eq!(seen["body_len"], want.0, "{seen}");
    assert_eq!(seen["body_hash"], want.1.to_string(), "the upstream saw the same bytes");
}

#[test]
fn the_demo_serves_http3_and_prints_a_working_command() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port();
    let mut child = Command::new(common::gateway::binary())
        .args(["demo", "--port", &port.to_string(), "--tls-port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the demo");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let line = loop {
        let mut line = String::new();
        if out.read_line(&mut line).expect("read demo output") == 0 {
            panic!("the demo exited without printing its HTTP/3 command");
        }
        if line.contains(" h3 --cacert ") {
            break line;
        }
    };
    // "  cargo run --release -- h3 --cacert <ca> https://localhost:<port>/users/42"
    let words: Vec<&str> = line.split_whitespace().collect();
    let args = &words[words.iter().position(|w| *w == "h3").expect("h3")..];
    let fetched = Command::new(common::gateway::binary()).args(args).output().expect("run portcullis h3");
    let _ = child.kill();
    let _ = child.wait();
    let stdout = String::from_utf8_lossy(&fetched.stdout);
    assert!(fetched.status.success(), "{stdout}{}", String::from_utf8_lossy(&fetched.stderr));
    assert!(stdout.starts_with("HTTP/3 200"), "{stdout}");
    assert!(stdout.contains("\"path\": \"/users/42\""), "the echo upstream answered: {stdout}");
}

#[test]
fn http3_clients_get_the_trailers_of_an_h2c_upstream() {
    use common::h2_upstream::{H2Reply, H2Upstream};
    let up = H2Upstream::start(100, |_| H2Reply {
        body: b"payload".to_vec(),
        trailers: vec![("grpc-status", "7".into()), ("grpc-message", "denied".into())],
        ..H2Reply::default()
    });
    let pki = Pki::new();
    let (crt, key) = pki.issue("server", &["localhost"]);
    let gw = Gateway::start(&format!(
        "[server]\nshards = 1\npin_cpus = false\nwatch_config = false\n\n\
         [[listeners]]\nbind = \"127.0.0.1:0\"\n\
         [listeners.tls]\n[[listeners.tls.certificates]]\ncert = {:?}\nkey = {:?}\n[listeners.http3]\n\n\
         [[upstreams]]\nname = \"app\"\nprotocol = \"h2c\"\nendpoints = [\"{}\"]\n\n\
         [[routes]]\nprefix = \"/\"\nupstream = \"app\"\n",
        crt.display().to_string(),
        key.display().to_string(),
        up.addr
    ));
    let resp = with_client(gw.addr, &pki, async |c| {
        c.request(request("GET", "/t"), Bytes::new()).await.expect("HTTP/3 request")
    });
    assert_eq!((resp.status, &resp.body[..]), (200, &b"payload"[..]));
    let trailers = resp.trailers.expect("trailers over HTTP/3");
    assert_eq!(trailers.get("grpc-status").map(|v| v.as_bytes()), Some(&b"7"[..]));
    assert_eq!(trailers.get("grpc-message").map(|v| v.as_bytes()), Some(&b"denied"[..]));
}
