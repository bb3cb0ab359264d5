//! A real TLS upstream for the end-to-end tests: a std `TcpListener` on an ephemeral port, a
//! rustls server (certificate from the test CA, optionally requiring a client certificate) on
//! one thread per connection, keep-alive HTTP/1.1. Every response body says what the TLS layer
//! saw: `sni=<name> client=<subject or -> alpn=<id or ->`.

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, ServerConnection, StreamOwned};

use super::tls::Pki;
use super::wire::Wire;

/// A running TLS upstream (its accept thread lives as long as the test process).
pub struct TlsUpstream {
    /// Where it listens.
    pub addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    handshakes: Arc<AtomicUsize>,
}

impl TlsUpstream {
    /// Serves with a certificate for `names` issued by `pki`; with `require_client_cert`, only
    /// clients presenting a certificate from `pki` complete the handshake.
    pub fn start(pki: &Pki, names: &[&str], require_client_cert: bool) -> TlsUpstream {
        let (crt, key) = pki.issue(&format!("upstream-{}", names.join("-")), names);
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_file_iter(&crt).expect("read cert").map(|c| c.expect("cert")).collect();
        let key = PrivateKeyDer::from_pem_file(&key).expect("read key");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("versions");
        let builder = if require_client_cert {
            let mut roots = RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(&pki.ca_pem).expect("read CA") {
                roots.add(c.expect("CA cert")).expect("add CA");
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .expect("client verifier");
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let mut config = builder.with_single_cert(chain, key).expect("server cert");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let accepted = Arc::new(AtomicUsize::new(0));
        let handshakes = Arc::new(AtomicUsize::new(0));
        let (acc, hs) = (accepted.clone(), handshakes.clone());
        std::thread::spawn(move || {
            for sock in listener.incoming() {
                let Ok(sock) = sock else { continue };
                acc.fetch_add(1, Ordering::SeqCst);
                let (config, hs) = (config.clone(), hs.clone());
                std::thread::spawn(move || serve(sock, config, &hs));
            }
        });
        TlsUpstream { addr, accepted, handshakes }
    }

    /// TCP connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// TLS handshakes completed so far.
    pub fn handshakes(&self) -> usize {
        self.handshakes.load(Ordering::SeqCst)
    }
}

fn serve(sock: std::net::TcpStream, config: Arc<ServerConfig>, handshakes: &AtomicUsize) {
    let Ok(conn) = ServerConnection::new(config) else { return };
    let mut tls = StreamOwned::new(conn, sock);
    while tls.conn.is_handshaking() {
        if tls.conn.complete_io(&mut tls.sock).is_err() {
            return;
        }
    }
    handshakes.fetch_add(1, Ordering::SeqCst);
    let sni = tls.conn.server_name().unwrap_or("-").to_owned();
    let alpn = tls.conn.alpn_protocol().map_or("-".to_owned(), |a| String::from_utf8_lossy(a).into_owned());
    let client = tls
        .conn
        .peer_certificates()
        .and_then(|c| c.first())
        .map_or("-".to_owned(), |c| portcullis_http::tls::x509::parse(c).expect("client cert").subject);
    let mut wire = Wire::new(tls);
    while let Ok(Some(_head)) = wire.read_head() {
        let body = format!("sni={sni} client={client} alpn={alpn}");
        let resp = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len());
        let out = wire.get_mut();
        if out.write_all(resp.as_bytes()).and_then(|()| out.flush()).is_err() {
            return;
        }
    }
}
