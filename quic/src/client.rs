//! Our own HTTP/3 client, on the same monoio runtime adapter: Debian's curl and h2load have no
//! HTTP/3, so the integration tests and the load generator use this one.
//!
//! Owns: client endpoints and one-request helpers. Must not: be used by the gateway's data plane.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use quinn::crypto::rustls::QuicClientConfig;

use crate::runtime::MonoioRuntime;

/// Why a client request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Socket or endpoint set-up failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// The TLS configuration cannot be used for QUIC.
    #[error("tls: {0}")]
    Tls(String),
    /// The QUIC connection could not be established.
    #[error("connect: {0}")]
    Connect(String),
    /// HTTP/3 failed on the connection or the stream.
    #[error("h3: {0}")]
    H3(String),
}

/// A response read whole.
#[derive(Debug)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Header fields.
    pub headers: http::HeaderMap,
    /// The body.
    pub body: Bytes,
    /// Trailers that ended the response, if any.
    pub trailers: Option<http::HeaderMap>,
}

/// One HTTP/3 connection to a server. Clones share the connection: each clone can have its own
/// request in flight (a load generator runs many streams per connection this way).
#[derive(Clone)]
pub struct H3Client {
    send: h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>,
    endpoint: quinn::Endpoint,
    conn: quinn::Connection,
}

impl std::fmt::Debug for H3Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H3Client").finish_non_exhaustive()
    }
}

impl H3Client {
    /// A client TLS configuration trusting `roots`, ALPN `h3`, with session resumption and
    /// early data enabled (reuse it across connections to resume and send 0-RTT).
    pub fn config(roots: rustls::RootCertStore) -> Result<Arc<quinn::ClientConfig>, ClientError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| ClientError::Tls(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        H3Client::config_from(tls)
    }

    /// A client configuration from any TLS 1.3 rustls configuration (its own verifier, for
    /// example); sets ALPN `h3` and enables early data.
    pub fn config_from(mut tls: rustls::ClientConfig) -> Result<Arc<quinn::ClientConfig>, ClientError> {
        tls.alpn_protocols = vec![b"h3".to_vec()];
        tls.enable_early_data = true;
        let quic = QuicClientConfig::try_from(tls).map_err(|e| ClientError::Tls(e.to_string()))?;
        Ok(Arc::new(quinn::ClientConfig::new(Arc::new(quic))))
    }

    /// Connects to `addr`, verifying the server as `server_name` against `roots`. Must run on a
    /// monoio runtime with timers enabled.
    pub async fn connect(
        addr: SocketAddr,
        server_name: &str,
        roots: rustls::RootCertStore,
    ) -> Result<H3Client, ClientError> {
        let (client, _) = H3Client::connect_with(addr, server_name, H3Client::config(roots)?, false).await?;
        Ok(client)
    }

    /// Connects with `config`. With `zero_rtt`, and a session ticket from an earlier connection
    /// made with the same `config`, requests go out as 0-RTT early data before the handshake
    /// completes; the second value then resolves to whether the server accepted the early data
    /// (`None`: no 0-RTT was attempted).
    pub async fn connect_with(
        addr: SocketAddr,
        server_name: &str,
        config: Arc<quinn::ClientConfig>,
        zero_rtt: bool,
    ) -> Result<(H3Client, Option<quinn::ZeroRttAccepted>), ClientError> {
        let bind: SocketAddr = if addr.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }
            .parse()
            .map_err(|_| ClientError::Tls("bind address".into()))?;
        let socket = std::net::UdpSocket::bind(bind)?;
        let mut endpoint = quinn::Endpoint::new(
            quinn::EndpointConfig::default(),
            None,
            socket,
            Arc::new(MonoioRuntime::default()),
        )?;
        endpoint.set_default_client_config((*config).clone());
        let connecting =
            endpoint.connect(addr, server_name).map_err(|e| ClientError::Connect(e.to_string()))?;
        let (conn, early) = if zero_rtt {
            match connecting.into_0rtt() {
                Ok((conn, accepted)) => (conn, Some(accepted)),
                Err(connecting) => (connecting.await.map_err(|e| ClientError::Connect(e.to_string()))?, None),
            }
        } else {
            (connecting.await.map_err(|e| ClientError::Connect(e.to_string()))?, None)
        };
        let (mut driver, send) = h3::client::new(h3_quinn::Connection::new(conn.clone()))
            .await
            .map_err(|e| ClientError::H3(e.to_string()))?;
        monoio::spawn(async move {
            let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
        });
        Ok((H3Client { send, endpoint, conn }, early))
    }

    /// Sends one request with `body` and reads the whole response.
    pub async fn request(&mut self, req: http::Request<()>, body: Bytes) -> Result<Response, ClientError> {
        let mut out = BytesMut::new();
        let (head, trailers) = self.exchange(req, body, |part| out.extend_from_slice(part)).await?;
        let (status, headers) = (head.status().as_u16(), head.headers().clone());
        Ok(Response { status, headers, body: out.freeze(), trailers })
    }

    /// Sends one bodiless request and reads the response through, keeping only its status and
    /// body size (the load generator's request: no copy of the body).
    pub async fn fetch(&mut self, req: http::Request<()>) -> Result<(u16, u64), ClientError> {
        let mut len = 0u64;
        let (head, _) = self.exchange(req, Bytes::new(), |part| len += part.len() as u64).await?;
        Ok((head.status().as_u16(), len))
    }

    /// One request: sends `body`, hands every received body piece to `sink`, returns the head
    /// and the trailers.
    async fn exchange(
        &mut self,
        req: http::Request<()>,
        body: Bytes,
        mut sink: impl FnMut(&[u8]),
    ) -> Result<(http::Response<()>, Option<http::HeaderMap>), ClientError> {
        let h3 = |e: h3::error::StreamError| ClientError::H3(e.to_string());
        let mut stream = self.send.send_request(req).await.map_err(h3)?;
        if !body.is_empty() {
            stream.send_data(body).await.map_err(h3)?;
        }
        stream.finish().await.map_err(h3)?;
        let resp = stream.recv_response().await.map_err(h3)?;
        while let Some(mut chunk) = stream.recv_data().await.map_err(h3)? {
            while chunk.has_remaining() {
                let part = chunk.chunk();
                sink(part);
                let n = part.len();
                chunk.advance(n);
            }
        }
        let trailers = stream.recv_trailers().await.map_err(h3)?;
        Ok((resp, trailers))
    }

    /// The QUIC connection under the client (to open raw streams, as a misbehaving client would).
    pub fn quic(&self) -> &quinn::Connection {
        &self.conn
    }

    /// Whether the QUIC connection has closed (for any reason); requests on it then fail.
    pub fn is_closed(&self) -> bool {
        self.conn.close_reason().is_some()
    }

    /// Moves the client to a new local UDP socket (a new source port), as NAT rebinding or a
    /// network change would; the connection migrates.
    pub fn rebind(&self) -> Result<(), ClientError> {
        let local = self.endpoint.local_addr()?;
        let bind = SocketAddr::new(local.ip(), 0);
        self.endpoint.rebind(std::net::UdpSocket::bind(bind)?)?;
        Ok(())
    }

    /// The local address the client sends from.
    pub fn local_addr(&self) -> Result<SocketAddr, ClientError> {
        Ok(self.endpoint.local_addr()?)
    }

    /// Closes the connection and waits for the peer to acknowledge (bounded by quinn's idle
    /// timeout).
    pub async fn close(self) {
        self.endpoint.close(0u32.into(), b"done");
        self.endpoint.wait_idle().await;
    }
}
