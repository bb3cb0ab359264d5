//! Shard-local spares: write buffers and header lists that connections borrow for the length of
//! one exchange, and read buffers that parked connections give back while they wait for their
//! next request (`io::read_parked`). An idle keep-alive connection then holds no buffer at all.
//!
//! Owns: the free lists (bounded). Must not: be shared across threads (it is `!Sync` by design).

use std::cell::RefCell;

use bytes::BytesMut;
use portcullis_core::pipeline::Headers;

/// Most spares kept per kind; more are freed.
const MAX_SPARES: usize = 1024;
/// Write buffers larger than this are not kept (a one-off large head should not pin memory).
const MAX_KEPT_WBUF: usize = 16 * 1024;
/// Initial capacity of a new write buffer.
const WBUF_CAPACITY: usize = 1024;
/// Most read buffers kept: enough for the connections that read at the same moment, not one per
/// parked connection (a burst of parking connections would otherwise pin 4 KiB each).
const MAX_SPARE_RBUFS: usize = 64;
/// Capacity of a client read buffer (grown only for large heads and bodies).
pub const RBUF_CAPACITY: usize = 4096;
/// Read buffers with less room than this are not kept (their allocation is still shared).
const MIN_KEPT_RBUF: usize = 1024;
/// Initial capacity of a new header list.
const HEADERS_CAPACITY: usize = 16;

/// Free lists of one shard.
#[derive(Debug, Default)]
pub struct Spares {
    wbufs: RefCell<Vec<Vec<u8>>>,
    rbufs: RefCell<Vec<BytesMut>>,
    headers: RefCell<Vec<Headers>>,
}

impl Spares {
    /// An empty write buffer, reused when one is free.
    pub fn wbuf(&self) -> Vec<u8> {
        self.wbufs.borrow_mut().pop().unwrap_or_else(|| Vec::with_capacity(WBUF_CAPACITY))
    }

    /// Returns a write buffer for reuse.
    pub fn give_wbuf(&self, mut buf: Vec<u8>) {
        let mut list = self.wbufs.borrow_mut();
        if buf.capacity() != 0 && buf.capacity() <= MAX_KEPT_WBUF && list.len() < MAX_SPARES {
            buf.clear();
            list.push(buf);
        }
    }

    /// An empty read buffer of about [`RBUF_CAPACITY`], reused when one is free.
    pub fn rbuf(&self) -> BytesMut {
        self.rbufs.borrow_mut().pop().unwrap_or_else(|| BytesMut::with_capacity(RBUF_CAPACITY))
    }

    /// Returns an empty read buffer for reuse (one that grew large or holds bytes is freed).
    pub fn give_rbuf(&self, buf: BytesMut) {
        let mut list = self.rbufs.borrow_mut();
        let cap = buf.capacity();
        if buf.is_empty() && (MIN_KEPT_RBUF..=RBUF_CAPACITY).contains(&cap) && list.len() < MAX_SPARE_RBUFS {
            list.push(buf);
        }
    }

    /// An empty header list, reused when one is free.
    pub fn headers(&self) -> Headers {
        self.headers.borrow_mut().pop().unwrap_or_else(|| Headers::with_capacity(HEADERS_CAPACITY))
    }

    /// Returns a header list for reuse.
    pub fn give_headers(&self, mut headers: Headers) {
        let mut list = self.headers.borrow_mut();
        if list.len() < MAX_SPARES {
            headers.clear();
            list.push(headers);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_cleared_and_bounded() {
        let spares = Spares::default();
        let mut w = spares.wbuf();
        w.extend_from_slice(b"hello");
        let ptr = w.as_ptr();
        spares.give_wbuf(w);
        let again = spares.wbuf();
        assert!(again.is_empty());
        assert_eq!(again.as_ptr(), ptr, "the same allocation comes back");
        spares.give_wbuf(Vec::with_capacity(MAX_KEPT_WBUF + 1));
        assert_eq!(spares.wbufs.borrow().len(), 0, "oversized buffers are freed");
        for _ in 0..MAX_SPARES + 10 {
            spares.give_headers(Headers::with_capacity(4));
        }
        assert_eq!(spares.headers.borrow().len(), MAX_SPARES);
    }

    #[test]
    fn read_buffers_come_back_only_when_empty_and_usual_sized() {
        let spares = Spares::default();
        let r = spares.rbuf();
        assert!(r.is_empty() && r.capacity() >= RBUF_CAPACITY);
        let ptr = r.as_ptr();
        spares.give_rbuf(r);
        assert_eq!(spares.rbuf().as_ptr(), ptr, "the same allocation comes back");
        let mut full = BytesMut::with_capacity(RBUF_CAPACITY);
        full.extend_from_slice(b"unread");
        spares.give_rbuf(full);
        spares.give_rbuf(BytesMut::with_capacity(4 * RBUF_CAPACITY));
        assert_eq!(spares.rbufs.borrow().len(), 0, "buffers with bytes or grown ones are freed");
    }
}
