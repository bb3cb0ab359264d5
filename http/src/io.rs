//! Owned-buffer I/O helpers over monoio streams, with deadlines, and parking: a connection
//! waiting for its next request gives its read buffer back to the shard's pool once it has been
//! quiet for [`PARK_AFTER`], waits for readability holding no buffer, and takes one again only
//! when bytes are there.
//!
//! Owns: reading more bytes into a growing `BytesMut`, the parked wait, and writing whole
//! buffers, each bounded by a timeout. Must not: interpret the bytes.

use std::cell::RefCell;
use std::future::{Future, poll_fn};
use std::io;
use std::pin::pin;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use monoio::buf::{IoBuf, IoBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, CancelableAsyncReadRent, Canceller};
use monoio::net::TcpStream;

use crate::spare::Spares;

/// An I/O failure with whether it was a timeout.
#[derive(Debug, thiserror::Error)]
pub enum IoFail {
    /// The deadline passed.
    #[error("timed out")]
    Timeout,
    /// The peer closed the connection.
    #[error("connection closed by peer")]
    Eof,
    /// An OS error.
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// How long a read waits for a request before the connection parks (gives its buffer back and
/// waits for readability instead). Parking costs a cancel and a poll: only a connection quiet
/// for this long pays it, so a busy connection's per-request path is the plain read.
pub const PARK_AFTER: Duration = Duration::from_millis(100);

/// What [`Park::read_or_park`] ended with.
#[derive(Debug)]
pub enum ParkRead {
    /// The read completed: bytes (`Ok(0)` at the end of the stream) or an error.
    Read(io::Result<usize>),
    /// Nothing arrived in time: the read was cancelled and the buffer comes back unfilled.
    Parked,
}

/// A client stream that can wait for its next bytes without holding a read buffer.
#[allow(async_fn_in_trait)]
pub trait Park: AsyncReadRent {
    /// Reads once into `buf` like `read`, unless nothing arrives by `park_at`: then the read is
    /// cancelled and `Parked` returns with `buf` unfilled (bytes that raced the cancel are kept
    /// and returned as a normal read).
    async fn read_or_park<T: IoBufMut>(&mut self, buf: T, park_at: Instant) -> (ParkRead, T);

    /// Waits until a read would not wait (bytes, end of stream or an error), holding no buffer.
    async fn readable(&mut self) -> io::Result<()>;
}

thread_local! {
    /// Cancellers reused across reads: one holds an `Rc` and a small set, so taking one from
    /// here keeps the per-read path free of allocations.
    static CANCELLERS: RefCell<Vec<Canceller>> = const { RefCell::new(Vec::new()) };
}

/// Most cancellers kept per thread.
const MAX_CANCELLERS: usize = 256;

fn give_canceller(c: Canceller) {
    CANCELLERS.with_borrow_mut(|list| {
        if list.len() < MAX_CANCELLERS {
            list.push(c);
        }
    });
}

impl Park for TcpStream {
    async fn read_or_park<T: IoBufMut>(&mut self, buf: T, park_at: Instant) -> (ParkRead, T) {
        let canceller = CANCELLERS.with_borrow_mut(Vec::pop).unwrap_or_default();
        let mut read = pin!(self.cancelable_read(buf, canceller.handle()));
        let mut park = pin!(monoio::time::sleep_until(monoio::time::Instant::from_std(park_at)));
        // The read is polled first: a completion that is already in wins over the timer.
        let first = poll_fn(|cx| match read.as_mut().poll(cx) {
            Poll::Ready(done) => Poll::Ready(Some(done)),
            Poll::Pending => park.as_mut().poll(cx).map(|()| None),
        })
        .await;
        match first {
            Some((res, buf)) => {
                give_canceller(canceller);
                (ParkRead::Read(res), buf)
            }
            None => {
                // The read still reports after the cancel: ECANCELED, or bytes that won the race.
                give_canceller(canceller.cancel());
                let (res, buf) = read.await;
                match res {
                    Err(e) if e.raw_os_error() == Some(libc::ECANCELED) => (ParkRead::Parked, buf),
                    res => (ParkRead::Read(res), buf),
                }
            }
        }
    }

