//! What the load generator talks to: the URL (scheme, authority, address, path), the protocol,
//! the requests it sends (the HTTP/1.1 bytes, or the HTTP/2 / HTTP/3 request template) and the
//! client TLS settings (`--cacert`, or `--insecure` for a self-signed benchmark certificate).
//! Pure set-up, before any thread starts; owns no socket.

use std::{
    net::{SocketAddr, ToSocketAddrs},
    path::Path,
    sync::Arc,
};

use anyhow::{Context, Result, bail};
use portcullis_http::upstream::NoVerify;
use rustls::pki_types::{CertificateDer, pem::PemObject};

use super::plan::RequestTemplate;

/// Which HTTP version the generator speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Proto {
    /// HTTP/1.1 (cleartext, pipelining with `-p`).
    H1,
    /// HTTP/2: TLS with ALPN `h2` for https:// URLs, prior knowledge (h2c) for http://.
    H2,
    /// HTTP/3 over QUIC (https:// URLs only).
    H3,
}

/// A parsed target URL.
#[derive(Debug, Clone)]
pub struct Url {
    /// `https://` (TLS) rather than `http://`.
    pub tls: bool,
    /// `host[:port]` as written (the Host / :authority value).
    pub authority: String,
    /// Host without port or brackets (the TLS server name).
    pub host: String,
    /// Resolved address.
    pub addr: SocketAddr,
    /// Path and query.
    pub path: String,
}

