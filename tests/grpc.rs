//! gRPC end to end through the real binary: a tonic client talks to the gateway (cleartext
//! HTTP/2 with prior knowledge, and TLS with ALPN h2), which forwards to a real tonic server over
//! an `h2c` upstream. Unary calls (payload and metadata both ways), server streaming (order),
//! client streaming, bidirectional ping-pong (each reply before the next message), and non-OK
//! statuses with their exact message (they travel in trailers).

mod common;
mod grpc_echo;

use common::Gateway;
use common::h2::block_on;
use common::tls::Pki;
use grpc_echo::{EchoReply, EchoRequest, start_server};
use http::uri::PathAndQuery;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::{Code, Request};
use tonic_prost::ProstCodec;

/// A gateway with an h2c listener and a TLS listener (ALPN h2) routing everything to the gRPC
/// server at `grpc` over an `h2c` upstream.
fn gateway(pki: &Pki, grpc: std::net::SocketAddr) -> Gateway {
    let (crt, key) = pki.issue("grpc-gw", &["localhost"]);
    Gateway::start(&format!(
        "[server]\nshards = 2\npin_cpus = false\nwatch_config = false\n\n\
         [[listeners]]\nname = \"h2c\"\nbind = \"127.0.0.1:0\"\nh2c = true\n\n\
         [[listeners]]\nname = \"tls\"\nbind = \"127.0.0.1:0\"\n[listeners.tls]\nalpn = [\"h2\", \"http/1.1\"]\n\
         [[listeners.tls.certificates]]\ncert = {:?}\nkey = {:?}\n\n\
         [[upstreams]]\nname = \"grpc\"\nprotocol = \"h2c\"\nendpoints = [\"{grpc}\"]\n\n\
         [[routes]]\nprefix = \"/test.Echo/\"\nupstream = \"grpc\"\n",
        crt.display().to_string(),
        key.display().to_string(),
    ))
}

type Client = tonic::client::Grpc<Channel>;

async fn plain_client(addr: std::net::SocketAddr) -> Client {
    let channel =
        Endpoint::from_shared(format!("http://{addr}")).expect("uri").connect().await.expect("connect");
    tonic::client::Grpc::new(channel)
}

async fn tls_client(addr: std::net::SocketAddr, pki: &Pki) -> Client {
    let ca = std::fs::read(&pki.ca_pem).expect("read CA");
    let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca)).domain_name("localhost");
    let channel = Endpoint::from_shared(format!("https://{addr}"))
        .expect("uri")
        .tls_config(tls)
        .expect("tls config")
        .connect()
        .await
        .expect("connect over TLS");
    tonic::client::Grpc::new(channel)
}

fn codec() -> ProstCodec<EchoRequest, EchoReply> {
    ProstCodec::default()
}

fn req(message: &str, code: i32, count: u32) -> EchoRequest {
    EchoRequest { message: message.to_owned(), code, count }
}

async fn unary(
    c: &mut Client,
    msg: EchoRequest,
    meta: &str,
) -> Result<tonic::Response<EchoReply>, tonic::Status> {
    c.ready().await.expect("ready");
    let mut r = Request::new(msg);
    r.metadata_mut().insert("x-meta", meta.parse().expect("metadata"));
    c.unary(r, PathAndQuery::from_static("/test.Echo/Unary"), codec()).await
}

/// Server streaming: the replies received, then the final status.
async fn count(c: &mut Client, msg: EchoRequest) -> (Vec<EchoReply>, Result<(), tonic::Status>) {
    c.ready().await.expect("ready");
    let resp =
        c.server_streaming(Request::new(msg), PathAndQuery::from_static("/test.Echo/Count"), codec()).await;
    let mut stream = match resp {
        Ok(r) => r.into_inner(),
        Err(status) => return (Vec::new(), Err(status)),
    };
    let mut got = Vec::new();
    loop {
        match stream.message().await {
            Ok(Some(m)) => got.push(m),
            Ok(None) => return (got, Ok(())),
            Err(status) => return (got, Err(status)),
        }
    }
}

