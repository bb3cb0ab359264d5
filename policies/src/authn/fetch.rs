//! One JWKS fetch over HTTP or HTTPS (rustls with ring, web roots or a configured CA file), on
//! the background auth thread only.
//!
//! Owns: the HTTP GET, the body size limit and `Cache-Control: max-age` parsing. Must not: run
//! on a shard (it blocks) or keep any state between fetches.

use std::time::Duration;

use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};

/// Largest JWKS document accepted.
const MAX_JWKS_BYTES: u64 = 1024 * 1024;

/// What one fetch returned.
#[derive(Debug)]
pub struct Fetched {
    /// The document.
    pub body: String,
    /// `Cache-Control: max-age`, if the response had one.
    pub max_age: Option<Duration>,
}

/// An HTTP client for one issuer (its timeout and trusted CAs).
#[derive(Debug)]
pub struct Fetcher {
    agent: ureq::Agent,
}

impl Fetcher {
    /// A client with `timeout` for the whole exchange; `ca_pem` replaces the web roots.
    pub fn new(timeout: Duration, ca_pem: Option<&[u8]>) -> Result<Fetcher, String> {
        let mut cfg = ureq::Agent::config_builder().timeout_global(Some(timeout)).http_status_as_error(true);
        if let Some(pem) = ca_pem {
            let certs: Vec<Certificate<'static>> = ureq::tls::parse_pem(pem)
                .filter_map(|item| match item {
                    Ok(PemItem::Certificate(c)) => Some(c),
                    _ => None,
                })
                .collect();
            if certs.is_empty() {
                return Err("the CA file holds no PEM certificate".to_owned());
            }
            cfg = cfg.tls_config(TlsConfig::builder().root_certs(RootCerts::new_with_certs(&certs)).build());
        }
        Ok(Fetcher { agent: cfg.build().into() })
    }

    /// GETs `uri`.
    pub fn get(&self, uri: &str) -> Result<Fetched, String> {
        let mut resp =
            self.agent.get(uri).header("accept", "application/json").call().map_err(|e| e.to_string())?;
        let max_age = resp.headers().get("cache-control").and_then(|v| v.to_str().ok()).and_then(max_age);
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_JWKS_BYTES)
            .read_to_string()
            .map_err(|e| e.to_string())?;
        Ok(Fetched { body, max_age })
    }
}

/// `max-age=N` from a `Cache-Control` value (`no-store`/`no-cache` count as 0).
pub fn max_age(value: &str) -> Option<Duration> {
    let mut out = None;
    for directive in value.split(',') {
        let d = directive.trim();
        if d.eq_ignore_ascii_case("no-store") || d.eq_ignore_ascii_case("no-cache") {
            return Some(Duration::ZERO);
        }
        if let Some((k, v)) = d.split_once('=')
            && k.trim().eq_ignore_ascii_case("max-age")
        {
            out = v.trim().trim_matches('"').parse::<u64>().ok().map(Duration::from_secs);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_max_age() {
        assert_eq!(max_age("public, max-age=300"), Some(Duration::from_secs(300)));
        assert_eq!(max_age("max-age=\"60\", must-revalidate"), Some(Duration::from_secs(60)));
        assert_eq!(max_age("no-store"), Some(Duration::ZERO));
        assert_eq!(max_age("public"), None);
        assert_eq!(max_age("max-age=abc"), None);
    }
}
