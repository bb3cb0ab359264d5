//! HTTP/2 clients for the end-to-end tests: the h2 crate's client on a tokio current-thread
//! runtime (cleartext prior knowledge) for ordinary requests, and a raw frame writer/reader for
//! the misbehaving clients the flood defences must stop.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bytes::Bytes;

/// A response as the h2 client saw it.
#[derive(Debug)]
pub struct H2Response {
    /// Status code.
    pub status: u16,
    /// Header fields.
    pub headers: http::HeaderMap,
    /// The whole body.
    pub body: Vec<u8>,
}

impl H2Response {
    /// The body parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }
}

/// Runs `f` on a fresh current-thread tokio runtime.
pub fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime").block_on(f)
}

/// Opens an h2c (prior knowledge) connection; the connection task runs on the runtime.
pub async fn connect(addr: SocketAddr) -> h2::client::SendRequest<Bytes> {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect h2c");
    let (client, conn) = h2::client::handshake(tcp).await.expect("h2 handshake");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

/// Sends one request and reads the whole response.
pub async fn send(
    client: &mut h2::client::SendRequest<Bytes>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> Result<H2Response, h2::Error> {
    let mut req = http::Request::builder().method(method).uri(format!("http://test{path}"));
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    let req = req.body(()).expect("request");
    let mut ready = client.clone().ready().await?;
    let (resp, mut send) = ready.send_request(req, body.is_none())?;
    if let Some(b) = body {
        // Respect flow control: send in pieces as capacity is granted.
        let mut data = Bytes::from(b);
        while !data.is_empty() {
            send.reserve_capacity(data.len());
            let n = std::future::poll_fn(|cx| send.poll_capacity(cx)).await.expect("capacity")?;
            let chunk = data.split_to(n.min(data.len()));
            send.send_data(chunk, data.is_empty())?;
        }
    }
    let resp = resp.await?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let mut recv = resp.into_body();
    let mut body = Vec::new();
    while let Some(chunk) = recv.data().await {
        let chunk = chunk?;
        let _ = recv.flow_control().release_capacity(chunk.len());
        body.extend_from_slice(&chunk);
    }
    Ok(H2Response { status, headers, body })
}

/// Frame types.
pub mod kind {
    /// DATA
    pub const DATA: u8 = 0x0;
    /// HEADERS
    pub const HEADERS: u8 = 0x1;
    /// RST_STREAM
    pub const RST_STREAM: u8 = 0x3;
    /// SETTINGS
    pub const SETTINGS: u8 = 0x4;
    /// PING
    pub const PING: u8 = 0x6;
    /// GOAWAY
    pub const GOAWAY: u8 = 0x7;
    /// CONTINUATION
    pub const CONTINUATION: u8 = 0x9;
}

/// One frame read from the server.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Type.
    pub kind: u8,
    /// Flags.
    pub flags: u8,
    /// Stream id.
    pub stream: u32,
    /// Payload.
    pub payload: Vec<u8>,
}

impl Frame {
    /// The error code of a RST_STREAM or GOAWAY frame.
    pub fn error_code(&self) -> u32 {
        let at = if self.kind == kind::GOAWAY { 4 } else { 0 };
        u32::from_be_bytes(self.payload[at..at + 4].try_into().expect("4 bytes"))
    }
}

/// Serialises one frame.
pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len();
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn hpack_int(out: &mut Vec<u8>, first: u8, prefix_bits: u8, mut v: usize) {
    let max = (1usize << prefix_bits) - 1;
    if v < max {
        out.push(first | v as u8);
        return;
    }
    out.push(first | max as u8);
    v -= max;
    while v >= 128 {
        out.push((v % 128) as u8 | 0x80);
        v /= 128;
    }
    out.push(v as u8);
}

/// An HPACK header block of literal fields (no indexing, no Huffman).
pub fn header_block(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (n, v) in fields {
        out.push(0x00);
        hpack_int(&mut out, 0, 7, n.len());
        out.extend_from_slice(n.as_bytes());
        hpack_int(&mut out, 0, 7, v.len());
        out.extend_from_slice(v.as_bytes());
    }
    out
}

/// The header block of a `GET path` request.
pub fn get_block(path: &str) -> Vec<u8> {
    header_block(&[(":method", "GET"), (":scheme", "http"), (":path", path), (":authority", "test")])
}

/// A raw HTTP/2 connection: the test writes exact frames.
pub struct RawH2 {
    sock: TcpStream,
}

impl RawH2 {
    /// Connects and sends the preface and an empty SETTINGS frame.
    pub fn connect(addr: SocketAddr) -> RawH2 {
        let sock = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).expect("connect");
        sock.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
        sock.set_nodelay(true).expect("nodelay");
        let mut raw = RawH2 { sock };
        let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        hello.extend(frame(kind::SETTINGS, 0, 0, &[]));
        raw.send(&hello).expect("send preface");
        raw
    }

    /// Writes bytes.
    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.sock.write_all(bytes)
    }

    /// Reads one frame (acknowledging the server's SETTINGS); `None` at EOF or reset.
    pub fn read_frame(&mut self) -> Option<Frame> {
        let mut h = [0u8; 9];
        self.sock.read_exact(&mut h).ok()?;
        let len = (usize::from(h[0]) << 16) | (usize::from(h[1]) << 8) | usize::from(h[2]);
        let mut payload = vec![0; len];
        self.sock.read_exact(&mut payload).ok()?;
        let f = Frame {
            kind: h[3],
            flags: h[4],
            stream: u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff,
            payload,
        };
        if f.kind == kind::SETTINGS && f.flags & 1 == 0 {
            let _ = self.send(&frame(kind::SETTINGS, 1, 0, &[]));
        }
        Some(f)
    }

    /// Reads frames until `pick` returns one or the connection ends; returns it.
    pub fn until(&mut self, mut pick: impl FnMut(&Frame) -> bool) -> Option<Frame> {
        while let Some(f) = self.read_frame() {
            if pick(&f) {
                return Some(f);
            }
        }
        None
    }

    /// Reads frames until the connection ends; returns them all.
    pub fn drain(&mut self) -> Vec<Frame> {
        let mut all = Vec::new();
        while let Some(f) = self.read_frame() {
            all.push(f);
        }
        all
    }
}
