//! TLS termination against the real binary: HTTPS through curl and a rustls client, SNI
//! certificate selection, versions and suites, session resumption across shards, start-up
//! errors for bad certificates, and certificate hot reload with connections open.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::tls::{Pki, TlsClient};
use common::{Gateway, LONG, Upstream, upstream_toml};
use rustls::ClientConfig;
use rustls::pki_types::pem::PemObject;

/// One certificate entry for `[[listeners.tls.certificates]]`.
fn cert_toml(cert: &Path, key: &Path, names: &[&str]) -> String {
    let names: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
    format!(
        "[[listeners.tls.certificates]]\ncert = {:?}\nkey = {:?}\nserver_names = [{}]\n",
        cert.display().to_string(),
        key.display().to_string(),
        names.join(", ")
    )
}

/// A gateway config: a TLS listener (`tls` = its `[listeners.tls]` keys, `certs` = its
/// certificate tables), then a plain listener, then a catch-all route to `up`.
fn tls_config(server: &str, tls: &str, certs: &str, up: &Upstream) -> String {
    format!(
        "[server]\nshards = 2\npin_cpus = false\n{server}\n\n\
         [[listeners]]\nname = \"tls\"\nbind = \"127.0.0.1:0\"\n[listeners.tls]\n{tls}\n{certs}\n\
         [[listeners]]\nname = \"plain\"\nbind = \"127.0.0.1:0\"\n\n{}\n\
         [[routes]]\nprefix = \"/\"\nupstream = \"app\"\n",
        upstream_toml("app", up.addr)
    )
}

const NO_WATCH: &str = "watch_config = false";

fn client(pki: &Pki) -> Arc<ClientConfig> {
    Arc::new(pki.client_config(&["http/1.1"]))
}

#[test]
fn https_and_plain_listeners_share_the_engine_and_forwarded_proto_tells_them_apart() {
    let pki = Pki::new();
    let (crt, key) = pki.issue("server", &["localhost"]);
    let up = Upstream::echo("app");
    let gw = Gateway::start(&tls_config(NO_WATCH, "", &cert_toml(&crt, &key, &[]), &up));
    let (tls_addr, plain_addr) = (gw.listeners[0].1, gw.listeners[1].1);

    // A real client: curl over TLS, certificate verified against the test CA.
    let out = Command::new("curl")
        .args(["-sS", "--http1.1", "--max-time", "30", "--cacert"])
        .arg(&pki.ca_pem)
        .args(["--resolve", &format!("localhost:{}:127.0.0.1", tls_addr.port())])
        .args(["-o", "/dev/null", "-w", "%{http_code} %{http_version} %{ssl_verify_result}"])
        .arg(format!("https://localhost:{}/curl", tls_addr.port()))
        .output()
        .expect("run curl");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200 1.1 0", "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(up.last().header("x-forwarded-proto"), Some("https"));

    // Keep-alive over TLS: several requests on one connection, bodies intact.
    let mut c = TlsClient::connect(tls_addr, "localhost", &client(&pki)).expect("TLS connect");
    for i in 0..5 {
        let body = format!("hello {i}");
        let req = format!(
            "POST /echo/{i} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let r = c.request(req.as_bytes()).expect("request over TLS");
        assert_eq!(r.status, 200);
        let seen = up.last();
        assert_eq!(seen.path(), format!("/echo/{i}"));
        assert_eq!(seen.body, body.as_bytes());
        assert_eq!(seen.header("x-forwarded-proto"), Some("https"));
    }
    // The plain listener still speaks plain HTTP with proto http.
    let r = common::get(plain_addr, "/plain");
    assert_eq!(r.status, 200);
    assert_eq!(up.last().header("x-forwarded-proto"), Some("http"));
}

#[test]
fn sni_picks_exact_then_wildcard_then_the_default_certificate() {
    let pki = Pki::new();
    let (d_crt, d_key) = pki.issue("default", &["default.test"]);
    let (a_crt, a_key) = pki.issue("api", &["api.example.test"]);
    let (w_crt, w_key) = pki.issue("wild", &["*.example.test"]);
    let (s_crt, s_key) = pki.issue("sans", &["from-san.test", "also-san.test"]);
    let certs = format!(
        "{}{}{}{}",
        cert_toml(&d_crt, &d_key, &["default.test"]),
        cert_toml(&a_crt, &a_key, &["api.example.test"]),
        cert_toml(&w_crt, &w_key, &["*.example.test"]),
        // No server_names: the certificate's own DNS names are used.
        cert_toml(&s_crt, &s_key, &[]),
    );
    let up = Upstream::echo("app");
    let gw = Gateway::start(&tls_config(NO_WATCH, "", &certs, &up));
    let addr = gw.listeners[0].1;
    let cfg = client(&pki);
    let names = |sni: &str| {
        let c = TlsClient::connect(addr, sni, &cfg).unwrap_or_else(|e| panic!("connect with SNI {sni}: {e}"));
        c.server_cert_names()
    };
    assert_eq!(names("api.example.test"), ["api.example.test"], "exact name");
    assert_eq!(names("API.Example.TEST"), ["api.example.test"], "names match case-insensitively");
    assert_eq!(names("www.example.test"), ["*.example.test"], "wildcard");
    assert_eq!(names("also-san.test"), ["from-san.test", "also-san.test"], "names from the certificate");
    assert_eq!(names("default.test"), ["default.test"]);
    // An unknown name gets the default certificate (so this client refuses it: wrong name).
    let err = TlsClient::connect(addr, "unknown.test", &cfg).err().expect("name mismatch");
    assert!(err.to_string().contains("not valid for name \"unknown.test\""), "{err}");
    assert!(err.to_string().contains("default.test"), "{err}");
    // No SNI at all (an IP address) also gets the default.
    let mut no_verify = pki.client_config(&["http/1.1"]);
    no_verify.enable_sni = false;
    let err = TlsClient::connect(addr, "default.test", &Arc::new(no_verify));
    let c = err.expect("without SNI the default certificate is served");
    assert_eq!(c.server_cert_names(), ["default.test"]);
}

#[test]
fn min_version_and_cipher_suites_are_enforced() {
    let pki = Pki::new();
    let (crt, key) = pki.issue("server", &["localhost"]);
    let up = Upstream::echo("app");
    let tls = "min_version = \"1.3\"\ncipher_suites = [\"TLS13_CHACHA20_POLY1305_SHA256\"]";
    let gw = Gateway::start(&tls_config(NO_WATCH, tls, &cert_toml(&crt, &key, &[]), &up));
    let addr = gw.listeners[0].1;

    let mut c = TlsClient::connect(addr, "localhost", &client(&pki)).expect("TLS 1.3 connect");
    assert_eq!(c.conn().protocol_version(), Some(rustls::ProtocolVersion::TLSv1_3));
    let suite = c.conn().negotiated_cipher_suite().expect("suite").suite();
    assert_eq!(suite, rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256);
    assert_eq!(c.get("localhost", "/").expect("request").status, 200);

    // A TLS 1.2-only client is refused.
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(&pki.ca_pem).expect("ca").flatten() {
        roots.add(cert).expect("root");
    }
    let old = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS12])
        .expect("tls12")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let err = TlsClient::connect(addr, "localhost", &Arc::new(old)).err().expect("TLS 1.2 refused");
    assert!(
        err.to_string().to_lowercase().contains("protocol") || err.to_string().contains("alert"),
        "{err}"
    );
}

