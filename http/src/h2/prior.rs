//! Cleartext listeners with `h2c = true`: the first bytes decide between HTTP/2 with prior
//! knowledge (they are the HTTP/2 preface) and HTTP/1.1; the bytes already read are replayed to
//! whichever engine takes the connection.
//!
//! Owns: protocol detection on plain connections. Must not: serve either protocol itself.

use std::io;
use std::rc::Rc;

use bytes::BytesMut;
use monoio::BufResult;
use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use monoio::net::TcpStream;
use portcullis_core::pipeline::Filter;

use super::{PREFACE, serve_h2};
use crate::engine::client::ClientMeta;
use crate::h1::server::serve_conn_with;
use crate::io::read_more_by;
use crate::shard::state::ShardState;
use crate::slice_io::{Dest, read_first_iovec};

/// A stream that first returns bytes read earlier.
pub struct Prefixed<S> {
    pre: BytesMut,
    inner: S,
}

impl<S> Prefixed<S> {
    /// `inner`, whose reads first return `pre` (bytes already read from it to sniff the protocol).
    pub fn new(pre: BytesMut, inner: S) -> Prefixed<S> {
        Prefixed { pre, inner }
    }
}

impl<S: AsyncReadRent> AsyncReadRent for Prefixed<S> {
    async fn read<T: IoBufMut>(&mut self, mut buf: T) -> BufResult<usize, T> {
        if self.pre.is_empty() {
            return self.inner.read(buf).await;
        }
        let n = Dest::new(&mut buf).put(&self.pre);
        let _ = self.pre.split_to(n);
        (Ok(n), buf)
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        read_first_iovec(self, buf).await
    }
}

impl<S: AsyncWriteRent> AsyncWriteRent for Prefixed<S> {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        self.inner.write(buf).await
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        self.inner.writev(buf).await
    }

    async fn flush(&mut self) -> io::Result<()> {
        self.inner.flush().await
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        self.inner.shutdown().await
    }
}

/// Serves a connection on an `h2c` listener: HTTP/2 if it starts with the preface, else HTTP/1.1.
pub async fn serve_h2c_or_h1<F: Filter + 'static>(
    state: Rc<ShardState<F>>,
    mut stream: TcpStream,
    client: ClientMeta,
) {
    // One deadline from accept for the whole detection: a preface trickled a byte at a time
    // must not restart the wait with every read.
    let deadline = std::time::Instant::now() + state.current().config().http.header_timeout.0;
    let mut buf = BytesMut::with_capacity(4096);
    // Read until the bytes either are, or can no longer become, the preface.
    while buf.len() < PREFACE.len() && PREFACE.starts_with(&buf) {
        if read_more_by(&mut stream, &mut buf, 4096, deadline).await.is_err() {
            return;
        }
    }
    if buf.starts_with(PREFACE) {
        serve_h2(state, Prefixed { pre: buf, inner: stream }, client).await;
    } else {
        serve_conn_with(state, stream, client, buf).await;
    }
}
