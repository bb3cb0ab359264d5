//! Loading one certificate chain and key from PEM files, with the start-up checks: files
//! readable, key matching the certificate, certificate inside its validity window.
//!
//! Owns: turning `[[listeners.tls.certificates]]` into a rustls `CertifiedKey` plus the names it
//! serves. Must not: choose among certificates (that is `sni`).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use portcullis_core::config::CertificateConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use super::x509::{self, format_time};

/// A loaded certificate with the names it serves.
#[derive(Debug)]
pub struct LoadedCert {
    /// Chain and signing key (and stapled OCSP response, if configured).
    pub key: Arc<CertifiedKey>,
    /// Server names (from the config, or the certificate's DNS names when the config lists none).
    pub names: Vec<String>,
    /// `notAfter` of the leaf, Unix seconds.
    pub not_after: i64,
}

/// Loads and checks one certificate entry. Errors name the file and what is wrong.
pub fn load(c: &CertificateConfig, provider: &CryptoProvider) -> Result<LoadedCert, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&c.cert)
        .map_err(|e| format!("cert: cannot read {}: {}", c.cert, pem_error(&e)))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("cert: {} is not a PEM certificate file: {}", c.cert, pem_error(&e)))?;
    let Some(leaf) = chain.first() else {
        return Err(format!("cert: {} holds no CERTIFICATE block", c.cert));
    };
    let info = x509::parse(leaf).map_err(|e| format!("cert: {}: {e}", c.cert))?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    if info.not_after < now {
        return Err(format!(
            "cert: {} expired at {} (notAfter); renew it",
            c.cert,
            format_time(info.not_after)
        ));
    }
    if info.not_before > now {
        return Err(format!("cert: {} is not valid before {}", c.cert, format_time(info.not_before)));
    }
    let key = PrivateKeyDer::from_pem_file(&c.key)
        .map_err(|e| format!("key: cannot read a private key from {}: {}", c.key, pem_error(&e)))?;
    let mut certified = CertifiedKey::from_der(chain, key, provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => {
            format!("key: {} does not match the certificate in {}", c.key, c.cert)
        }
        other => format!("key: {}: {other}", c.key),
    })?;
    if let Some(ocsp) = &c.ocsp {
        let bytes = std::fs::read(ocsp).map_err(|e| format!("ocsp: cannot read {ocsp}: {e}"))?;
        certified.ocsp = Some(bytes);
    }
    let names = if c.server_names.is_empty() {
        info.dns_names.iter().map(|n| n.to_ascii_lowercase()).collect()
    } else {
        c.server_names.clone()
    };
    Ok(LoadedCert { key: Arc::new(certified), names, not_after: info.not_after })
}

fn pem_error(e: &rustls::pki_types::pem::Error) -> String {
    match e {
        rustls::pki_types::pem::Error::Io(io) => io.to_string(),
        rustls::pki_types::pem::Error::NoItemsFound => "no matching PEM block found".to_owned(),
        other => format!("{other:?}"),
    }
}
