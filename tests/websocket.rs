//! WebSockets over HTTP/1.1 against the real binary: a real tokio-tungstenite client and server
//! (in the test process) talk through the gateway. The upgrade is routed and runs through the
//! chain like any request, text and binary frames are echoed both ways, an idle tunnel is
//! closed after `websocket_idle_timeout`, and a config reload does not cut an open tunnel. Over a
//! TLS listener (rcgen certificates), a blocking tungstenite client speaks `wss://` to the same
//! plain upstream.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Gateway, LONG, config};
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::{WebSocketStream, client_async};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime")
}

/// The header fields of each handshake the server saw.
type Handshakes = Arc<Mutex<Vec<Vec<(String, String)>>>>;

/// A WebSocket echo server on its own thread; records the handshake headers it saw.
struct EchoServer {
    addr: SocketAddr,
    handshakes: Handshakes,
}

impl EchoServer {
    fn start() -> EchoServer {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let addr = std_listener.local_addr().expect("addr");
        let handshakes = Arc::new(Mutex::new(Vec::new()));
        let seen = handshakes.clone();
        std::thread::spawn(move || {
            runtime().block_on(async move {
                let listener = TcpListener::from_std(std_listener).expect("tokio listener");
                while let Ok((sock, _)) = listener.accept().await {
                    let seen = seen.clone();
                    tokio::spawn(async move {
                        #[allow(clippy::result_large_err)] // tungstenite's callback signature
                        let record = |req: &Request, resp: Response| {
                            let headers = req
                                .headers()
                                .iter()
                                .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or_default().to_owned()))
                                .collect();
                            seen.lock().expect("lock").push(headers);
                            Ok(resp)
                        };
                        let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(sock, record).await else {
                            return;
                        };
                        while let Some(Ok(msg)) = ws.next().await {
                            let echo = match msg {
                                Message::Text(t) => Message::Text(format!("echo:{t}").into()),
                                Message::Binary(b) => Message::Binary(b.iter().rev().copied().collect()),
                                Message::Close(_) => break,
                                _ => continue,
                            };
                            if ws.send(echo).await.is_err() {
                                break;
                            }
                        }
                    });
                }
            });
        });
        EchoServer { addr, handshakes }
    }
}

fn gateway_toml(up: SocketAddr, http: &str) -> String {
    config(http, &ws_upstream(up))
}

/// The `ws` upstream and its `/ws` route.
fn ws_upstream(up: SocketAddr) -> String {
    format!(
        "[[upstreams]]\nname = \"ws\"\nendpoints = [\"{up}\"]\n\n\
         [[routes]]\nprefix = \"/ws\"\nupstream = \"ws\"\n"
    )
}

type Ws = WebSocketStream<TcpStream>;

async fn connect(gw: SocketAddr, path: &str) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    let sock = TcpStream::connect(gw).await.expect("connect to the gateway");
    let (ws, resp) = client_async(format!("ws://{gw}{path}"), sock).await?;
    assert_eq!(resp.status(), 101);
    Ok(ws)
}

async fn echo(ws: &mut Ws, msg: Message) -> Message {
    ws.send(msg).await.expect("send");
    tokio::time::timeout(LONG, ws.next()).await.expect("echo in time").expect("a message").expect("ok")
}

#[test]
fn text_and_binary_frames_are_echoed_through_the_gateway_and_the_upgrade_is_routed() {
    let up = EchoServer::start();
    let gw = Gateway::start(&gateway_toml(up.addr, ""));
    runtime().block_on(async {
        let mut ws = connect(gw.addr, "/ws/chat").await.expect("handshake through the gateway");
        assert_eq!(echo(&mut ws, Message::text("hello")).await, Message::text("echo:hello"));
        let big: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let want: Vec<u8> = big.iter().rev().copied().collect();
        assert_eq!(echo(&mut ws, Message::binary(big)).await, Message::binary(want));
        for i in 0..20 {
            assert_eq!(
                echo(&mut ws, Message::text(format!("m{i}"))).await,
                Message::text(format!("echo:m{i}"))
            );
        }
        ws.close(None).await.expect("close");
        // A path no route matches is answered by the gateway, not upgraded.
        let Err(err) = connect(gw.addr, "/nowhere").await else { panic!("no upgrade without a route") };
        match err {
            tokio_tungstenite::tungstenite::Error::Http(resp) => assert_eq!(resp.status(), 404),
            other => panic!("expected an HTTP 404, got {other:?}"),
        }
    });
    // The chain ran on the handshake (request id added), and the upgrade headers were forwarded.
    let hs = up.handshakes.lock().expect("lock").clone();
    assert_eq!(hs.len(), 1, "{hs:?}");
    let get = |n: &str| hs[0].iter().find(|(k, _)| k.eq_ignore_ascii_case(n)).map(|(_, v)| v.clone());
    assert!(get("x-request-id").is_some_and(|v| !v.is_empty()), "{hs:?}");
    assert_eq!(get("upgrade").as_deref(), Some("websocket"));
    assert!(get("sec-websocket-key").is_some(), "{hs:?}");
}