impl Url {
    /// Parses `http://` and `https://` URLs (default ports 80 and 443).
    pub fn parse(url: &str) -> Result<Url> {
        let (tls, rest) = match (url.strip_prefix("http://"), url.strip_prefix("https://")) {
            (Some(rest), _) => (false, rest),
            (_, Some(rest)) => (true, rest),
            _ => bail!("only http:// and https:// URLs are supported (got {url})"),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() {
            bail!("no host in {url}");
        }
        let has_port = authority.rsplit(':').next().is_some_and(|p| p.parse::<u16>().is_ok())
            && !authority.ends_with(']');
        let (with_port, host) = if has_port {
            let i = authority.rfind(':').unwrap_or(authority.len());
            (authority.to_owned(), &authority[..i])
        } else {
            (format!("{authority}:{}", if tls { 443 } else { 80 }), authority)
        };
        let addr = with_port
            .to_socket_addrs()
            .with_context(|| format!("resolving {authority}"))?
            .next()
            .with_context(|| format!("{authority} resolves to no address"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
        Ok(Url { tls, authority: authority.to_owned(), host, addr, path: path.to_owned() })
    }

    /// The URL as loaded (scheme, authority, path).
    pub fn display(&self) -> String {
        format!("{}://{}{}", if self.tls { "https" } else { "http" }, self.authority, self.path)
    }

    /// The report's protocol label.
    pub fn label(&self, proto: Proto) -> &'static str {
        match (proto, self.tls) {
            (Proto::H1, _) => "h1",
            (Proto::H2, false) => "h2c",
            (Proto::H2, true) => "h2",
            (Proto::H3, _) => "h3",
        }
    }
}

/// Checks `-H` values (`Name: value`, one line each).
fn header_lines(headers: &[String]) -> Result<impl Iterator<Item = (&str, &str)>> {
    for h in headers {
        if !h.contains(':') || h.contains('\r') || h.contains('\n') {
            bail!("header {h:?} is not `Name: value`");
        }
    }
    Ok(headers.iter().filter_map(|h| h.split_once(':')).map(|(n, v)| (n.trim(), v.trim())))
}

/// Encodes the one HTTP/1.1 request every connection sends.
pub fn encode_request(host: &str, path: &str, headers: &[String]) -> Result<Vec<u8>> {
    let _ = header_lines(headers)?;
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n");
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    Ok(req.into_bytes())
}

/// The HTTP/2 and HTTP/3 request (a `Host` header given with `-H` is left to `:authority`).
pub fn template(url: &Url, headers: &[String]) -> Result<RequestTemplate> {
    let uri: http::Uri = url.display().parse().with_context(|| format!("bad URL {}", url.display()))?;
    let mut map = http::HeaderMap::new();
    for (name, value) in header_lines(headers)? {
        let name = http::HeaderName::from_bytes(name.as_bytes())
            .with_context(|| format!("bad header name {name:?}"))?;
        if name == http::header::HOST {
            continue;
        }
        let value =
            http::HeaderValue::from_str(value).with_context(|| format!("bad header value {value:?}"))?;
        map.append(name, value);
    }
    Ok(RequestTemplate { uri, headers: map })
}

/// The client TLS settings: trust `cacert`'s certificates, or (`insecure`) any certificate.
/// HTTP/3 needs TLS 1.3 only; `alpn` is set by the caller's protocol.
pub fn client_tls(insecure: bool, cacert: Option<&Path>, tls13_only: bool) -> Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] =
        if tls13_only { &[&rustls::version::TLS13] } else { rustls::DEFAULT_VERSIONS };
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .context("TLS versions")?;
    let config = match (insecure, cacert) {
        (true, _) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
            .with_no_client_auth(),
        (false, Some(path)) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in
                CertificateDer::pem_file_iter(path).with_context(|| format!("reading {}", path.display()))?
            {
                let cert =
                    cert.with_context(|| format!("{} is not a PEM certificate file", path.display()))?;
                roots.add(cert).with_context(|| format!("a certificate in {}", path.display()))?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        (false, None) => bail!("https:// needs --cacert FILE (the server's CA) or --insecure"),
    };
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_with_and_without_port_and_path() {
        let u = Url::parse("http://127.0.0.1:9000/a/b?c=1").expect("url");
        assert_eq!(
            (u.authority.as_str(), u.addr.port(), u.path.as_str()),
            ("127.0.0.1:9000", 9000, "/a/b?c=1")
        );
        assert_eq!((u.host.as_str(), u.tls), ("127.0.0.1", false));
        let u = Url::parse("http://127.0.0.1").expect("url");
        assert_eq!((u.addr.port(), u.path.as_str()), (80, "/"));
        let u = Url::parse("https://[::1]").expect("url");
        assert_eq!((u.addr.port(), u.host.as_str(), u.tls), (443, "::1", true));
        assert_eq!(u.label(Proto::H2), "h2");
        assert_eq!(Url::parse("http://localhost:1/").expect("url").label(Proto::H2), "h2c");
        assert!(Url::parse("ftp://127.0.0.1/").is_err());
        assert!(Url::parse("http:///x").is_err());
    }

    #[test]
    fn request_is_encoded_once_with_extra_headers() {
        let req = encode_request("h:1", "/p", &["X-A: 1".into()]).expect("request");
        assert_eq!(req, b"GET /p HTTP/1.1\r\nHost: h:1\r\nX-A: 1\r\n\r\n");
        assert!(encode_request("h", "/", &["bad".into()]).is_err());
        assert!(encode_request("h", "/", &["X: a\r\nY: b".into()]).is_err());
    }

    #[test]
    fn template_carries_uri_and_headers() {
        let url = Url::parse("https://127.0.0.1:8443/x?y").expect("url");
        let t = template(&url, &["X-A: 1".into(), "Host: ignored".into()]).expect("template");
        let req = t.build();
        assert_eq!(req.uri().to_string(), "https://127.0.0.1:8443/x?y");
        assert_eq!(req.headers().get("x-a").map(|v| v.as_bytes()), Some(&b"1"[..]));
        assert!(req.headers().get("host").is_none());
    }

    #[test]
    fn https_needs_a_trust_decision() {
        assert!(client_tls(false, None, false).is_err());
        assert!(client_tls(true, None, true).is_ok());
    }
}
