//! A TLS stream over any monoio stream: rustls does the protocol, this adapter moves the
//! ciphertext with owned-buffer io_uring reads and writes. The HTTP engine sees plain
//! `AsyncReadRent + AsyncWriteRent`, exactly like a `TcpStream`. Server side for the gateway's
//! listeners; client side (`connect`) for the benchmark load generator.
//!
//! Owns: the handshake and record I/O of one connection, and access to its negotiated
//! parameters (ALPN, SNI, client certificates). Must not: interpret the plaintext.
//!
//! Ciphertext read from the socket stays in this stream's own buffer until rustls takes it, so
//! application data that arrives with the client's last handshake flight is never lost. A
//! cancelled read or write (a timeout) leaves the stream unusable except for closing it.

use std::io::{self, Read, Write};
use std::ops::DerefMut;
use std::sync::Arc;

use monoio::BufResult;
use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut, RawBuf};
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, ConnectionCommon, ServerConfig, ServerConnection, SideData};

/// Socket read size for ciphertext: one maximal TLS record plus its header and tag.
const CIPHERTEXT_READ: usize = 16 * 1024 + 256;

/// A TLS connection over `IO`: server side by default, client side with `C = ClientConnection`.
pub struct TlsStream<IO, C = ServerConnection> {
    io: IO,
    conn: C,
    rbuf: Vec<u8>,
    rpos: usize,
    wbuf: Vec<u8>,
    eof: bool,
    /// A write to the socket is in progress. HTTP/2 (through `monoio_compat`) polls a read and a
    /// write concurrently; records the read side wants to send (alerts, key-update answers) then
    /// wait for the writer instead of interleaving with it on the socket.
    writing: bool,
}

impl<IO: AsyncReadRent + AsyncWriteRent> TlsStream<IO> {
    /// Runs the server handshake on `io` (the caller bounds it with a timeout).
    pub async fn accept(io: IO, config: Arc<ServerConfig>) -> io::Result<TlsStream<IO>> {
        let conn = ServerConnection::new(config).map_err(io::Error::other)?;
        TlsStream::handshake(io, conn).await
    }
}

impl<IO: AsyncReadRent + AsyncWriteRent> TlsStream<IO, ClientConnection> {
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
    IO: AsyncReadRent + AsyncWriteRent,
    C: DerefMut<Target = ConnectionCommon<D>>,
    D: SideData,
{
    async fn handshake(io: IO, conn: C) -> io::Result<TlsStream<IO, C>> {
        let mut s =
            TlsStream { io, conn, rbuf: Vec::new(), rpos: 0, wbuf: Vec::new(), eof: false, writing: false };
        while s.conn.is_handshaking() {
            s.flush_tls().await?;
            if !s.conn.is_handshaking() {
                break;
            }
            if !s.read_tls().await? {
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
    /// Returns `false` once the peer has closed the TCP stream.
    async fn read_tls(&mut self) -> io::Result<bool> {
        if self.rpos >= self.rbuf.len() && !self.eof {
            let mut buf = std::mem::take(&mut self.rbuf);
            buf.clear();
            buf.reserve(CIPHERTEXT_READ);
            let (res, buf) = self.io.read(buf).await;
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
        if let Err(e) = self.conn.process_new_packets() {
            // Send the alert rustls queued, then fail.
            if !self.writing {
                let _ = self.flush_tls().await;
            }
            return Err(io::Error::new(io::ErrorKind::InvalidData, e));
        }
        Ok(!self.eof || self.rpos < self.rbuf.len())
    }

    /// Writes every pending TLS record to the socket.
    async fn flush_tls(&mut self) -> io::Result<()> {
        self.writing = true;
        let res = self.flush_records().await;
        self.writing = false;
        res
    }

    async fn flush_records(&mut self) -> io::Result<()> {
        while self.conn.wants_write() {
            let mut buf = std::mem::take(&mut self.wbuf);
            buf.clear();
            self.conn.write_tls(&mut buf)?;
            let (res, buf) = self.io.write_all(buf).await;
            self.wbuf = buf;
            res?;
        }
        Ok(())
    }

    async fn read_plain(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            match self.conn.reader().read(out) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The peer closed without close_notify: for HTTP that is an ordinary close.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            if !self.read_tls().await? && self.conn.reader().read(&mut []).is_err() {
                return Ok(0);
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
    IO: AsyncReadRent + AsyncWriteRent,
    C: DerefMut<Target = ConnectionCommon<D>>,
    D: SideData,
{
    async fn read<T: IoBufMut>(&mut self, mut buf: T) -> BufResult<usize, T> {
        // SAFETY: the pointer and length describe the buffer's writable region, which this call
        // owns until it returns; rustls only writes plaintext into it and never reads it. The
        // region may be uninitialised spare capacity (as in monoio-rustls); zeroing 16 KiB per
        // read would cost more than the decryption of a small request.
        let out = unsafe { std::slice::from_raw_parts_mut(buf.write_ptr(), buf.bytes_total()) };
        let res = self.read_plain(out).await;
        if let Ok(n) = res {
            // SAFETY: rustls initialised the first n bytes.
            unsafe { buf.set_init(n) };
        }
        (res, buf)
    }

    async fn readv<T: IoVecBufMut>(&mut self, mut buf: T) -> BufResult<usize, T> {
        // SAFETY: the raw buffer points into `buf`, which outlives the read.
        let res = match unsafe { RawBuf::new_from_iovec_mut(&mut buf) } {
            Some(raw) => self.read(raw).await.0,
            None => Ok(0),
        };
        if let Ok(n) = res {
            // SAFETY: n bytes were written into the first iovec.
            unsafe { buf.set_init(n) };
        }
        (res, buf)
    }
}

impl<IO, C, D> AsyncWriteRent for TlsStream<IO, C>
where
    IO: AsyncReadRent + AsyncWriteRent,
    C: DerefMut<Target = ConnectionCommon<D>>,
    D: SideData,
{
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        // SAFETY: the buffer's initialised bytes, owned by this call until it returns.
        let data = unsafe { std::slice::from_raw_parts(buf.read_ptr(), buf.bytes_init()) };
        let res = self.write_plain(data).await;
        (res, buf)
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        // SAFETY: the raw buffer points into `buf`, which outlives the write.
        let res = match unsafe { RawBuf::new_from_iovec(&buf) } {
            Some(raw) => self.write(raw).await.0,
            None => Ok(0),
        };
        (res, buf)
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
