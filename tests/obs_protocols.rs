//! What each client protocol contributes to telemetry, through the real binary: the TLS version
//! and protocol in the access log and the protocol label in `/metrics` for HTTP/1.1 over TLS,
//! HTTP/2 (curl) and HTTP/3 (our client), the per-protocol connection gauges, and replies the
//! codec sends before a request exists (malformed heads), which are logged and counted too.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::tls::{Pki, TlsClient};
use common::{Gateway, LONG, Metrics, Upstream, request, upstream_toml};
use portcullis_quic::client::H3Client;
use rustls::pki_types::pem::PemObject;
use serde_json::Value;

/// Waits until `path` holds at least `n` JSON lines.
fn lines(path: &Path, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + LONG;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.lines().count() >= n {
            return text.lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect();
        }
        assert!(Instant::now() < deadline, "{} lines, want {n}: {text}", text.lines().count());
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn scrape_until(addr: std::net::SocketAddr, what: &str, check: impl Fn(&Metrics) -> bool) -> Metrics {
    let deadline = Instant::now() + LONG;
    loop {
        let m = Metrics::scrape(addr, None);
        if check(&m) {
            return m;
        }
        assert!(Instant::now() < deadline, "{what} never held:\n{}", m.text);
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn h3_runtime() -> monoio::Runtime<monoio::time::TimeDriver<monoio::LegacyDriver>> {
    monoio::RuntimeBuilder::<monoio::LegacyDriver>::new().enable_timer().build().expect("runtime")
}

#[test]
fn tls_version_protocols_connections_and_bare_replies_reach_log_and_metrics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("access.log");
    let pki = Pki::new();
    let (crt, key) = pki.issue("server", &["localhost"]);
    let app = Upstream::echo("app");
    let toml = format!(
        "[server]\nshards = 2\npin_cpus = false\nwatch_config = false\n\n\
         [admin]\nbind = \"127.0.0.1:0\"\n\n\
         [access_log]\nenabled = true\npath = {:?}\n\n\
         [[listeners]]\nname = \"edge\"\nbind = \"127.0.0.1:0\"\n\
         [listeners.tls]\nalpn = [\"h2\", \"http/1.1\"]\n\
         [[listeners.tls.certificates]]\ncert = {:?}\nkey = {:?}\n[listeners.http3]\n\n\
         [[listeners]]\nname = \"plain\"\nbind = \"127.0.0.1:0\"\n\n{}\n\
         [[routes]]\nname = \"users\"\npath = \"/users/{{id}}\"\nupstream = \"app\"\n",
        log.display().to_string(),
        crt.display().to_string(),
        key.display().to_string(),
        upstream_toml("app", app.addr)
    );
    let gw = Gateway::start(&toml);
    let (edge, plain) = (gw.listeners[0].1, gw.listeners[1].1);
    let admin = gw.admin.expect("admin address");

    // HTTP/1.1 over TLS 1.3.
    let mut tls = TlsClient::connect(edge, "localhost", &Arc::new(pki.client_config(&["http/1.1"])))
        .expect("TLS connect");
    assert_eq!(tls.get("localhost", "/users/1").expect("TLS request").status, 200);

    // HTTP/2 over TLS: curl, a real client.
    let out = Command::new("curl")
        .args(["-sS", "--http2", "--max-time", "30", "--cacert"])
        .arg(&pki.ca_pem)
        .args(["--resolve", &format!("localhost:{}:127.0.0.1", edge.port())])
        .args(["-o", "/dev/null", "-w", "%{http_code} %{http_version}"])
        .arg(format!("https://localhost:{}/users/2", edge.port()))
        .output()
        .expect("curl runs");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200 2", "{}", String::from_utf8_lossy(&out.stderr));

    // HTTP/3: our client; the connection stays open while the gauge is scraped.
    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls::pki_types::CertificateDer::from_pem_file(&pki.ca_pem).expect("CA")).expect("root");
    h3_runtime().block_on(async {
        let run = async {
            let mut c = H3Client::connect(edge, "localhost", roots).await.expect("HTTP/3 connect");
            let req = http::Request::get("https://localhost/users/3").body(()).expect("request");
            assert_eq!(c.request(req, bytes::Bytes::new()).await.expect("HTTP/3 request").status, 200);
            let m = scrape_until(admin, "one h3 connection", |m| {
                m.value("portcullis_connections_active", &[("protocol", "h3")]) == 1.0
            });
            assert_eq!(
                m.value("portcullis_connections_active", &[("protocol", "http/1")]),
                1.0,
                "the TLS client"
            );
            c.close().await;
        };
        monoio::time::timeout(LONG, run).await.expect("HTTP/3 exchange in time");
    });

    // Replies sent before a request exists: a malformed request line and oversized headers.
    let bad = request(plain, b"GET /users/4 HTTP/1.1 extra\r\nHost: t\r\n\r\n");
    assert_eq!(bad.status, 400);
    let big = format!("GET /users/5 HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n", "a".repeat(128 * 1024));
    let big = request(plain, big.as_bytes());
    assert_eq!(big.status, 431);

    let got = lines(&log, 5);
    let by_status = |s: u64| got.iter().find(|l| l["status"] == s).unwrap_or_else(|| panic!("{got:?}"));
    let by_proto = |p: &str| got.iter().find(|l| l["protocol"] == p).unwrap_or_else(|| panic!("{got:?}"));
    for (proto, path) in [("HTTP/1.1", "/users/1"), ("HTTP/2", "/users/2"), ("HTTP/3", "/users/3")] {
        let l = by_proto(proto);
        assert_eq!((l["path"].as_str(), l["tls"].as_str()), (Some(path), Some("TLSv1.3")), "{l}");
        assert_eq!(l["route"], "users");
    }
    for (status, reply) in [(400, &bad), (431, &big)] {
        let (l, e) = (by_status(status), &reply.json()["error"]);
        assert_eq!(l["error"], e["code"], "{l}");
        assert_eq!(l["request_id"], e["request_id"], "the id the reply carried: {l}");
        assert_eq!(l["method"], "-", "no request: no method");
        assert!(l["tls"].is_null() && l["route"].is_null(), "{l}");
        assert!(l["bytes_out"].as_u64().is_some_and(|b| b > 0), "the JSON error body was sent: {l}");
    }

    let m = scrape_until(admin, "5 requests counted", |m| m.value("portcullis_requests_total", &[]) == 5.0);
    let req = |proto: &str| m.value("portcullis_requests_total", &[("route", "users"), ("protocol", proto)]);
    assert_eq!((req("http/1.1"), req("h2"), req("h3")), (1.0, 1.0, 1.0), "{}", m.text);
    // The gateway's own added time: one proxied request per protocol, the bare replies local.
    let added = |proto: &str, reply: &str| {
        m.value("portcullis_gateway_added_seconds_count", &[("protocol", proto), ("reply", reply)])
    };
    assert_eq!(
        (
            added("http/1.1", "proxied"),
            added("h2", "proxied"),
            added("h3", "proxied"),
            added("http/1.1", "local")
        ),
        (1.0, 1.0, 1.0, 2.0),
        "{}",
        m.text
    );
    for l in &got {
        let (added, total) = (l["added_us"].as_u64(), l["duration_us"].as_u64().unwrap_or(0));
        assert!(added.is_some_and(|a| a <= total), "added time within the exchange: {l}");
    }
    assert_eq!(
        m.value("portcullis_requests_total", &[("route", "_unmatched"), ("status_class", "4xx")]),
        2.0
    );
    for code in [&bad.json()["error"]["code"], &big.json()["error"]["code"]] {
        let code = code.as_str().expect("error code");
        assert_eq!(m.value("portcullis_local_replies_total", &[("code", code)]), 1.0, "{code}");
    }
    assert_eq!(m.find("portcullis_connections_active", &[]).len(), 6, "2 shards x 3 protocols");
}