/// Every call kind on one client.
async fn exercise(c: &mut Client, via: &str) {
    // Unary: payload and metadata both ways.
    let resp = unary(c, req("hello", 0, 0), via).await.expect("unary call");
    assert_eq!(resp.metadata().get("x-served-by").map(|v| v.to_str().expect("ascii")), Some("tonic"));
    let reply = resp.into_inner();
    assert_eq!((reply.message.as_str(), reply.meta.as_str()), ("hello", via));

    // A non-OK status reaches the client with its exact code and message (in trailers).
    let status = unary(c, req("no widget 7", Code::NotFound as i32, 0), via).await.expect_err("NOT_FOUND");
    assert_eq!((status.code(), status.message()), (Code::NotFound, "no widget 7"));
    let status =
        unary(c, req("slow down", Code::ResourceExhausted as i32, 0), via).await.expect_err("status");
    assert_eq!((status.code(), status.message()), (Code::ResourceExhausted, "slow down"));

    // Server streaming: every reply, in order, then OK.
    let (got, end) = count(c, req("item", 0, 50)).await;
    end.expect("stream ends OK");
    let seqs: Vec<u32> = got.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, (0..50).collect::<Vec<_>>());
    assert_eq!(got[49].message, "item-49");
    // A stream that fails after some replies: the replies, then the status.
    let (got, end) = count(c, req("part", Code::Aborted as i32, 3)).await;
    assert_eq!(got.len(), 3);
    let status = end.expect_err("stream fails");
    assert_eq!((status.code(), status.message()), (Code::Aborted, "stream ended early"));

    // Client streaming: all messages reach the server, one reply comes back.
    c.ready().await.expect("ready");
    let msgs: Vec<EchoRequest> = ["a", "b", "c", "d", "e"].iter().map(|m| req(m, 0, 0)).collect();
    let resp = c
        .client_streaming(
            Request::new(tokio_stream::iter(msgs)),
            PathAndQuery::from_static("/test.Echo/Collect"),
            codec(),
        )
        .await
        .expect("client streaming call");
    assert_eq!(resp.into_inner().message, "a,b,c,d,e");

    // Bidirectional: each message is sent only after the reply to the previous one arrived, so
    // the gateway must relay both directions at once.
    let chat = tokio::time::timeout(std::time::Duration::from_secs(30), ping_pong(c, 5));
    assert_eq!(
        chat.await.expect("ping-pong finished in time"),
        (0..5).map(|i| format!("echo:m{i}")).collect::<Vec<_>>()
    );
}

/// Sends `n` messages on a `Chat` call, each after the previous reply; returns the replies.
async fn ping_pong(c: &mut Client, n: u32) -> Vec<String> {
    let (tx, rx) = tokio::sync::mpsc::channel::<EchoRequest>(1);
    let outbound = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) });
    tx.send(req("m0", 0, 0)).await.expect("first message");
    c.ready().await.expect("ready");
    let resp = c
        .streaming(Request::new(outbound), PathAndQuery::from_static("/test.Echo/Chat"), codec())
        .await
        .expect("bidirectional call");
    let mut inbound = resp.into_inner();
    let mut replies = Vec::new();
    for i in 1..=n {
        let reply = inbound.message().await.expect("reply").expect("a reply before the end");
        replies.push(reply.message);
        if i < n {
            tx.send(req(&format!("m{i}"), 0, 0)).await.expect("next message");
        }
    }
    drop(tx);
    assert!(inbound.message().await.expect("clean end").is_none(), "the call ends after the client does");
    replies
}

#[test]
fn grpc_calls_pass_through_h2c_and_tls_listeners_to_an_h2c_upstream() {
    let pki = Pki::new();
    let server = start_server();
    let gw = gateway(&pki, server);
    let (plain, tls) = (gw.listeners[0].1, gw.listeners[1].1);
    block_on(async {
        let mut c = plain_client(plain).await;
        exercise(&mut c, "h2c").await;
        let mut c = tls_client(tls, &pki).await;
        exercise(&mut c, "tls").await;
    });
}

#[test]
fn an_unknown_method_is_answered_by_the_server_and_an_unrouted_one_by_the_gateway() {
    let pki = Pki::new();
    let server = start_server();
    let gw = gateway(&pki, server);
    block_on(async {
        let mut c = plain_client(gw.listeners[0].1).await;
        c.ready().await.expect("ready");
        let status = c
            .unary(Request::new(req("x", 0, 0)), PathAndQuery::from_static("/test.Echo/Nope"), codec())
            .await
            .expect_err("unimplemented");
        assert_eq!(status.code(), Code::Unimplemented, "{status:?}");
        // No route: the gateway's own 404 JSON, which a gRPC client sees as a failed call.
        c.ready().await.expect("ready");
        let status = c
            .unary(Request::new(req("x", 0, 0)), PathAndQuery::from_static("/other.Svc/Call"), codec())
            .await
            .expect_err("no route");
        assert_ne!(status.code(), Code::Ok);
    });
}
