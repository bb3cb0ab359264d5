//! A TLS stream over any monoio stream: rustls does the protocol, this adapter moves the
//! ciphertext with owned-buffer io_uring reads and writes. The HTTP engine sees plain
//! `AsyncReadRent + AsyncWriteRent`, exactly like a `TcpStream`. Server side for the gateway's
//! listeners; client side (`connect`) for the benchmark load generator.
//!
//! Owns: the handshake and record I/O of one connection, and access to its negotiated
//! parameters (ALPN, SNI, client certificates). Must not: interpret the plaintext.
//!
//! Ciphertext read from the socket stays in this stream's own buffer until rustls takes it, so
//! application data that arrives with the client's last handshake flight is never lost. The
//! ciphertext and record buffers are borrowed from a per-thread pool for one read or one flush
//! and given back once rustls has taken every byte, so an idle connection holds none (rustls
//! keeps its own deframer buffer). A cancelled read or write (a timeout) leaves the stream
//! unusable except for closing it.

use std::cell::RefCell;
use std::io::{self, BufRead, Write};
use std::ops::DerefMut;
use std::sync::Arc;
use std::time::Instant;

use monoio::BufResult;
use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, ConnectionCommon, ServerConfig, ServerConnection, SideData};

use crate::io::{Park, ParkRead};
use crate::slice_io::{Dest, init_bytes, read_first_iovec, write_first_iovec};

/// Socket read size for ciphertext: one maximal TLS record plus its header and tag.
const CIPHERTEXT_READ: usize = 16 * 1024 + 256;
/// Most pooled buffers kept per thread (those in use at one moment, not one per connection),
/// and the largest one kept.
const MAX_POOLED: usize = 32;
const MAX_POOLED_CAPACITY: usize = 64 * 1024;