    async fn readable(&mut self) -> io::Result<()> {
        TcpStream::readable(self, false).await
    }
}

/// Reads the first bytes of the next request into `buf` (which holds no unread bytes) by
/// `deadline`. A `buf` without capacity is taken from `spares`. If nothing arrives within
/// [`PARK_AFTER`], the buffer goes back to `spares` and `Ok(None)` says the connection is parked:
/// the caller then waits with [`wait_parked`], which holds no buffer and no timer of its own.
pub async fn read_or_park_by<S: Park>(
    stream: &mut S,
    buf: &mut BytesMut,
    min_spare: usize,
    deadline: Instant,
    spares: &Spares,
) -> Result<Option<usize>, IoFail> {
    let park_at = deadline.min(Instant::now() + PARK_AFTER);
    if buf.capacity() == 0 {
        *buf = spares.rbuf();
    }
    if buf.capacity() - buf.len() < min_spare {
        buf.reserve(min_spare);
    }
    let owned = std::mem::take(buf);
    let len = owned.len();
    let (res, slice) = stream.read_or_park(owned.slice_mut(len..), park_at).await;
    *buf = slice.into_inner();
    match res {
        ParkRead::Read(Ok(0)) => Err(IoFail::Eof),
        ParkRead::Read(Ok(n)) => Ok(Some(n)),
        ParkRead::Read(Err(e)) => Err(IoFail::Io(e)),
        ParkRead::Parked if park_at >= deadline => Err(IoFail::Timeout),
        ParkRead::Parked => {
            spares.give_rbuf(std::mem::take(buf));
            Ok(None)
        }
    }
}

/// Waits, holding no buffer, until `stream` is readable (`Ok`) or `deadline` passes
/// (`Timeout`). The deadline is kept by the thread's shared [`parked`] sweeper rather than a
/// runtime timer (one of those is 640 bytes), so the future is a readiness poll and a slot index.
pub async fn wait_parked<S: Park>(stream: &mut S, deadline: Instant) -> Result<(), IoFail> {
    let slot = parked::Slot::new(deadline);
    let mut ready = pin!(stream.readable());
    poll_fn(|cx| {
        if let Poll::Ready(res) = ready.as_mut().poll(cx) {
            return Poll::Ready(res.map_err(IoFail::Io));
        }
        if slot.expired(cx.waker()) {
            return Poll::Ready(Err(IoFail::Timeout));
        }
        Poll::Pending
    })
    .await
}

/// The deadlines of parked connections on this thread: a slot each (a deadline, a waker), and
/// one sweeper task that wakes expired ones every [`parked::TICK`] while any slot is in use.
/// A parked connection is closed at most one tick after its idle timeout, never before.
pub mod parked {
    use std::cell::RefCell;
    use std::task::Waker;
    use std::time::{Duration, Instant};

    /// How often the sweeper looks for expired deadlines.
    pub const TICK: Duration = Duration::from_millis(250);

    struct Entry {
        deadline: Instant,
        waker: Option<Waker>,
        expired: bool,
    }

    #[derive(Default)]
    struct Set {
        entries: Vec<Option<Entry>>,
        free: Vec<u32>,
        used: usize,
        sweeping: bool,
    }

    thread_local! {
        static SET: RefCell<Set> = RefCell::new(Set::default());
    }

    /// One parked connection's deadline; dropping it frees the slot.
    pub struct Slot(u32);

    impl Slot {
        /// Registers `deadline` (and starts the sweeper if none runs).
        pub fn new(deadline: Instant) -> Slot {
            let (index, start) = SET.with_borrow_mut(|set| {
                let entry = Some(Entry { deadline, waker: None, expired: false });
                let index = match set.free.pop() {
                    Some(i) => {
                        set.entries[i as usize] = entry;
                        i
                    }
                    None => {
                        set.entries.push(entry);
                        u32::try_from(set.entries.len() - 1).unwrap_or(u32::MAX)
                    }
                };
                set.used += 1;
                let start = !set.sweeping;
                set.sweeping = true;
                (index, start)
            });
            if start {
                monoio::spawn(sweep());
            }
            Slot(index)
        }

