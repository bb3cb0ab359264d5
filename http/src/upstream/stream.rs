//! The byte stream of one upstream connection: plain TCP or TLS (the project's rustls adapter,
//! client side), behind one type so the pool and the engine handle both alike.
//!
//! Owns: dispatching reads and writes to the right transport (one branch per operation). Must
//! not: interpret bytes or hold connection policy (that is `pool` and `tls`).

use std::io;

use monoio::BufResult;
use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent, Split};
use monoio::net::TcpStream;
use rustls::ClientConnection;

use crate::tls::TlsStream;

/// An upstream connection's transport.
pub enum UpStream {
    /// Cleartext TCP.
    Plain(TcpStream),
    /// TLS over TCP (boxed: the rustls state is large and rarely used).
    Tls(Box<TlsStream<TcpStream, ClientConnection>>),
}

// SAFETY: both transports are `Split` (TCP by monoio, the TLS adapter over TCP in `tls`), and
// every method here only forwards to the variant, which nothing replaces while a read or write
// is in flight (the tunnel holds the stream borrowed for its whole run).
unsafe impl Split for UpStream {}

impl AsyncReadRent for UpStream {
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            UpStream::Plain(s) => s.read(buf).await,
            UpStream::Tls(s) => s.read(buf).await,
        }
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            UpStream::Plain(s) => s.readv(buf).await,
            UpStream::Tls(s) => s.readv(buf).await,
        }
    }
}

impl AsyncWriteRent for UpStream {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            UpStream::Plain(s) => s.write(buf).await,
            UpStream::Tls(s) => s.write(buf).await,
        }
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            UpStream::Plain(s) => s.writev(buf).await,
            UpStream::Tls(s) => s.writev(buf).await,
        }
    }

    async fn flush(&mut self) -> io::Result<()> {
        match self {
            UpStream::Plain(s) => s.flush().await,
            UpStream::Tls(s) => s.flush().await,
        }
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        match self {
            UpStream::Plain(s) => s.shutdown().await,
            UpStream::Tls(s) => s.shutdown().await,
        }
    }
}