thread_local! {
    /// Ciphertext and record buffers lent to a connection for one read or one flush.
    static POOL: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

fn take_buf() -> Vec<u8> {
    POOL.with_borrow_mut(Vec::pop).unwrap_or_default()
}

fn give_buf(mut buf: Vec<u8>) {
    if buf.capacity() == 0 || buf.capacity() > MAX_POOLED_CAPACITY {
        return;
    }
    buf.clear();
    POOL.with_borrow_mut(|pool| {
        if pool.len() < MAX_POOLED {
            pool.push(buf);
        }
    });
}

/// What feeding rustls from the socket gave.
enum Fed {
    /// Ciphertext was processed (or is still buffered).
    More,
    /// The peer closed the TCP stream and every byte was handed to rustls.
    Closed,
    /// Nothing arrived before the park time; no buffer is held.
    Parked,
}

/// A TLS connection over `IO`: server side by default, client side with `C = ClientConnection`.
pub struct TlsStream<IO, C = ServerConnection> {
    io: IO,
    conn: C,
    /// Ciphertext read and not yet all taken by rustls (from the pool; empty when all taken).
    rbuf: Vec<u8>,
    rpos: usize,
    eof: bool,
    /// A write to the socket is in progress. HTTP/2 (through `monoio_compat`) polls a read and a
    /// write concurrently; records the read side wants to send (alerts, key-update answers) then
    /// wait for the writer instead of interleaving with it on the socket.
    writing: bool,
}

impl<IO: Park + AsyncWriteRent> TlsStream<IO> {
    /// Runs the server handshake on `io` (the caller bounds it with a timeout).
    pub async fn accept(io: IO, config: Arc<ServerConfig>) -> io::Result<TlsStream<IO>> {
        let conn = ServerConnection::new(config).map_err(io::Error::other)?;
        TlsStream::handshake(io, conn).await
    }
}

impl<IO: Park + AsyncWriteRent> TlsStream<IO, ClientConnection> {
    /// Runs the client handshake on `io` toward `name` (the caller bounds it with a timeout).
    pub async fn connect(
        io: IO,
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
    ) -> io::Result<TlsStream<IO, ClientConnection>> {
        let conn = ClientConnection::new(config, name).map_err(io::Error::other)?;
        TlsStream::handshake(io, conn).await
    }
}

impl<IO, C, D> TlsStream<IO, C>
where
    IO: Park + AsyncWriteRent,
    C: DerefMut<Target = ConnectionCommon<D>>,
    D: SideData,
{
    async fn handshake(io: IO, conn: C) -> io::Result<TlsStream<IO, C>> {
        let mut s = TlsStream { io, conn, rbuf: Vec::new(), rpos: 0, eof: false, writing: false };
        while s.conn.is_handshaking() {
            s.flush_tls().await?;
            if !s.conn.is_handshaking() {
                break;
            }
            if let Fed::Closed = s.read_tls(None).await? {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "peer closed during the TLS handshake",
                ));
            }
        }
        s.flush_tls().await?;
        Ok(s)
    }

    /// The rustls connection (negotiated ALPN, SNI, client certificates, resumption).
    pub fn connection(&self) -> &C {
        &self.conn
    }

    /// Hands rustls more ciphertext, reading the socket when none is buffered, and processes it.
    /// With `park_at`, a socket read that gets nothing by then is cancelled (`Parked`).
    async fn read_tls(&mut self, park_at: Option<Instant>) -> io::Result<Fed> {
        if self.rpos >= self.rbuf.len() && !self.eof {
            let mut buf = if self.rbuf.capacity() == 0 { take_buf() } else { std::mem::take(&mut self.rbuf) };
            buf.clear();
            buf.reserve(CIPHERTEXT_READ);
            let res = match park_at {
                None => {
                    let (res, b) = self.io.read(buf).await;
                    buf = b;
                    res
                }
                Some(at) => match self.io.read_or_park(buf, at).await {
                    (ParkRead::Read(res), b) => {
                        buf = b;
                        res
                    }
                    (ParkRead::Parked, b) => {
                        give_buf(b);
                        return Ok(Fed::Parked);
                    }
                },
            };
            self.rbuf = buf;
            self.rpos = 0;
            if res? == 0 {
                self.eof = true;
            }
        }
        let mut pending = &self.rbuf[self.rpos..];
        let before = pending.len();
        if before == 0 {
            // EOF: tell rustls (it then reports a close with or without close_notify).
            let _ = self.conn.read_tls(&mut io::empty());
        } else {
            self.conn.read_tls(&mut pending)?;
            self.rpos += before - pending.len();
        }
        if self.rpos >= self.rbuf.len() {
            // rustls took every byte: the buffer goes back to the pool.
            give_buf(std::mem::take(&mut self.rbuf));
            self.rpos = 0;
        }
        if let Err(e) = self.conn.process_new_packets() {
            // Send the alert rustls queued, then fail.
            if !self.writing {
                let _ = self.flush_tls().await;
            }
            return Err(io::Error::new(io::ErrorKind::InvalidData, e));
        }
        Ok(if !self.eof || self.rpos < self.rbuf.len() { Fed::More } else { Fed::Closed })
    }

    /// Writes every pending TLS record to the socket.
    async fn flush_tls(&mut self) -> io::Result<()> {
        self.writing = true;
        let res = self.flush_records().await;
        self.writing = false;
        res
    }

    async fn flush_records(&mut self) -> io::Result<()> {
        if !self.conn.wants_write() {
            return Ok(());
        }
        let mut buf = take_buf();
        while self.conn.wants_write() {
            buf.clear();
            if let Err(e) = self.conn.write_tls(&mut buf) {
                give_buf(buf);
                return Err(e);
            }
            let (res, b) = self.io.write_all(buf).await;
            buf = b;
            if let Err(e) = res {
                give_buf(buf);
                return Err(e);
            }
        }
        give_buf(buf);
        Ok(())
    }

    /// Copies decrypted bytes into `out`, reading the socket when rustls has none; `None` when
    /// parked (`park_at` passed with nothing read).
    async fn read_plain(
        &mut self,
        out: &mut Dest<'_>,
        park_at: Option<Instant>,
    ) -> io::Result<Option<usize>> {
        if out.room() == 0 {
            return Ok(Some(0));
        }
        loop {
            let mut reader = self.conn.reader();
            match reader.fill_buf() {
                Ok(chunk) => {
                    // An empty chunk is a clean close (close_notify).
                    let n = out.put(chunk);
                    reader.consume(n);
                    return Ok(Some(n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The peer closed without close_notify: for HTTP that is an ordinary close.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(Some(0)),
                Err(e) => return Err(e),
            }
            match self.read_tls(park_at).await? {
                Fed::More => {}
                Fed::Parked => return Ok(None),
                Fed::Closed => {
                    if self.conn.reader().fill_buf().is_err() {
                        return Ok(Some(0));
                    }
                }
            }
            // Post-handshake messages (key updates) may want an answer.
            if self.conn.wants_write() && !self.writing {
                self.flush_tls().await?;
            }
        }
    }

    async fn write_plain(&mut self, data: &[u8]) -> io::Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        self.flush_tls().await?;
        let n = self.conn.writer().write(data)?;
        self.flush_tls().await?;
        Ok(n)
    }
}

impl<IO, C, D> AsyncReadRent for TlsStream<IO, C>
where
    IO: Park + AsyncWriteRent,
    C: DerefMut<Target = ConnectionCommon<D>>,
    D: SideData,
{
    async fn read<T: IoBufMut>(&mut self, mut buf: T) -> BufResult<usize, T> {
        let res = self.read_plain(&mut Dest::new(&mut buf), None).await.map(Option::unwrap_or_default);
        (res, buf)
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        read_first_iovec(self, buf).await
    }
}

impl<IO, C, D> Park for TlsStream<IO, C>
where
    IO: Park + AsyncWriteRent,
    C: DerefMut<Target = ConnectionCommon<D>>,
    D: SideData,
{
    async fn read_or_park<T: IoBufMut>(&mut self, mut buf: T, park_at: Instant) -> (ParkRead, T) {
        let res = match self.read_plain(&mut Dest::new(&mut buf), Some(park_at)).await {
            Ok(Some(n)) => ParkRead::Read(Ok(n)),
            Ok(None) => ParkRead::Parked,
            Err(e) => ParkRead::Read(Err(e)),
        };
        (res, buf)
    }

    async fn readable(&mut self) -> io::Result<()> {
        // Buffered ciphertext or plaintext, or a seen end: a read would not wait.
        if self.rpos < self.rbuf.len()
            || self.eof
            || !matches!(self.conn.reader().fill_buf(), Err(ref e) if e.kind() == io::ErrorKind::WouldBlock)
        {
            return Ok(());
        }
        self.io.readable().await
    }
}

impl<IO, C, D> AsyncWriteRent for TlsStream<IO, C>
where
    IO: Park + AsyncWriteRent,
    C: DerefMut<Target = ConnectionCommon<D>>,
    D: SideData,
{
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        let res = self.write_plain(init_bytes(&buf)).await;
        (res, buf)
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        write_first_iovec(self, buf).await
    }

    async fn flush(&mut self) -> io::Result<()> {
        self.flush_tls().await?;
        self.io.flush().await
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        self.conn.send_close_notify();
        self.flush_tls().await?;
        self.io.shutdown().await
    }
}

