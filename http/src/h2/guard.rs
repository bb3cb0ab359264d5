//! Flood and slow-header defences the HTTP/2 library leaves to the application: a byte-level
//! watcher on the client's side of the connection that follows frame boundaries, notes when a
//! client sends too many PING, SETTINGS or RST_STREAM frames per second or too many CONTINUATION
//! frames in one header block, and since when a header block (or a frame header) is incomplete.
//! It reports both to the connection through a `GuardSignal`, which closes the connection (with
//! GOAWAY first, RFC 9113 section 5.4.1).
//!
//! Owns: counting client control frames and timing incomplete header blocks. Must not: change,
//! buffer or reorder a byte it passes on (reads pass through unchanged until a flood, after
//! which nothing more is read; writes are not looked at).

use std::cell::Cell;
use std::future::poll_fn;
use std::io;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use monoio::BufResult;
use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent};

/// Limits the guard enforces.
#[derive(Clone, Copy, Debug)]
pub struct FloodLimits {
    /// PING frames (not acks) per second.
    pub pings: u32,
    /// SETTINGS frames (not acks) per second.
    pub settings: u32,
    /// RST_STREAM frames per second.
    pub resets: u32,
    /// CONTINUATION frames in one header block.
    pub continuations: u32,
}

const PREFACE_LEN: usize = 24;
const FRAME_HEADER: usize = 9;

/// Frame-boundary tracker and counters.
#[derive(Debug)]
pub struct FrameCounter {
    limits: FloodLimits,
    /// Bytes still to skip (the preface, then each frame's payload).
    skip: usize,
    header: [u8; FRAME_HEADER],
    have: usize,
    window_start: Instant,
    pings: u32,
    settings: u32,
    resets: u32,
    continuations: u32,
    /// Since when a frame header is partly received (only set when a read ends inside one).
    partial_since: Option<Instant>,
    /// Since when a header block (HEADERS, then CONTINUATION) has been open: from its first byte.
    block_since: Option<Instant>,
    /// The frame whose payload is being skipped ends its header block (END_HEADERS).
    ends_block: bool,
    /// After a flood verdict: how many bytes of the last observed read came before the
    /// flooding frame (0 when its header began in an earlier read).
    flood_at: usize,
}

impl FrameCounter {
    /// A counter for a connection whose first bytes are the client preface.
    pub fn new(limits: FloodLimits) -> FrameCounter {
        FrameCounter {
            limits,
            skip: PREFACE_LEN,
            header: [0; FRAME_HEADER],
            have: 0,
            window_start: Instant::now(),
            pings: 0,
            settings: 0,
            resets: 0,
            continuations: 0,
            partial_since: None,
            block_since: None,
            ends_block: false,
            flood_at: 0,
        }
    }

    /// After `observe` failed: how many bytes of that read came before the flooding frame.
    pub fn flood_at(&self) -> usize {
        self.flood_at
    }