#[test]
fn sessions_resume_on_every_shard_with_process_wide_ticket_keys() {
    let pki = Pki::new();
    let (crt, key) = pki.issue("server", &["localhost"]);
    let up = Upstream::echo("app");
    // Two shards: SO_REUSEPORT spreads the connections over both.
    let gw = Gateway::start(&tls_config(NO_WATCH, "", &cert_toml(&crt, &key, &[]), &up));
    let addr = gw.listeners[0].1;
    let cfg = client(&pki);
    let mut first = TlsClient::connect(addr, "localhost", &cfg).expect("connect");
    assert_eq!(first.conn().handshake_kind(), Some(rustls::HandshakeKind::Full));
    // Reading a response also reads the session tickets sent after the handshake.
    assert_eq!(first.get("localhost", "/").expect("request").status, 200);
    let mut resumed = 0;
    for _ in 0..12 {
        let mut c = TlsClient::connect(addr, "localhost", &cfg).expect("connect");
        if c.conn().handshake_kind() == Some(rustls::HandshakeKind::Resumed) {
            resumed += 1;
        }
        assert_eq!(c.get("localhost", "/").expect("request").status, 200);
    }
    assert_eq!(resumed, 12, "every reconnection resumed, whichever shard accepted it");
}

/// `portcullis check` on a config with one certificate entry; returns (success, stderr).
fn check(pki: &Pki, certs: &str) -> (bool, String) {
    let up = Upstream::echo("app");
    let path = pki.dir.path().join("check.toml");
    std::fs::write(&path, tls_config(NO_WATCH, "", certs, &up)).expect("write");
    let out = Command::new(common::gateway::binary())
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .expect("run check");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn bad_certificates_are_clear_start_up_errors() {
    let pki = Pki::new();
    let (crt, key) = pki.issue("good", &["localhost"]);
    let (_, other_key) = pki.issue("other", &["localhost"]);
    let (old_crt, old_key) = pki.issue_with("old", &["localhost"], |p| {
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2021, 1, 1);
    });
    let (ok, err) = check(&pki, &cert_toml(&crt, &key, &[]));
    assert!(ok, "a good certificate passes: {err}");

    let (ok, err) = check(&pki, &cert_toml(&crt, &other_key, &[]));
    assert!(!ok);
    assert!(err.contains("listeners[0].tls.certificates[0].key") && err.contains("does not match"), "{err}");

    let (ok, err) = check(&pki, &cert_toml(&old_crt, &old_key, &[]));
    assert!(!ok);
    assert!(err.contains("expired at 2021-01-01T00:00:00Z"), "{err}");

    let missing = pki.dir.path().join("absent.crt");
    let (ok, err) = check(&pki, &cert_toml(&missing, &key, &[]));
    assert!(!ok);
    assert!(err.contains("certificates[0].cert: cannot read") && err.contains("absent.crt"), "{err}");

    // The key file holding a certificate instead of a key.
    let (ok, err) = check(&pki, &cert_toml(&crt, &crt, &[]));
    assert!(!ok);
    assert!(err.contains("cannot read a private key"), "{err}");

    // `run` refuses to start with the same message.
    let path = pki.dir.path().join("run.toml");
    let up = Upstream::echo("app");
    std::fs::write(&path, tls_config(NO_WATCH, "", &cert_toml(&old_crt, &old_key, &[]), &up)).expect("write");
    let out =
        Command::new(common::gateway::binary()).args(["run", "--config"]).arg(&path).output().expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("expired at"), "{err}");
}

