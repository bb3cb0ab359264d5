//! Connection steering: four shards share one UDP port through `SO_REUSEPORT`; a client that
//! changes its source port (NAT rebinding, Wi-Fi to cellular) lands on whichever shard the
//! kernel's hash picks, and its packets must still reach the shard that owns the connection.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use bytes::Bytes;
use portcullis_quic::client::H3Client;
use portcullis_quic::endpoint::{SharedQuic, bind_udp_shards};

mod common;
use common::{cert, echo_server, quic_crypto, roots};

const SHARDS: usize = 4;
const MOVES: usize = 10;

fn runtime() -> monoio::FusionRuntime<
    monoio::time::TimeDriver<monoio::IoUringDriver>,
    monoio::time::TimeDriver<monoio::LegacyDriver>,
> {
    monoio::RuntimeBuilder::<monoio::FusionDriver>::new().enable_timer().build().expect("runtime")
}

#[test]
fn a_migrating_client_keeps_its_connection_and_its_shard() {
    let cert = cert();
    let crypto = quic_crypto(&cert);
    let shared = SharedQuic::new(SHARDS).expect("keys");
    let (sockets, addr) = bind_udp_shards("127.0.0.1:0".parse().expect("addr"), SHARDS).expect("bind");
    let stop = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready_rx) = mpsc::channel();
    let mut shards = Vec::new();
    for (i, socket) in sockets.into_iter().enumerate() {
        let shared = shared.clone();
        let crypto = crypto.clone();
        let stop = stop.clone();
        let ready = ready_tx.clone();
        shards.push(std::thread::spawn(move || {
            runtime().block_on(async move {
                let server = shared.server_config(crypto);
                let endpoint = shared.endpoint(i, socket, server).expect("endpoint");
                monoio::spawn(echo_server(endpoint.clone(), i));
                ready.send(()).expect("ready");
                while !stop.load(Ordering::Relaxed) {
                    monoio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                endpoint.close(0u32.into(), b"bye");
            });
        }));
    }
    for _ in 0..SHARDS {
        ready_rx.recv().expect("shard ready");
    }

    let roots = roots(&cert);
    let ports = runtime().block_on(async move {
        let mut client = H3Client::connect(addr, "localhost", roots).await.expect("connect");
        let ask = |i: usize| {
            http::Request::builder()
                .method("POST")
                .uri(format!("https://localhost/m/{i}"))
                .body(())
                .expect("req")
        };
        let first = client.request(ask(0), Bytes::from_static(b"hello")).await.expect("first request");
        assert_eq!(first.status, 200);
        let owner = first.headers.get("x-shard").expect("x-shard").to_str().expect("ascii").to_owned();
        let mut ports = vec![client.local_addr().expect("local").port()];
        for i in 1..=MOVES {
            client.rebind().expect("rebind");
            ports.push(client.local_addr().expect("local").port());
            let resp = client
                .request(ask(i), Bytes::from(format!("after move {i}")))
                .await
                .expect("request after move");
            assert_eq!(resp.status, 200, "move {i}");
            assert_eq!(resp.body, Bytes::from(format!("POST /m/{i} after move {i}")), "move {i}");
            assert_eq!(
                resp.headers.get("x-shard").and_then(|v| v.to_str().ok()),
                Some(owner.as_str()),
                "move {i}: served by the shard that owns the connection"
            );
        }
        client.close().await;
        ports
    });
    stop.store(true, Ordering::Relaxed);
    for s in shards {
        s.join().expect("shard thread");
    }
    let mut distinct = ports.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), ports.len(), "every move used a new source port: {ports:?}");
    let forwarded: u64 = (0..SHARDS).map(|s| shared.steering.stats(s).forwarded).sum();
    let received: u64 = (0..SHARDS).map(|s| shared.steering.stats(s).received).sum();
    // With 4 shards and 10 new source ports, the chance that the kernel hashed every one of
    // them to the owner is 4^-10: some packets must have been steered.
    assert!(forwarded > 0, "no datagram was steered across shards");
    assert_eq!(forwarded, received, "every steered datagram reached its owner's inbox");
}