#[cfg(test)]
mod tests {
    use monoio::net::{TcpListener, TcpStream};

    use super::*;

    /// A server config with a fresh self-signed `localhost` certificate and a client trusting it.
    fn configs() -> (Arc<ServerConfig>, Arc<ClientConfig>) {
        let key = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("cert");
        let cert = rustls::pki_types::CertificateDer::from(key.cert.der().to_vec());
        let pkcs8 = rustls::pki_types::PrivatePkcs8KeyDer::from(key.signing_key.serialize_der());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(vec![cert.clone()], pkcs8.into())
            .expect("server config");
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert).expect("root");
        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        (Arc::new(server), Arc::new(client))
    }

    #[test]
    fn client_side_talks_to_server_side_over_tcp() {
        let (server, client) = configs();
        let mut rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new().build().expect("runtime");
        rt.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
            let addr = listener.local_addr().expect("addr");
            let echo = monoio::spawn(async move {
                let (tcp, _) = listener.accept().await.expect("accept");
                let mut tls = TlsStream::accept(tcp, server).await.expect("server handshake");
                let (res, buf) = tls.read(Vec::with_capacity(64)).await;
                let n = res.expect("server read");
                let (res, _) = tls.write_all(buf[..n].to_ascii_uppercase()).await;
                res.expect("server write");
                tls.flush().await.expect("flush");
            });
            let tcp = TcpStream::connect(addr).await.expect("connect");
            let name = ServerName::try_from("localhost").expect("name");
            let mut tls = TlsStream::connect(tcp, client, name).await.expect("client handshake");
            assert!(!tls.connection().is_handshaking());
            let (res, _) = tls.write_all(b"ping".to_vec()).await;
            res.expect("client write");
            let (res, buf) = tls.read(Vec::with_capacity(64)).await;
            assert_eq!(&buf[..res.expect("client read")], b"PING");
            echo.await;
        });
    }
}
