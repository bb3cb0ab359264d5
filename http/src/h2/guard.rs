//! Flood defences the HTTP/2 library leaves to the application: a byte-level watcher on the
//! client's side of the connection that follows frame boundaries and closes the connection when
//! a client sends too many PING, SETTINGS or RST_STREAM frames per second, or too many
//! CONTINUATION frames in one header block.
//!
//! Owns: counting client control frames. Must not: change, buffer or reorder any byte (reads
//! pass through unchanged; writes are not looked at).

use std::io;
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
        }
    }

    /// Looks at the next bytes the client sent; `Err` names the flood.
    pub fn observe(&mut self, mut data: &[u8]) -> Result<(), &'static str> {
        while !data.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(data.len());
                self.skip -= n;
                data = &data[n..];
                continue;
            }
            let n = (FRAME_HEADER - self.have).min(data.len());
            self.header[self.have..self.have + n].copy_from_slice(&data[..n]);
            self.have += n;
            data = &data[n..];
            if self.have == FRAME_HEADER {
                self.have = 0;
                let h = self.header;
                self.skip = (usize::from(h[0]) << 16) | (usize::from(h[1]) << 8) | usize::from(h[2]);
                self.frame(h[3], h[4])?;
            }
        }
        Ok(())
    }

    fn frame(&mut self, kind: u8, flags: u8) -> Result<(), &'static str> {
        if self.window_start.elapsed() >= Duration::from_secs(1) {
            self.window_start = Instant::now();
            self.pings = 0;
            self.settings = 0;
            self.resets = 0;
        }
        const ACK: u8 = 0x1;
        const END_HEADERS: u8 = 0x4;
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

/// A client stream with a `FrameCounter` on its read side.
pub struct Guarded<S> {
    inner: S,
    counter: FrameCounter,
}

impl<S> Guarded<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, limits: FloodLimits) -> Guarded<S> {
        Guarded { inner, counter: FrameCounter::new(limits) }
    }
}

/// The error a guarded read fails with when the client floods.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Flood(pub &'static str);

impl Flood {
    /// Whether an error message is a flood verdict of this guard.
    pub fn is_flood(message: &str) -> bool {
        ["PING flood", "SETTINGS flood", "RST_STREAM flood", "CONTINUATION flood"].contains(&message)
    }
}

fn flood(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, Flood(what))
}

impl<S: AsyncReadRent> AsyncReadRent for Guarded<S> {
    async fn read<T: IoBufMut>(&mut self, mut buf: T) -> BufResult<usize, T> {
        let start = buf.write_ptr() as usize;
        let (res, buf) = self.inner.read(buf).await;
        if let Ok(n) = res {
            // SAFETY: `IoBufMut` requires the buffer's storage to stay at one address while
            // the buffer moves (into the read and back), so `start` still points at it, and a
            // successful read initialised its first n bytes; `buf` is alive and not mutated
            // while `got` is used.
            let got = unsafe { std::slice::from_raw_parts(start as *const u8, n) };
            if let Err(what) = self.counter.observe(got) {
                return (Err(flood(what)), buf);
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
}
