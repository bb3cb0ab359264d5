//! The two-way byte tunnel of an upgraded HTTP/1.1 connection (WebSocket after `101 Switching
//! Protocols`): bytes read from one side are written to the other in the same owned buffer (no
//! copy in between), until either side closes or nothing moves for the idle timeout.
//!
//! Owns: relaying and the idle watchdog of one tunnel. Must not: parse what it relays (frames are
//! the endpoints' business) or decide when a connection may upgrade (that is `forward::h1`).

use std::cell::Cell;
use std::time::{Duration, Instant};

use monoio::BufResult;
use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent, Split, Splitable};

use crate::io::write_all;

/// Bytes moved per read.
const CHUNK: usize = 16 * 1024;

/// Lends a stream to a tunnel so it can be read and written at the same time.
struct Both<'a, T>(&'a mut T);

// SAFETY: `Both` forwards every read and write unchanged to `T`, and `T: Split` promises that
// its reads and writes may be in flight at once. The streams that reach a tunnel are TCP
// (monoio's own `Split`), the TLS adapter over TCP (`tls`) and `UpStream` (either of those).
unsafe impl<T: Split> Split for Both<'_, T> {}

impl<T: AsyncReadRent> AsyncReadRent for Both<'_, T> {
    async fn read<B: IoBufMut>(&mut self, buf: B) -> BufResult<usize, B> {
        self.0.read(buf).await
    }

    async fn readv<B: IoVecBufMut>(&mut self, buf: B) -> BufResult<usize, B> {
        self.0.readv(buf).await
    }
}

impl<T: AsyncWriteRent> AsyncWriteRent for Both<'_, T> {
    async fn write<B: IoBuf>(&mut self, buf: B) -> BufResult<usize, B> {
        self.0.write(buf).await
    }

    async fn writev<B: IoVecBuf>(&mut self, buf: B) -> BufResult<usize, B> {
        self.0.writev(buf).await
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush().await
    }

    async fn shutdown(&mut self) -> std::io::Result<()> {
        self.0.shutdown().await
    }
}

/// Copies `from` to `to` until `from` ends or a write fails; counts into `moved` and stamps
/// `last` on every chunk.
async fn pump<R: AsyncReadRent, W: AsyncWriteRent>(
    from: &mut R,
    to: &mut W,
    moved: &Cell<u64>,
    last: &Cell<Instant>,
    idle: Duration,
) {
    let mut buf = Vec::with_capacity(CHUNK);
    loop {
        buf.clear();
        let (res, b) = from.read(buf).await;
        match res {
            Ok(n) if n > 0 => {
                last.set(Instant::now());
                moved.set(moved.get() + n as u64);
                let (res, b) = write_all(to, b, idle).await;
                if res.is_err() {
                    return;
                }
                buf = b;
            }
            _ => return,
        }
    }
}

/// Resolves once nothing moved for `idle`.
async fn watchdog(last: &Cell<Instant>, idle: Duration) {
    loop {
        let left = (last.get() + idle).saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        monoio::time::sleep(left).await;
    }
}

/// Relays between `client` and `upstream` until either closes or nothing moves for `idle`.
/// Returns the bytes moved (client to upstream, upstream to client).
pub async fn relay<C, U>(client: &mut C, upstream: &mut U, idle: Duration) -> (u64, u64)
where
    C: AsyncReadRent + AsyncWriteRent + Split,
    U: AsyncReadRent + AsyncWriteRent + Split,
{
    let (up_bytes, down_bytes) = (Cell::new(0), Cell::new(0));
    let last = Cell::new(Instant::now());
    let (mut cr, mut cw) = Both(client).into_split();
    let (mut ur, mut uw) = Both(upstream).into_split();
    monoio::select! {
        () = pump(&mut cr, &mut uw, &up_bytes, &last, idle) => {}
        () = pump(&mut ur, &mut cw, &down_bytes, &last, idle) => {}
        () = watchdog(&last, idle) => {}
    }
    (up_bytes.get(), down_bytes.get())
}