        /// Whether the deadline passed; otherwise remembers `waker` for the sweeper.
        pub fn expired(&self, waker: &Waker) -> bool {
            SET.with_borrow_mut(|set| match set.entries.get_mut(self.0 as usize) {
                Some(Some(e)) if e.expired => true,
                Some(Some(e)) => {
                    if !e.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
                        e.waker = Some(waker.clone());
                    }
                    false
                }
                _ => true,
            })
        }
    }

    impl Drop for Slot {
        fn drop(&mut self) {
            SET.with_borrow_mut(|set| {
                if let Some(e) = set.entries.get_mut(self.0 as usize)
                    && e.take().is_some()
                {
                    set.free.push(self.0);
                    set.used -= 1;
                }
            });
        }
    }

    /// Wakes the expired slots every tick; ends when no slot is in use.
    async fn sweep() {
        loop {
            monoio::time::sleep(TICK).await;
            let now = Instant::now();
            let mut woken = Vec::new();
            let more = SET.with_borrow_mut(|set| {
                for e in set.entries.iter_mut().flatten() {
                    if !e.expired && e.deadline <= now {
                        e.expired = true;
                        woken.extend(e.waker.take());
                    }
                }
                if set.used == 0 {
                    set.sweeping = false;
                    // Shrink after a burst of parked connections went away.
                    set.entries.clear();
                    set.entries.shrink_to(64);
                    set.free.clear();
                    set.free.shrink_to(64);
                }
                set.sweeping
            });
            // Woken outside the borrow: a woken task may be polled at once by some runtimes.
            woken.into_iter().for_each(Waker::wake);
            if !more {
                return;
            }
        }
    }
}

/// Reads once into the spare capacity of `buf` (reserving `min_spare` first), bounded by `limit`.
/// Returns the number of bytes read; `Eof` when the peer closed.
pub async fn read_more<S: AsyncReadRent>(
    stream: &mut S,
    buf: &mut BytesMut,
    min_spare: usize,
    limit: Duration,
) -> Result<usize, IoFail> {
    read_more_by(stream, buf, min_spare, Instant::now() + limit).await
}

/// Like [`read_more`], bounded by a `deadline` the caller already holds (one clock read less
/// than turning it back into a duration).
pub async fn read_more_by<S: AsyncReadRent>(
    stream: &mut S,
    buf: &mut BytesMut,
    min_spare: usize,
    deadline: Instant,
) -> Result<usize, IoFail> {
    if buf.capacity() - buf.len() < min_spare {
        buf.reserve(min_spare);
    }
    let owned = std::mem::take(buf);
    let len = owned.len();
    let fut = stream.read(owned.slice_mut(len..));
    match monoio::time::timeout_at(monoio::time::Instant::from_std(deadline), fut).await {
        Ok((res, slice)) => {
            *buf = slice.into_inner();
            match res {
                Ok(0) => Err(IoFail::Eof),
                Ok(n) => Ok(n),
                Err(e) => Err(IoFail::Io(e)),
            }
        }
        // The buffer went with the cancelled read; start over with a fresh one.
        Err(_) => {
            *buf = BytesMut::with_capacity(min_spare);
            Err(IoFail::Timeout)
        }
    }
}

/// Writes all of `data`, bounded by `limit`; returns the buffer for reuse (empty on failure
/// paths where it was lost to a cancelled write).
pub async fn write_all<S: AsyncWriteRent, B: IoBuf + Default + 'static>(
    stream: &mut S,
    data: B,
    limit: Duration,
) -> (Result<(), IoFail>, B) {
    match monoio::time::timeout(limit, stream.write_all(data)).await {
        Ok((Ok(_), b)) => (Ok(()), b),
        Ok((Err(e), b)) => (Err(IoFail::Io(e)), b),
        Err(_) => (Err(IoFail::Timeout), B::default()),
    }
}
