//! `portcullis h3 URL`: one HTTP/3 request with our own client (Debian's curl has no HTTP/3), for
//! trying the demo's HTTP/3 listener or checking a deployment.

use std::net::ToSocketAddrs;
use std::path::Path;

use anyhow::{Context, bail};
use bytes::Bytes;
use portcullis_quic::client::H3Client;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// Fetches `url` over HTTP/3 and prints the status line, headers and body.
pub fn run(url: &str, cacert: Option<&Path>, method: &str, data: Option<&str>) -> anyhow::Result<()> {
    let uri: http::Uri = url.parse().with_context(|| format!("not a URL: {url}"))?;
    if uri.scheme_str() != Some("https") {
        bail!("HTTP/3 URLs are https://");
    }
    let host = uri.host().context("the URL has no host")?.to_owned();
    let port = uri.port_u16().unwrap_or(443);
    let addr = (host.as_str(), port)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {host}"))?
        .next()
        .with_context(|| format!("{host} has no address"))?;
    let mut roots = rustls::RootCertStore::empty();
    match cacert {
        Some(path) => {
            for cert in CertificateDer::pem_file_iter(path)
                .with_context(|| format!("cannot read {}", path.display()))?
            {
                roots.add(cert.context("bad PEM certificate")?).context("unusable CA certificate")?;
            }
        }
        None => bail!("pass --cacert with the CA that signed the gateway's certificate"),
    }
    let req =
        http::Request::builder().method(method).uri(uri).body(()).context("cannot build the request")?;
    let body = Bytes::from(data.unwrap_or_default().to_owned());
    let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new().enable_timer().build()?;
    let resp = rt.block_on(async move {
        let mut client = H3Client::connect(addr, &host, roots).await?;
        let resp = client.request(req, body).await;
        client.close().await;
        resp
    })?;
    println!("HTTP/3 {}", resp.status);
    for (name, value) in &resp.headers {
        println!("{name}: {}", String::from_utf8_lossy(value.as_bytes()));
    }
    println!();
    println!("{}", String::from_utf8_lossy(&resp.body));
    Ok(())
}
