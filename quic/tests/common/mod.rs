//! Test helpers: a self-signed certificate and an HTTP/3 echo server that names its shard.
#![allow(dead_code)]

use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};

pub struct Cert {
    pub der: rustls::pki_types::CertificateDer<'static>,
    pub key: rustls::pki_types::PrivateKeyDer<'static>,
}

pub fn cert() -> Cert {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("rcgen");
    Cert {
        der: ck.cert.der().clone(),
        key: rustls::pki_types::PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()).into(),
    }
}

pub fn server_config(cert: &Cert) -> quinn::ServerConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("tls13")
        .with_no_client_auth()
        .with_single_cert(vec![cert.der.clone()], cert.key.clone_key())
        .expect("cert");
    tls.alpn_protocols = vec![b"h3".to_vec()];
    let quic = quinn::crypto::rustls::QuicServerConfig::try_from(tls).expect("quic tls");
    quinn::ServerConfig::with_crypto(Arc::new(quic))
}

/// The rustls crypto of `server_config`, for endpoints that bring their own keys.
pub fn quic_crypto(cert: &Cert) -> Arc<quinn::crypto::rustls::QuicServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("tls13")
        .with_no_client_auth()
        .with_single_cert(vec![cert.der.clone()], cert.key.clone_key())
        .expect("cert");
    tls.alpn_protocols = vec![b"h3".to_vec()];
    Arc::new(quinn::crypto::rustls::QuicServerConfig::try_from(tls).expect("quic tls"))
}

/// Trust anchors with just `cert`.
pub fn roots(cert: &Cert) -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der.clone()).expect("root");
    roots
}

pub async fn echo_server(endpoint: quinn::Endpoint, shard: usize) {
    while let Some(incoming) = endpoint.accept().await {
        monoio::spawn(async move {
            let shard = shard;
            let Ok(conn) = incoming.await else { return };
            let Ok(mut h3c) = h3::server::Connection::<_, Bytes>::new(h3_quinn::Connection::new(conn)).await
            else {
                return;
            };
            while let Ok(Some(resolver)) = h3c.accept().await {
                monoio::spawn(async move {
                    let Ok((req, mut stream)) = resolver.resolve_request().await else { return };
                    let mut body = BytesMut::new();
                    while let Ok(Some(mut chunk)) = stream.recv_data().await {
                        while chunk.has_remaining() {
                            let part = chunk.chunk();
                            body.extend_from_slice(part);
                            let n = part.len();
                            chunk.advance(n);
                        }
                    }
                    let reply =
                        format!("{} {} {}", req.method(), req.uri().path(), String::from_utf8_lossy(&body));
                    let resp = http::Response::builder()
                        .status(200)
                        .header("x-echo", "1")
                        .header("x-shard", shard.to_string())
                        .body(())
                        .expect("resp");
                    if stream.send_response(resp).await.is_ok() {
                        let _ = stream.send_data(Bytes::from(reply)).await;
                        let _ = stream.finish().await;
                    }
                });
            }
        });
    }
}
