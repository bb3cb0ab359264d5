//! HTTP/3 for the reference upstream (`--h3`): a quinn endpoint on the upstream's own monoio
//! ring (the quic crate's runtime adapter) with a self-signed certificate, every request
//! answered with the same fixed `200`: the trivial server the generator's HTTP/3 ceiling is
//! measured against. Must not: serve TCP (that is `upstream`).

use std::{net::SocketAddr, rc::Rc, sync::Arc, time::Duration};

use anyhow::{Context, Result};
use bytes::{Buf, Bytes};
use portcullis_quic::MonoioRuntime;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::{delay::Delay, h1::Canned, upstream_h2::response_head};

/// Streams a client may open at once.
const MAX_STREAMS: u32 = 1024;

/// A quinn server config with a fresh self-signed certificate for `localhost` and 127.0.0.1.
fn server_config() -> Result<quinn::ServerConfig> {
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
    let key = rcgen::generate_simple_self_signed(names).context("generating a certificate")?;
    let cert = CertificateDer::from(key.cert.der().to_vec());
    let pkcs8 = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.signing_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .context("TLS 1.3")?
        .with_no_client_auth()
        .with_single_cert(vec![cert], pkcs8)
        .context("certificate")?;
    tls.alpn_protocols = vec![b"h3".to_vec()];
    let quic = quinn::crypto::rustls::QuicServerConfig::try_from(tls).context("QUIC TLS")?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(quic));
    let mut transport = quinn::TransportConfig::default();
    transport.max_concurrent_bidi_streams(MAX_STREAMS.into());
    config.transport_config(Arc::new(transport));
    Ok(config)
}

/// Binds the endpoint (on the current monoio thread).
pub fn bind(addr: SocketAddr) -> Result<quinn::Endpoint> {
    let socket = std::net::UdpSocket::bind(addr).with_context(|| format!("binding udp {addr}"))?;
    let endpoint = quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        Some(server_config()?),
        socket,
        Arc::new(MonoioRuntime::default()),
    )
    .context("QUIC endpoint")?;
    Ok(endpoint)
}

/// Accepts connections until the process is killed.
pub async fn serve(endpoint: quinn::Endpoint, canned: Rc<Canned>, delay: Delay) {
    let body = Bytes::copy_from_slice(canned.body());
    let mut rng: u64 = 0x2545_F491_4F6C_DD1D;
    while let Some(incoming) = endpoint.accept().await {
        rng = rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        monoio::spawn(connection(incoming, body.clone(), delay, rng | 1));
    }
}

async fn connection(incoming: quinn::Incoming, body: Bytes, delay: Delay, mut rng: u64) {
    let Ok(conn) = incoming.await else { return };
    let Ok(mut h3) = h3::server::Connection::<_, Bytes>::new(h3_quinn::Connection::new(conn)).await else {
        return;
    };
    while let Ok(Some(resolver)) = h3.accept().await {
        monoio::spawn(answer(resolver, body.clone(), delay.pick(&mut rng)));
    }
}

async fn answer(
    resolver: h3::server::RequestResolver<h3_quinn::Connection, Bytes>,
    body: Bytes,
    delay: Option<Duration>,
) {
    let Ok((_req, mut stream)) = resolver.resolve_request().await else { return };
    while let Ok(Some(mut chunk)) = stream.recv_data().await {
        chunk.advance(chunk.remaining());
    }
    if let Some(d) = delay {
        monoio::time::sleep(d).await;
    }
    if stream.send_response(response_head(body.len())).await.is_err() {
        return;
    }
    if !body.is_empty() && stream.send_data(body).await.is_err() {
        return;
    }
    let _ = stream.finish().await;
}
