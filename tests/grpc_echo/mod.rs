//! A real gRPC service for the end-to-end tests: tonic's server over cleartext HTTP/2 (h2c) on a
//! tokio runtime in its own thread, with prost messages derived in Rust (no protoc, no build
//! script) and the service routing written out by hand as tonic's generated code would be.
//!
//! Service `test.Echo`: `Unary` echoes the message and the `x-meta` request metadata (or fails
//! with `code` and the message when `code` is not 0), `Count` streams `count` numbered replies
//! (then fails with `code` when it is not 0), `Collect` joins a client stream of messages, and
//! `Chat` answers each message of a client stream as it arrives (`echo:<message>`).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::Stream;
use tonic::body::Body;
use tonic::codegen::Service;
use tonic::server::{
    ClientStreamingService, Grpc, NamedService, ServerStreamingService, StreamingService, UnaryService,
};
use tonic::{Code, Request, Response, Status, Streaming};
use tonic_prost::ProstCodec;

/// The request message.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EchoRequest {
    /// Text to echo.
    #[prost(string, tag = "1")]
    pub message: String,
    /// A gRPC status code to fail with (0 = succeed).
    #[prost(int32, tag = "2")]
    pub code: i32,
    /// Replies to stream (`Count`).
    #[prost(uint32, tag = "3")]
    pub count: u32,
}

/// The reply message.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EchoReply {
    /// The echoed text.
    #[prost(string, tag = "1")]
    pub message: String,
    /// The `x-meta` metadata the server received.
    #[prost(string, tag = "2")]
    pub meta: String,
    /// Sequence number in a stream.
    #[prost(uint32, tag = "3")]
    pub seq: u32,
}

type Boxed<T> = Pin<Box<dyn Future<Output = Result<T, Status>> + Send>>;

struct Unary;

impl UnaryService<EchoRequest> for Unary {
    type Response = EchoReply;
    type Future = Boxed<Response<EchoReply>>;

    fn call(&mut self, req: Request<EchoRequest>) -> Self::Future {
        Box::pin(async move {
            let meta = req.metadata().get("x-meta").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
            let msg = req.into_inner();
            if msg.code != 0 {
                return Err(Status::new(Code::from(msg.code), msg.message));
            }
            let mut resp = Response::new(EchoReply { message: msg.message, meta, seq: 0 });
            resp.metadata_mut().insert("x-served-by", "tonic".parse().expect("metadata value"));
            Ok(resp)
        })
    }
}

struct Count;

type ReplyStream = tokio_stream::Iter<std::vec::IntoIter<Result<EchoReply, Status>>>;

impl ServerStreamingService<EchoRequest> for Count {
    type Response = EchoReply;
    type ResponseStream = ReplyStream;
    type Future = Boxed<Response<ReplyStream>>;

    fn call(&mut self, req: Request<EchoRequest>) -> Self::Future {
        Box::pin(async move {
            let msg = req.into_inner();
            let mut items: Vec<Result<EchoReply, Status>> = (0..msg.count)
                .map(|i| {
                    Ok(EchoReply { message: format!("{}-{i}", msg.message), meta: String::new(), seq: i })
                })
                .collect();
            if msg.code != 0 {
                items.push(Err(Status::new(Code::from(msg.code), "stream ended early")));
            }
            Ok(Response::new(tokio_stream::iter(items)))
        })
    }
}

struct Collect;

impl ClientStreamingService<EchoRequest> for Collect {
    type Response = EchoReply;
    type Future = Boxed<Response<EchoReply>>;

    fn call(&mut self, req: Request<Streaming<EchoRequest>>) -> Self::Future {
        Box::pin(async move {
            let mut stream = req.into_inner();
            let mut parts = Vec::new();
            while let Some(m) = stream.message().await? {
                parts.push(m.message);
            }
            Ok(Response::new(EchoReply {
                message: parts.join(","),
                meta: String::new(),
                seq: parts.len() as u32,
            }))
        })
    }
}

struct Chat;

type ChatStream = Pin<Box<dyn Stream<Item = Result<EchoReply, Status>> + Send>>;

impl StreamingService<EchoRequest> for Chat {
    type Response = EchoReply;
    type ResponseStream = ChatStream;
    type Future = Boxed<Response<ChatStream>>;

    fn call(&mut self, req: Request<Streaming<EchoRequest>>) -> Self::Future {
        let replies =
            futures_util::stream::unfold((req.into_inner(), 0u32), |(mut inbound, seq)| async move {
                match inbound.message().await {
                    Ok(Some(m)) => {
                        let reply =
                            EchoReply { message: format!("echo:{}", m.message), meta: String::new(), seq };
                        Some((Ok(reply), (inbound, seq + 1)))
                    }
                    Ok(None) => None,
                    Err(status) => Some((Err(status), (inbound, seq))),
                }
            });
        Box::pin(async move { Ok(Response::new(Box::pin(replies) as ChatStream)) })
    }
}

/// The `test.Echo` service: routes each method path to its handler.
#[derive(Clone)]
pub struct EchoServer;

impl NamedService for EchoServer {
    const NAME: &'static str = "test.Echo";
}

impl Service<http::Request<Body>> for EchoServer {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<http::Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        Box::pin(async move {
            let mut grpc = Grpc::new(ProstCodec::<EchoReply, EchoRequest>::default());
            Ok(match req.uri().path() {
                "/test.Echo/Unary" => grpc.unary(Unary, req).await,
                "/test.Echo/Count" => grpc.server_streaming(Count, req).await,
                "/test.Echo/Collect" => grpc.client_streaming(Collect, req).await,
                "/test.Echo/Chat" => grpc.streaming(Chat, req).await,
                _ => Status::unimplemented("no such method").into_http(),
            })
        })
    }
}

/// Starts the service on a free port (h2c); it runs as long as the test process.
pub fn start_server() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    listener.set_nonblocking(true).expect("nonblocking");
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
            tonic::transport::Server::builder()
                .add_service(EchoServer)
                .serve_with_incoming(incoming)
                .await
                .expect("gRPC server");
        });
    });
    addr
}
