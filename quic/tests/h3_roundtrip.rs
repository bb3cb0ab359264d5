//! quinn + h3 on our monoio runtime adapter, both ends, over real UDP on loopback: an HTTP/3
//! echo server on one thread, our client on another, on the io_uring driver and on the epoll
//! fallback.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc;

use bytes::Bytes;
use portcullis_quic::MonoioRuntime;
use portcullis_quic::client::H3Client;

mod common;
use common::{cert, echo_server, server_config};

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
                Arc::new(MonoioRuntime::default()),
            )
            .expect("endpoint");
            addr_tx.send(endpoint.local_addr().expect("addr")).expect("send addr");
            let ep = endpoint.clone();
            monoio::spawn(echo_server(ep, 0));
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
            let req = http::Request::builder()
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