#[test]
fn certificate_files_reload_on_change_without_dropping_connections() {
    let pki = Pki::new();
    let (crt, key) = pki.issue("server", &["localhost", "v1.test"]);
    let up = Upstream::echo("app");
    let gw = Gateway::start(&tls_config(
        "watch_config = true\nwatch_interval = \"100ms\"",
        "",
        &cert_toml(&crt, &key, &["localhost"]),
        &up,
    ));
    let addr = gw.listeners[0].1;
    let cfg = client(&pki);
    let mut kept = TlsClient::connect(addr, "localhost", &cfg).expect("connect");
    assert!(kept.server_cert_names().contains(&"v1.test".to_owned()));
    assert_eq!(kept.get("localhost", "/").expect("request").status, 200);

    // Requests keep flowing on other kept-alive connections while the files change.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let (stop, ok, failed, cfg) = (stop.clone(), ok.clone(), failed.clone(), cfg.clone());
            std::thread::spawn(move || {
                let mut c = TlsClient::connect(addr, "localhost", &cfg).expect("connect");
                while !stop.load(Ordering::Relaxed) {
                    match c.get("localhost", "/busy") {
                        Ok(r) if r.status == 200 => ok.fetch_add(1, Ordering::Relaxed),
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();

    // Rotate: new key and certificate written over the old files (each atomically).
    pki.issue("server", &["localhost", "v2.test"]);
    gw.wait_for_log("config generation 2 applied", LONG);
    // A fresh client (a resumed session would not be shown a certificate at all).
    let fresh = TlsClient::connect(addr, "localhost", &client(&pki)).expect("connect after rotation");
    assert!(
        fresh.server_cert_names().contains(&"v2.test".to_owned()),
        "new connections get the new certificate"
    );
    // The connection opened before the rotation keeps working on its session.
    assert_eq!(kept.get("localhost", "/after").expect("request on the old connection").status, 200);
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().expect("worker");
    }
    assert_eq!(failed.load(Ordering::Relaxed), 0, "no request failed during the rotation");
    assert!(ok.load(Ordering::Relaxed) > 0);
}

#[test]
fn demo_serves_http2_over_tls_with_a_generated_certificate() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port();
    let mut child = Command::new(common::gateway::binary())
        .args(["demo", "--port", &port.to_string(), "--tls-port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the demo");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let deadline = std::time::Instant::now() + LONG;
    let line = loop {
        assert!(std::time::Instant::now() < deadline, "no TLS curl line in time");
        let mut line = String::new();
        if out.read_line(&mut line).expect("read demo output") == 0 {
            panic!("demo exited");
        }
        if line.contains("--http2 --cacert") {
            break line;
        }
    };
    // "  curl -i --http2 --cacert <ca> https://localhost:<port>/users/42"
    let words: Vec<&str> = line.split_whitespace().collect();
    let ca = words[words.iter().position(|w| *w == "--cacert").expect("--cacert") + 1];
    let url = words.last().expect("url");
    let curl = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "30",
            "--http2",
            "--cacert",
            ca,
            "-o",
            "/dev/null",
            "-w",
            "%{http_version} %{http_code}",
        ])
        .arg(url)
        .output()
        .expect("run curl");
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(String::from_utf8_lossy(&curl.stdout), "2 200", "{}", String::from_utf8_lossy(&curl.stderr));
}
