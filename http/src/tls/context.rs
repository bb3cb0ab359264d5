//! Building a listener's rustls `ServerConfig` from `[listeners.tls]`: protocol versions, cipher
//! suites, ALPN, certificates by SNI, client certificate verification (mTLS), and session tickets from the one process-wide ticket key
//! rotator.
//!
//! Owns: the TLS context of one listener for one config generation, built once on the control
//! thread and shared read-only by every shard. Must not: accept connections or read sockets.

use std::sync::{Arc, OnceLock};

use portcullis_core::config::{ClientAuth, ListenerTlsConfig, TlsVersion};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::server::{NoServerSessionStorage, ProducesTickets, WebPkiClientVerifier};
use rustls::{RootCertStore, ServerConfig, SupportedProtocolVersion};

use super::certs;
use super::sni::SniResolver;

/// The session ticket key rotator shared by every shard, listener and config generation of the
/// process: a ticket issued on one shard resumes on any other, and reloads keep resumption
/// working. Keys rotate every 6 hours; the previous key still decrypts for one more period.
fn ticketer() -> Result<Arc<dyn ProducesTickets>, String> {
    static TICKETER: OnceLock<Result<Arc<dyn ProducesTickets>, String>> = OnceLock::new();
    TICKETER
        .get_or_init(|| {
            rustls::crypto::ring::Ticketer::new().map_err(|e| format!("session ticket keys: {e}"))
        })
        .clone()
}

/// Verifies client certificates against the CA file; `Optional` also admits clients without one.
fn client_verifier(
    ca: &str,
    mode: ClientAuth,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, String> {
    let mut roots = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(ca).map_err(|e| format!("client_ca: cannot read {ca}: {e}"))?;
    for cert in certs {
        let cert = cert.map_err(|e| format!("client_ca: {ca} is not a PEM certificate file: {e}"))?;
        roots.add(cert).map_err(|e| format!("client_ca: {ca}: {e}"))?;
    }
    if roots.is_empty() {
        return Err(format!("client_ca: {ca} holds no CERTIFICATE block"));
    }
    let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
    let builder = if mode == ClientAuth::Optional { builder.allow_unauthenticated() } else { builder };
    builder.build().map_err(|e| format!("client_ca: {ca}: {e}"))
}

fn now_secs() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    now.map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A listener's TLS context for one generation.
#[derive(Debug, Clone)]
pub struct ListenerTls {
    /// The rustls server configuration (certificates, versions, ALPN, tickets).
    pub config: Arc<ServerConfig>,
    /// Time allowed for a handshake.
    pub handshake_timeout: std::time::Duration,
    /// Whether `h2` is offered by ALPN.
    pub offers_h2: bool,
}

/// Builds the TLS context for one listener. Errors are prefixed with the key path below `tls`.
pub fn build(tls: &ListenerTlsConfig) -> Result<ListenerTls, String> {
    let base = rustls::crypto::ring::default_provider();
    let cipher_suites = if tls.cipher_suites.is_empty() {
        base.cipher_suites.clone()
    } else {
        tls.cipher_suites
            .iter()
            .filter_map(|name| base.cipher_suites.iter().find(|s| s.suite().as_str() == Some(name.as_str())))
            .copied()
            .collect()
    };
    let provider = Arc::new(CryptoProvider { cipher_suites, ..base });
    let versions: &[&'static SupportedProtocolVersion] = match tls.min_version {
        TlsVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::Tls13 => &[&rustls::version::TLS13],
    };
    let mut resolver: Option<SniResolver> = None;
    for (i, c) in tls.certificates.iter().enumerate() {
        let loaded = certs::load(c, &provider).map_err(|e| format!("certificates[{i}].{e}"))?;
        let days_left = (loaded.not_after - now_secs()) / 86_400;
        if days_left < 14 {
            tracing::warn!(cert = %c.cert, days_left, "certificate expires soon; renew it");
        }
        let r = resolver.get_or_insert_with(|| SniResolver::new(loaded.key.clone()));
        for name in &loaded.names {
            r.add(name, &loaded.key);
        }
    }
    let resolver = resolver.ok_or_else(|| "certificates: at least one certificate is required".to_owned())?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| format!("cipher_suites: {e}"))?;
    let builder = match (tls.client_auth, &tls.client_ca) {
        (ClientAuth::Off, _) | (_, None) => builder.with_no_client_auth(),
        (mode, Some(ca)) => builder.with_client_cert_verifier(client_verifier(ca, mode, provider)?),
    };
    let mut config = builder.with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = tls.alpn.iter().map(|a| a.as_bytes().to_vec()).collect();
    // Resumption is stateless (tickets): a shared session-id cache would put a lock on every
    // handshake of every shard.
    config.session_storage = Arc::new(NoServerSessionStorage {});
    if tls.session_tickets {
        config.ticketer = ticketer()?;
    } else {
        config.send_tls13_tickets = 0;
    }
    Ok(ListenerTls {
        config: Arc::new(config),
        handshake_timeout: tls.handshake_timeout.0,
        offers_h2: tls.alpn.iter().any(|a| a == "h2"),
    })
}
