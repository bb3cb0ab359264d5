//! Cleartext listeners with `h2c = true`: the first bytes decide between HTTP/2 with prior
//! knowledge (they are the HTTP/2 preface) and HTTP/1.1; the bytes already read are replayed to
//! whichever engine takes the connection.
//!
//! Owns: protocol detection on plain connections. Must not: serve either protocol itself.

use std::io;
use std::rc::Rc;

use bytes::BytesMut;
use monoio::BufResult;
use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut, RawBuf};
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use monoio::net::TcpStream;
use portcullis_core::pipeline::Filter;

use super::{PREFACE, serve_h2};
use crate::engine::client::ClientMeta;
use crate::h1::server::serve_conn_with;
use crate::io::read_more_by;
use crate::shard::state::ShardState;

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
        let n = self.pre.len().min(buf.bytes_total());
        // SAFETY: n <= bytes_total, so the copy stays inside the buffer's writable region,
        // which this call owns (the buffer was moved in); `pre` is a separate allocation, so
        // the regions do not overlap; after the copy the first n bytes are initialised, which
        // is what `set_init(n)` requires.
        unsafe {
            std::ptr::copy_nonoverlapping(self.pre.as_ptr(), buf.write_ptr(), n);
            buf.set_init(n);
        }
        let _ = self.pre.split_to(n);
        (Ok(n), buf)
    }

    async fn readv<T: IoVecBufMut>(&mut self, mut buf: T) -> BufResult<usize, T> {
        // SAFETY: the raw buffer describes `buf`'s first iovec; `buf` is owned by this call, so
        // that memory stays valid and untouched by anyone else until the read below completes.
        let res = match unsafe { RawBuf::new_from_iovec_mut(&mut buf) } {
            Some(raw) => self.read(raw).await.0,
            None => Ok(0),
        };
        if let Ok(n) = res {
            // SAFETY: the read wrote n bytes at the start of the first iovec (n <= its length),
            // so the first n bytes of `buf` are initialised.
            unsafe { buf.set_init(n) };
        }
        (res, buf)
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
