//! Shard-local spares: write buffers and header lists that connections borrow for the length of
//! one exchange instead of holding them while idle. 10,000 idle keep-alive connections then
//! hold only their read buffer, not a write buffer and a header list each.
//!
//! Owns: the free lists (bounded). Must not: be shared across threads (it is `!Sync` by design).

use std::cell::RefCell;

use portcullis_core::pipeline::Headers;

/// Most spares kept per kind; more are freed.
const MAX_SPARES: usize = 1024;
/// Write buffers larger than this are not kept (a one-off large head should not pin memory).
const MAX_KEPT_WBUF: usize = 16 * 1024;
/// Initial capacity of a new write buffer.
const WBUF_CAPACITY: usize = 1024;
/// Initial capacity of a new header list.
const HEADERS_CAPACITY: usize = 16;

/// Free lists of one shard.
#[derive(Debug, Default)]
pub struct Spares {
    wbufs: RefCell<Vec<Vec<u8>>>,
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
}
