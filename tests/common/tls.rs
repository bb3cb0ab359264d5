//! TLS for the end-to-end tests: a throwaway certificate authority (rcgen) issuing server
//! certificates into a temporary directory, and a blocking rustls HTTP/1.1 client that reports
//! what was negotiated (certificate names, version, suite, resumption).

use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use super::client::{IO_TIMEOUT, Response, read_response_from};
use super::wire::Wire;

/// A certificate authority with its files in a temporary directory.
pub struct Pki {
    /// Where the PEM files are written.
    pub dir: tempfile::TempDir,
    ca: CertifiedIssuer<'static, KeyPair>,
    /// The CA certificate (for `curl --cacert`).
    pub ca_pem: PathBuf,
}

impl Default for Pki {
    fn default() -> Self {
        Pki::new()
    }
}

impl Pki {
    /// A fresh CA.
    pub fn new() -> Pki {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, "Portcullis Test CA");
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("CA key")).expect("CA cert");
        let ca_pem = dir.path().join("ca.pem");
        std::fs::write(&ca_pem, ca.pem()).expect("write CA");
        Pki { dir, ca, ca_pem }
    }

    /// Issues a server certificate for `names` (common name = first name) into `<stem>.crt` /
    /// `<stem>.key`; returns both paths.
    pub fn issue(&self, stem: &str, names: &[&str]) -> (PathBuf, PathBuf) {
        self.issue_with(stem, names, |_| {})
    }

    /// Like `issue`, letting `edit` change the parameters (validity, subject, ...).
    pub fn issue_with(
        &self,
        stem: &str,
        names: &[&str],
        edit: impl FnOnce(&mut CertificateParams),
    ) -> (PathBuf, PathBuf) {
        let names: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
        let mut params = CertificateParams::new(names.clone()).expect("params");
        if let Some(first) = names.first() {
            params.distinguished_name.push(DnType::CommonName, first.as_str());
        }
        edit(&mut params);
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.ca).expect("sign");
        self.write_pair(stem, &cert, &key)
    }

    /// Issues a client certificate (common name `cn`, optional SPIFFE URI); returns it and its key.
    pub fn issue_client(
        &self,
        cn: &str,
        spiffe: Option<&str>,
    ) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(DnType::CommonName, cn);
        if let Some(uri) = spiffe {
            params
                .subject_alt_names
                .push(rcgen::SanType::URI(rcgen::string::Ia5String::try_from(uri).expect("uri")));
        }
        params.extended_key_usages.push(rcgen::ExtendedKeyUsagePurpose::ClientAuth);
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.ca).expect("sign");
        let key_der = PrivateKeyDer::try_from(key.serialize_der()).expect("key der");
        (cert.der().clone(), key_der)
    }

    /// Like `issue_client`, written as PEM files `<stem>.crt` / `<stem>.key`; returns both paths.
    pub fn issue_client_files(&self, stem: &str, cn: &str) -> (PathBuf, PathBuf) {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages.push(rcgen::ExtendedKeyUsagePurpose::ClientAuth);
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.ca).expect("sign");
        self.write_pair(stem, &cert, &key)
    }

    /// Writes `cert` and `key` as PEM files `<stem>.crt` / `<stem>.key`; returns both paths.
    fn write_pair(&self, stem: &str, cert: &rcgen::Certificate, key: &KeyPair) -> (PathBuf, PathBuf) {
        let (crt, keyf) =
            (self.dir.path().join(format!("{stem}.crt")), self.dir.path().join(format!("{stem}.key")));
        write_atomic(&crt, cert.pem().as_bytes());
        write_atomic(&keyf, key.serialize_pem().as_bytes());
        (crt, keyf)
    }

    /// A client config trusting this CA that presents `cert` (from `issue_client`).
    pub fn client_config_with_cert(
        &self,
        cert: CertificateDer<'static>,
        key: PrivateKeyDer<'static>,
    ) -> ClientConfig {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.der().clone()).expect("add CA");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_client_auth_cert(vec![cert], key)
            .expect("client cert")
    }

    /// A client config trusting this CA, offering `alpn`.
    pub fn client_config(&self, alpn: &[&str]) -> ClientConfig {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.der().clone()).expect("add CA");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        cfg.alpn_protocols = alpn.iter().map(|a| a.as_bytes().to_vec()).collect();
        cfg
    }
}

/// Writes a file by write-then-rename, so a watcher never sees half of it.
pub fn write_atomic(path: &std::path::Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

/// A blocking TLS connection to `addr` with `sni` as the server name, handshake done.
pub fn tls_stream(
    addr: SocketAddr,
    sni: &str,
    config: &Arc<ClientConfig>,
) -> io::Result<StreamOwned<ClientConnection, TcpStream>> {
    let sock = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
    sock.set_read_timeout(Some(IO_TIMEOUT))?;
    sock.set_write_timeout(Some(IO_TIMEOUT))?;
    let name = ServerName::try_from(sni.to_owned()).map_err(io::Error::other)?;
    let conn = ClientConnection::new(config.clone(), name).map_err(io::Error::other)?;
    let mut stream = StreamOwned::new(conn, sock);
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock)?;
    }
    Ok(stream)
}

/// A TLS connection to the gateway speaking HTTP/1.1.
pub struct TlsClient {
    wire: Wire<StreamOwned<ClientConnection, TcpStream>>,
}

impl TlsClient {
    /// Connects and completes the handshake with `sni` as the server name.
    pub fn connect(addr: SocketAddr, sni: &str, config: &Arc<ClientConfig>) -> io::Result<TlsClient> {
        Ok(TlsClient { wire: Wire::new(tls_stream(addr, sni, config)?) })
    }

    /// The rustls connection (version, suite, ALPN, resumption).
    pub fn conn(&self) -> &ClientConnection {
        &self.wire.get_ref().conn
    }

    /// The DNS names of the certificate the server presented.
    pub fn server_cert_names(&self) -> Vec<String> {
        let certs: &[CertificateDer<'static>] = self.conn().peer_certificates().expect("server certificates");
        portcullis_http::tls::x509::parse(&certs[0]).expect("parse server certificate").dns_names
    }

    /// Sends `bytes` and reads one response.
    pub fn request(&mut self, bytes: &[u8]) -> io::Result<Response> {
        self.wire.get_mut().write_all(bytes)?;
        self.wire.get_mut().flush()?;
        let mut body = Vec::new();
        let mut r = read_response_from(&mut self.wire, false, &mut |d| body.extend_from_slice(d))?;
        r.body = body;
        Ok(r)
    }

    /// `GET path` with `Host: host`.
    pub fn get(&mut self, host: &str, path: &str) -> io::Result<Response> {
        self.request(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())
    }
}
