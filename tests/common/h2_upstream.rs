//! A real HTTP/2 (h2c, prior knowledge) upstream for the end-to-end tests: the h2 crate's server
//! on a tokio current-thread runtime in its own thread, counting connections and recording every
//! request (head, body, trailers); each response is decided by a handler and may carry trailers.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;

/// A request as the upstream received it.
#[derive(Clone, Debug)]
pub struct H2Req {
    /// Method.
    pub method: String,
    /// The whole URI (`scheme://authority/path?query`).
    pub uri: String,
    /// Header fields.
    pub headers: http::HeaderMap,
    /// The whole body.
    pub body: Vec<u8>,
    /// Trailers, when the client sent some.
    pub trailers: Option<http::HeaderMap>,
}

/// How the upstream answers.
#[derive(Clone, Debug, Default)]
pub struct H2Reply {
    /// Status code (0 = 200).
    pub status: u16,
    /// Extra header fields.
    pub headers: Vec<(&'static str, String)>,
    /// Body, sent in DATA frames.
    pub body: Vec<u8>,
    /// Trailers ending the stream (none = END_STREAM on the last DATA frame).
    pub trailers: Vec<(&'static str, String)>,
    /// Wait this long before answering.
    pub delay: Duration,
}

type Handler = dyn Fn(&H2Req) -> H2Reply + Send + Sync;

/// A running HTTP/2 upstream (its thread lives as long as the test process).
pub struct H2Upstream {
    /// Where it listens.
    pub addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<H2Req>>>,
}

impl H2Upstream {
    /// Serves with `SETTINGS_MAX_CONCURRENT_STREAMS = max_streams`, answering with `handler`.
    pub fn start(
        max_streams: u32,
        handler: impl Fn(&H2Req) -> H2Reply + Send + Sync + 'static,
    ) -> H2Upstream {
        H2Upstream::start_closing(max_streams, 0, handler)
    }

    /// Like `start`, but each connection is closed (TCP, no GOAWAY) once it has answered
    /// `close_after` streams (0 = never).
    pub fn start_closing(
        max_streams: u32,
        close_after: usize,
        handler: impl Fn(&H2Req) -> H2Reply + Send + Sync + 'static,
    ) -> H2Upstream {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = std_listener.local_addr().expect("addr");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let accepted = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let (acc, log) = (accepted.clone(), seen.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener).expect("listener");
                loop {
                    let Ok((tcp, _)) = listener.accept().await else { continue };
                    acc.fetch_add(1, Ordering::SeqCst);
                    let (handler, log) = (handler.clone(), log.clone());
                    tokio::spawn(async move {
                        let mut b = h2::server::Builder::new();
                        b.max_concurrent_streams(max_streams);
                        let Ok(mut conn) = b.handshake::<_, Bytes>(tcp).await else { return };
                        let mut served = 0;
                        while let Some(Ok((req, respond))) = conn.accept().await {
                            let (handler, log) = (handler.clone(), log.clone());
                            let task = tokio::spawn(serve(req, respond, handler, log));
                            served += 1;
                            if served == close_after {
                                let _ = task.await;
                                // Flush the answer, then drop the socket.
                                let flush = std::future::poll_fn(|cx| conn.poll_closed(cx));
                                let _ = tokio::time::timeout(Duration::from_millis(100), flush).await;
                                return;
                            }
                        }
                    });
                }
            });
        });
        H2Upstream { addr, accepted, seen }
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<H2Req> {
        self.seen.lock().expect("lock").clone()
    }

    /// The last request received.
    pub fn last(&self) -> H2Req {
        self.requests().pop().expect("the upstream saw a request")
    }
}

async fn serve(
    req: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
    handler: Arc<Handler>,
    log: Arc<Mutex<Vec<H2Req>>>,
) {
    let (parts, mut recv) = req.into_parts();
    let mut body = Vec::new();
    while let Some(Ok(chunk)) = recv.data().await {
        let _ = recv.flow_control().release_capacity(chunk.len());
        body.extend_from_slice(&chunk);
    }
    let trailers = recv.trailers().await.ok().flatten();
    let seen = H2Req {
        method: parts.method.to_string(),
        uri: parts.uri.to_string(),
        headers: parts.headers,
        body,
        trailers,
    };
    let reply = handler(&seen);
    log.lock().expect("lock").push(seen);
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut resp = http::Response::builder().status(if reply.status == 0 { 200 } else { reply.status });
    for (n, v) in &reply.headers {
        resp = resp.header(*n, v.as_str());
    }
    let end_on_head = reply.body.is_empty() && reply.trailers.is_empty();
    let Ok(mut send) = respond.send_response(resp.body(()).expect("response"), end_on_head) else { return };
    if end_on_head {
        return;
    }
    if !reply.body.is_empty() {
        let _ = send.send_data(Bytes::from(reply.body), reply.trailers.is_empty());
    }
    if !reply.trailers.is_empty() {
        let mut map = http::HeaderMap::new();
        for (n, v) in &reply.trailers {
            map.insert(*n, v.parse().expect("trailer value"));
        }
        let _ = send.send_trailers(map);
    }
}