    /// Since when the client has left a header block or a frame header incomplete, if it has.
    pub fn stalled_since(&self) -> Option<Instant> {
        match (self.partial_since, self.block_since) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Looks at the next bytes the client sent; `Err` names the flood.
    pub fn observe(&mut self, mut data: &[u8]) -> Result<(), &'static str> {
        let total = data.len();
        let mut header_at = 0;
        while !data.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(data.len());
                self.skip -= n;
                data = &data[n..];
                if self.skip == 0 {
                    self.payload_done();
                }
                continue;
            }
            if self.have == 0 {
                header_at = total - data.len();
            }
            let n = (FRAME_HEADER - self.have).min(data.len());
            self.header[self.have..self.have + n].copy_from_slice(&data[..n]);
            self.have += n;
            data = &data[n..];
            if self.have == FRAME_HEADER {
                self.have = 0;
                let h = self.header;
                self.skip = (usize::from(h[0]) << 16) | (usize::from(h[1]) << 8) | usize::from(h[2]);
                if let Err(what) = self.frame(h[3], h[4]) {
                    self.flood_at = header_at;
                    return Err(what);
                }
                if self.skip == 0 {
                    self.payload_done();
                }
            }
        }
        // A read that ends inside a frame header starts its clock (rare: frame headers
        // normally arrive whole), so a header trickled a byte at a time is timed too.
        if self.have > 0 && self.partial_since.is_none() {
            self.partial_since = Some(Instant::now());
        }
        Ok(())
    }

    /// The current frame's payload has been seen whole.
    fn payload_done(&mut self) {
        if self.ends_block {
            self.ends_block = false;
            self.block_since = None;
        }
    }

    fn frame(&mut self, kind: u8, flags: u8) -> Result<(), &'static str> {
        // One clock read per frame, shared by the rate window and the header-block timing.
        let now = Instant::now();
        let started = self.partial_since.take().unwrap_or(now);
        if now.duration_since(self.window_start) >= Duration::from_secs(1) {
            self.window_start = now;
            self.pings = 0;
            self.settings = 0;
            self.resets = 0;
        }
        const ACK: u8 = 0x1;
        const END_HEADERS: u8 = 0x4;
        if kind == 0x1 || kind == 0x9 {
            // A header block runs from its HEADERS frame's first byte to the end of the frame
            // carrying END_HEADERS.
            if kind == 0x1 {
                self.block_since = Some(started);
            }
            self.ends_block = flags & END_HEADERS != 0;
        }
        match kind {
            // HEADERS: a new header block.
            0x1 => self.continuations = 0,
            0x3 => {
                self.resets += 1;
                if self.resets > self.limits.resets {
                    return Err("RST_STREAM flood");
                }
            }
            0x4 if flags & ACK == 0 => {
                self.settings += 1;
                if self.settings > self.limits.settings {
                    return Err("SETTINGS flood");
                }
            }
            0x6 if flags & ACK == 0 => {
                self.pings += 1;
                if self.pings > self.limits.pings {
                    return Err("PING flood");
                }
            }
            0x9 => {
                self.continuations += 1;
                if self.continuations > self.limits.continuations {
                    return Err("CONTINUATION flood");
                }
                if flags & END_HEADERS != 0 {
                    self.continuations = 0;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// What the guard tells its connection: a flood verdict, and since when the client has left a
/// header block incomplete. Shared between the guarded stream (inside the HTTP/2 library) and
/// the connection's task.
#[derive(Default)]
pub struct GuardSignal {
    flood: Cell<Option<&'static str>>,
    stalled_since: Cell<Option<Instant>>,
    waker: Cell<Option<Waker>>,
}

impl GuardSignal {
    /// The flood the client committed, if any.
    pub fn flood(&self) -> Option<&'static str> {
        self.flood.get()
    }

    /// Since when a header block (or frame header) has been incomplete, if one is.
    pub fn stalled_since(&self) -> Option<Instant> {
        self.stalled_since.get()
    }

    /// Resolves once the client has flooded.
    pub async fn flooded(&self) -> &'static str {
        poll_fn(|cx| match self.flood.get() {
            Some(what) => Poll::Ready(what),
            None => {
                self.waker.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        })
        .await
    }

    fn set_flood(&self, what: &'static str) {
        self.flood.set(Some(what));
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }
}

/// A client stream with a `FrameCounter` on its read side.
pub struct Guarded<S> {
    inner: S,
    counter: FrameCounter,
    signal: Rc<GuardSignal>,
    /// A flood was seen: nothing more is read.
    flooded: bool,
}

impl<S> Guarded<S> {
    /// Wraps `inner`; the verdicts go to `signal`.
    pub fn new(inner: S, limits: FloodLimits, signal: Rc<GuardSignal>) -> Guarded<S> {
        Guarded { inner, counter: FrameCounter::new(limits), signal, flooded: false }
    }
}

impl<S: AsyncReadRent> AsyncReadRent for Guarded<S> {
    async fn read<T: IoBufMut>(&mut self, mut buf: T) -> BufResult<usize, T> {
        if self.flooded {
            // The connection's task is sending GOAWAY(ENHANCE_YOUR_CALM) and closing.
            return std::future::pending().await;
        }
        let start = buf.write_ptr() as usize;
        let (res, mut buf) = self.inner.read(buf).await;
        if let Ok(n) = res {
            // SAFETY: `IoBufMut` requires the buffer's storage to stay at one address while
            // the buffer moves (into the read and back), so `start` still points at it, and a
            // successful read initialised its first n bytes; `buf` is alive and not mutated
            // while `got` is used.
            let got = unsafe { std::slice::from_raw_parts(start as *const u8, n) };
            let verdict = self.counter.observe(got);
            self.signal.stalled_since.set(self.counter.stalled_since());
            if let Err(what) = verdict {
                // Only the frames before the flooding one go on (so the library has the
                // preface and can still send its GOAWAY); then nothing more is read.
                self.flooded = true;
                self.signal.set_flood(what);
                let before = self.counter.flood_at();
                if before == 0 {
                    return std::future::pending().await;
                }
                // SAFETY: `before` < n bytes at the write pointer are initialised.
                unsafe { buf.set_init(before) };
                return (Ok(before), buf);
            }
        }
        (res, buf)
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        // Vectored reads are not used by the HTTP/2 adapter; refuse rather than skip counting.
        (Err(io::Error::new(io::ErrorKind::Unsupported, "readv on a guarded stream")), buf)
    }
}

impl<S: AsyncWriteRent> AsyncWriteRent for Guarded<S> {
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

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: FloodLimits = FloodLimits { pings: 3, settings: 3, resets: 3, continuations: 2 };

    fn frame(kind: u8, flags: u8, payload: usize) -> Vec<u8> {
        let mut f = vec![(payload >> 16) as u8, (payload >> 8) as u8, payload as u8, kind, flags, 0, 0, 0, 1];
        f.resize(FRAME_HEADER + payload, 0xAB);
        f
    }

    fn preface() -> Vec<u8> {
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec()
    }

    #[test]
    fn pings_over_the_limit_are_a_flood_even_split_across_reads() {
        let mut c = FrameCounter::new(LIMITS);
        let mut bytes = preface();
        for _ in 0..3 {
            bytes.extend(frame(0x6, 0, 8));
            bytes.extend(frame(0x6, 1, 8)); // acks do not count
            bytes.extend(frame(0x0, 0, 100)); // data does not count
        }
        for piece in bytes.chunks(5) {
            c.observe(piece).expect("within the limit");
        }
        assert_eq!(c.observe(&frame(0x6, 0, 8)), Err("PING flood"));
    }

    #[test]
    fn settings_resets_and_continuations_are_counted() {
        let mut c = FrameCounter::new(LIMITS);
        c.observe(&preface()).expect("preface");
        for _ in 0..3 {
            c.observe(&frame(0x4, 0, 6)).expect("settings");
        }
        assert_eq!(c.observe(&frame(0x4, 0, 6)), Err("SETTINGS flood"));

        let mut c = FrameCounter::new(LIMITS);
        c.observe(&preface()).expect("preface");
        for _ in 0..3 {
            c.observe(&frame(0x3, 0, 4)).expect("reset");
        }
        assert_eq!(c.observe(&frame(0x3, 0, 4)), Err("RST_STREAM flood"));

        let mut c = FrameCounter::new(LIMITS);
        c.observe(&preface()).expect("preface");
        c.observe(&frame(0x1, 0, 10)).expect("headers");
        c.observe(&frame(0x9, 0, 10)).expect("1");
        c.observe(&frame(0x9, 4, 10)).expect("2, end of block");
        c.observe(&frame(0x1, 0, 10)).expect("next headers");
        c.observe(&frame(0x9, 0, 10)).expect("1");
        c.observe(&frame(0x9, 0, 10)).expect("2");
        assert_eq!(c.observe(&frame(0x9, 0, 10)), Err("CONTINUATION flood"));
    }

    #[test]
    fn a_flood_says_how_many_bytes_came_before_the_flooding_frame() {
        let mut c = FrameCounter::new(LIMITS);
        let mut bytes = preface();
        for _ in 0..4 {
            bytes.extend(frame(0x6, 0, 8));
        }
        assert_eq!(c.observe(&bytes), Err("PING flood"));
        assert_eq!(c.flood_at(), PREFACE_LEN + 3 * (FRAME_HEADER + 8), "the fourth PING starts there");
    }

    #[test]
    fn an_open_header_block_is_timed_until_its_end_headers_frame_is_whole() {
        let mut c = FrameCounter::new(LIMITS);
        c.observe(&preface()).expect("preface");
        assert_eq!(c.stalled_since(), None);
        let headers = frame(0x1, 0, 10); // no END_HEADERS
        c.observe(&headers[..4]).expect("part of a frame header");
        let since = c.stalled_since().expect("a partial frame header is timed");
        c.observe(&headers[4..]).expect("rest of HEADERS");
        assert_eq!(c.stalled_since(), Some(since), "the block is timed from its first byte");
        let cont = frame(0x9, 4, 10); // END_HEADERS
        c.observe(&cont[..12]).expect("part of CONTINUATION");
        assert_eq!(c.stalled_since(), Some(since), "not whole yet");
        c.observe(&cont[12..]).expect("rest");
        assert_eq!(c.stalled_since(), None, "block complete");
        c.observe(&frame(0x0, 0, 100)[..50]).expect("part of a DATA payload");
        assert_eq!(c.stalled_since(), None, "DATA payloads are not header blocks");
    }
}