#[test]
fn an_idle_tunnel_is_closed_after_the_idle_timeout() {
    let up = EchoServer::start();
    let gw = Gateway::start(&gateway_toml(up.addr, "websocket_idle_timeout = \"1s\""));
    runtime().block_on(async {
        let mut ws = connect(gw.addr, "/ws").await.expect("handshake");
        assert_eq!(echo(&mut ws, Message::text("a")).await, Message::text("echo:a"));
        let started = std::time::Instant::now();
        // Nothing is sent: the gateway closes the tunnel (the stream ends or errors).
        let next = tokio::time::timeout(LONG, ws.next()).await.expect("the gateway closes an idle tunnel");
        assert!(!matches!(next, Some(Ok(Message::Text(_)))), "{next:?}");
        assert!(started.elapsed() >= Duration::from_millis(900), "closed before the idle timeout");
    });
}

#[test]
fn an_open_tunnel_survives_a_config_reload() {
    let up = EchoServer::start();
    let gw = Gateway::start(&gateway_toml(up.addr, ""));
    runtime().block_on(async {
        let mut ws = connect(gw.addr, "/ws").await.expect("handshake");
        assert_eq!(echo(&mut ws, Message::text("before")).await, Message::text("echo:before"));
        gw.reload(&gateway_toml(up.addr, "websocket_idle_timeout = \"30s\""), 2);
        assert_eq!(echo(&mut ws, Message::text("after")).await, Message::text("echo:after"));
        // New handshakes work on the new generation too.
        let mut ws2 = connect(gw.addr, "/ws").await.expect("handshake after reload");
        assert_eq!(echo(&mut ws2, Message::text("new")).await, Message::text("echo:new"));
    });
}

#[test]
fn frames_are_echoed_through_a_tls_listener() {
    let up = EchoServer::start();
    let pki = common::tls::Pki::new();
    let (crt, key) = pki.issue("server", &["localhost"]);
    let toml = format!(
        "[server]\nshards = 1\npin_cpus = false\nwatch_config = false\n\n\
         [[listeners]]\nname = \"tls\"\nbind = \"127.0.0.1:0\"\n[listeners.tls]\n\
         [[listeners.tls.certificates]]\ncert = {:?}\nkey = {:?}\n\n{}",
        crt.display().to_string(),
        key.display().to_string(),
        ws_upstream(up.addr)
    );
    let gw = Gateway::start(&toml);
    let tls_cfg = std::sync::Arc::new(pki.client_config(&["http/1.1"]));
    let stream = common::tls::tls_stream(gw.addr, "localhost", &tls_cfg).expect("TLS handshake");
    assert_eq!(stream.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
    let (mut ws, resp) =
        tokio_tungstenite::tungstenite::client("wss://localhost/ws/tls", stream).expect("wss handshake");
    assert_eq!(resp.status(), 101);
    let mut echo = |msg: Message| {
        ws.send(msg).expect("send");
        loop {
            match ws.read().expect("read") {
                m @ (Message::Text(_) | Message::Binary(_)) => return m,
                _ => continue,
            }
        }
    };
    assert_eq!(echo(Message::text("over tls")), Message::text("echo:over tls"));
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
    let want: Vec<u8> = big.iter().rev().copied().collect();
    assert_eq!(echo(Message::binary(big)), Message::binary(want));
    for i in 0..10 {
        assert_eq!(echo(Message::text(format!("t{i}"))), Message::text(format!("echo:t{i}")));
    }
    ws.close(None).expect("close");
    // The upstream saw a plain WebSocket upgrade that the gateway forwarded from the TLS side.
    let hs = up.handshakes.lock().expect("lock").clone();
    assert_eq!(hs.len(), 1, "{hs:?}");
    let proto =
        hs[0].iter().find(|(k, _)| k.eq_ignore_ascii_case("x-forwarded-proto")).map(|(_, v)| v.as_str());
    assert_eq!(proto, Some("https"), "{hs:?}");
}
