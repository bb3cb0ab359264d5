//! Certificate selection by SNI: exact names first, then the longest matching `*.` wildcard
//! (one label deep, as browsers match), then the default (the first certificate).
//!
//! Owns: the name-to-certificate map of one listener. Must not: load files.

use std::collections::HashMap;
use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// Picks a listener's certificate from the client's server name.
#[derive(Debug)]
pub struct SniResolver {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// Keyed by the suffix after `*.`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Arc<CertifiedKey>,
}

impl SniResolver {
    /// Builds the map; the first certificate is the default. Names are lowercase.
    pub fn new(default: Arc<CertifiedKey>) -> SniResolver {
        SniResolver { exact: HashMap::new(), wildcard: HashMap::new(), default }
    }

    /// Adds a name (`api.example.com` or `*.example.com`); the first holder of a name keeps it.
    pub fn add(&mut self, name: &str, key: &Arc<CertifiedKey>) {
        match name.strip_prefix("*.") {
            Some(suffix) => self.wildcard.entry(suffix.to_owned()).or_insert_with(|| key.clone()),
            None => self.exact.entry(name.to_owned()).or_insert_with(|| key.clone()),
        };
    }

    /// The certificate for `name` (lowercase), or the default.
    pub fn pick(&self, name: Option<&str>) -> &Arc<CertifiedKey> {
        let Some(name) = name else { return &self.default };
        if let Some(k) = self.exact.get(name) {
            return k;
        }
        if let Some(k) = name.split_once('.').and_then(|(_, suffix)| self.wildcard.get(suffix)) {
            return k;
        }
        &self.default
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // rustls hands over the SNI value already validated and lowercased.
        Some(self.pick(hello.server_name()).clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::sign::SigningKey;

    #[derive(Debug)]
    struct NoKey;

    impl SigningKey for NoKey {
        fn choose_scheme(&self, _: &[rustls::SignatureScheme]) -> Option<Box<dyn rustls::sign::Signer>> {
            None
        }
        fn algorithm(&self) -> rustls::SignatureAlgorithm {
            rustls::SignatureAlgorithm::ECDSA
        }
    }

    fn key() -> Arc<CertifiedKey> {
        Arc::new(CertifiedKey::new(Vec::new(), Arc::new(NoKey)))
    }

    #[test]
    fn exact_then_wildcard_then_default() {
        let (d, a, w) = (key(), key(), key());
        let mut r = SniResolver::new(d.clone());
        r.add("api.example.com", &a);
        r.add("*.example.com", &w);
        assert!(Arc::ptr_eq(r.pick(Some("api.example.com")), &a));
        assert!(Arc::ptr_eq(r.pick(Some("www.example.com")), &w));
        assert!(Arc::ptr_eq(r.pick(Some("a.b.example.com")), &d), "wildcards match one label only");
        assert!(Arc::ptr_eq(r.pick(Some("example.com")), &d));
        assert!(Arc::ptr_eq(r.pick(None), &d));
    }
}
