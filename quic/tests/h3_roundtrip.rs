//! quinn + h3 on our monoio runtime adapter, both ends, over real UDP on loopback: an HTTP/3
//! echo server on one thread, our client on another, on the io_uring driver and on the epoll
//! fallback.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc;

use bytes::{Buf, Bytes, BytesMut};
use portcullis_quic::MonoioRuntime;
use portcullis_quic::client::H3Client;

struct Cert {
    der: rustls::pki_types::CertificateDer<'static>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
}

fn cert() -> Cert {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("rcgen");
    Cert {
        der: ck.cert.der().clone(),
        key: rustls::pki_types::PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()).into(),
    }
}

fn server_config(cert: &Cert) -> quinn::ServerConfig {
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

async fn echo_server(endpoint: quinn::Endpoint) {
    while let Some(incoming) = endpoint.accept().await {
        monoio::spawn(async move {
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
                    let resp =
                        http1::Response::builder().status(200).header("x-echo", "1").body(()).expect("resp");
                    if stream.send_response(resp).await.is_ok() {
                        let _ = stream.send_data(Bytes::from(reply)).await;
                        let _ = stream.finish().await;
                    }
                });
            }
        });
    }
}

fn run<D>(build: fn() -> monoio::Runtime<D>)
where
    D: monoio::Driver + 'static,
{
    let cert = cert();
    let server_cfg = server_config(&cert);
    let (addr_tx, addr_rx) = mpsc::channel::<SocketAddr>();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let server = std::thread::spawn(move || {
        build().block_on(async move {
            let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
            let endpoint = quinn::Endpoint::new(
                quinn::EndpointConfig::default(),
                Some(server_cfg),
                socket,
                Arc::new(MonoioRuntime),
            )
            .expect("endpoint");
            addr_tx.send(endpoint.local_addr().expect("addr")).expect("send addr");
            let ep = endpoint.clone();
            monoio::spawn(echo_server(ep));
            // Stop when the test says so (polled: the std channel has no async side).
            while stop_rx.try_recv().is_err() {
                monoio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            endpoint.close(0u32.into(), b"bye");
        });
    });
    let addr = addr_rx.recv().expect("server address");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der.clone()).expect("root");
    build().block_on(async move {
        let mut client = H3Client::connect(addr, "localhost", roots).await.expect("connect");
        for i in 0..20 {
            let req = http1::Request::builder()
                .method("POST")
                .uri(format!("https://localhost/echo/{i}"))
                .body(())
                .expect("req");
            let resp = client.request(req, Bytes::from(format!("body-{i}"))).await.expect("request");
            assert_eq!(resp.status, 200);
            assert_eq!(resp.headers.get("x-echo").map(|v| v.as_bytes()), Some(&b"1"[..]));
            assert_eq!(resp.body, Bytes::from(format!("POST /echo/{i} body-{i}")));
        }
        client.close().await;
    });
    stop_tx.send(()).expect("stop");
    server.join().expect("server thread");
}

#[test]
fn h3_echo_on_the_io_uring_driver() {
    run(|| {
        monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
            .enable_timer()
            .build()
            .expect("io_uring runtime")
    });
}

#[test]
fn h3_echo_on_the_epoll_fallback() {
    run(|| {
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new().enable_timer().build().expect("legacy runtime")
    });
}
