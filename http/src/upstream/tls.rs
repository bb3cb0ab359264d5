//! TLS toward upstreams: the rustls client context of an `[upstreams.tls]` table (CA bundle or
//! the bundled Mozilla roots, SNI name, ALPN, client certificate for mTLS to the backend), built
//! once per config generation on the control thread, and the client handshake on a fresh
//! connection.
//!
//! Owns: upstream certificate verification and the step from a TCP upstream connection to a TLS
//! one. Must not: pool connections (that is `pool`) or frame HTTP.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use portcullis_core::config::{UpstreamConfig, UpstreamProtocol, UpstreamTlsConfig};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::conn::UpConn;
use super::stream::UpStream;
use crate::tls::TlsStream;

/// The TLS client context of one upstream for one generation (shared by every shard).
#[derive(Clone)]
pub struct UpstreamTls {
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
    /// Identifies the settings, so pooled connections are only reused by an upstream whose TLS
    /// settings match (0 is plain TCP).
    pub flavor: u64,
}

impl std::fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTls").field("server_name", &self.server_name).finish_non_exhaustive()
    }
}

/// Why a TLS connection to an upstream could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsFail {
    /// The handshake did not finish within the connect timeout.
    #[error("TLS handshake timed out")]
    Timeout,
    /// The upstream's certificate was refused (unknown issuer, wrong name, expired).
    #[error("upstream certificate rejected: {0}")]
    Certificate(rustls::Error),
    /// Any other handshake failure (alert from the upstream, I/O error).
    #[error("TLS handshake failed: {0}")]
    Handshake(String),
}

fn read_certs(path: &str, key: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{key}: cannot read {path}: {e}"))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{key}: {path} is not a PEM certificate file: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{key}: {path} holds no CERTIFICATE block"));
    }
    Ok(certs)
}

fn roots(ca: Option<&str>) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    match ca {
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        Some(path) => {
            for cert in read_certs(path, "ca")? {
                roots.add(cert).map_err(|e| format!("ca: {path}: {e}"))?;
            }
        }
    }
    Ok(roots)
}

/// The SNI name: `server_name`, else the host part of the first endpoint.
fn server_name(tls: &UpstreamTlsConfig, up: &UpstreamConfig) -> Result<ServerName<'static>, String> {
    let host = match &tls.server_name {
        Some(n) => n.clone(),
        None => {
            let ep = up.endpoints.first().map(|e| e.address()).unwrap_or_default();
            let host = ep.rsplit_once(':').map_or(ep, |(h, _)| h);
            host.trim_start_matches('[').trim_end_matches(']').to_owned()
        }
    };
    ServerName::try_from(host.clone())
        .map_err(|_| format!("server_name: {host:?} is not a valid server name"))
}

/// Builds the client context of `up`'s `tls` table. Errors are prefixed with the key below `tls`.
pub fn build(tls: &UpstreamTlsConfig, up: &UpstreamConfig) -> Result<UpstreamTls, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("versions: {e}"))?;
    let builder = if tls.insecure_skip_verify {
        tracing::warn!(upstream = %up.name, "upstream certificates are NOT verified (insecure_skip_verify)");
        builder.dangerous().with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
    } else {
        builder.with_root_certificates(roots(tls.ca.as_deref())?)
    };
    let mut config = match (&tls.client_cert, &tls.client_key) {
        (Some(cert), Some(key)) => {
            let chain = read_certs(cert, "client_cert")?;
            let der = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| format!("client_key: cannot read a private key from {key}: {e}"))?;
            builder.with_client_auth_cert(chain, der).map_err(|e| format!("client_key: {key}: {e}"))?
        }
        _ => builder.with_no_client_auth(),
    };
    config.alpn_protocols = tls.alpn.iter().map(|a| a.as_bytes().to_vec()).collect();
    if up.protocol == UpstreamProtocol::H2 && config.alpn_protocols.is_empty() {
        config.alpn_protocols.push(b"h2".to_vec());
    }
    let server_name = server_name(tls, up)?;
    let mut h = DefaultHasher::new();
    tls.hash(&mut h);
    up.protocol.hash(&mut h);
    server_name.to_str().hash(&mut h);
    Ok(UpstreamTls { config: Arc::new(config), server_name, flavor: h.finish() | 1 })
}

/// Runs the client handshake on a freshly connected (plain) upstream connection.
pub async fn secure(conn: UpConn, tls: &UpstreamTls, timeout: Duration) -> Result<UpConn, TlsFail> {
    let UpConn { stream, rbuf, requests, addr, _open, .. } = conn;
    let UpStream::Plain(tcp) = stream else {
        return Err(TlsFail::Handshake("connection is already TLS".to_owned()));
    };
    let handshake = TlsStream::connect(tcp, tls.config.clone(), tls.server_name.clone());
    let stream = match monoio::time::timeout(timeout, handshake).await {
        Err(_) => return Err(TlsFail::Timeout),
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            // The adapter carries rustls' own error inside the I/O error.
            let cert = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()).cloned();
            return Err(match cert {
                Some(c @ rustls::Error::InvalidCertificate(_)) => TlsFail::Certificate(c),
                _ => TlsFail::Handshake(e.to_string()),
            });
        }
    };
    Ok(UpConn { stream: UpStream::Tls(Box::new(stream)), rbuf, requests, addr, flavor: tls.flavor, _open })
}

/// Accepts every certificate (`insecure_skip_verify`, and the bench generator's `--insecure`),
/// still checking handshake signatures with the provider's algorithms.
#[derive(Debug)]
pub struct NoVerify(pub Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
