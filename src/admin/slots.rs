//! The admin API's connection table: at most a fixed number of connections at once, and when
//! it is full a new connection takes the place of the one that has been waiting on its client
//! the longest while reading its request (its socket is shut down). Legitimate admin clients and
//! health probes send their request in one packet, so only a slow (trickling or idle) client is
//! ever that one: clients that hold connections open cannot lock probes out. A connection with
//! a whole request head waiting unread (its thread has not run yet) is not cut, nor one past its reading phase
//! (a handler running, a response being written); when no connection can be cut, the new one is
//! refused.
//!
//! Owns: admission, eviction and release of admin connections. Must not: read or write requests
//! (that is `http`).

use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

struct Entry {
    id: u64,
    since: Instant,
    reading: bool,
    /// A second handle on the connection's socket, to cut it.
    stream: TcpStream,
}

#[derive(Default)]
struct Table {
    next_id: u64,
    live: Vec<Entry>,
}

/// The table of admin connections.
pub struct Slots {
    cap: usize,
    table: Mutex<Table>,
}

/// One admitted connection; releases its slot when dropped.
pub struct Slot {
    slots: Arc<Slots>,
    id: u64,
}

/// What admission did.
pub enum Admission {
    /// A free slot was taken.
    Admitted(Slot),
    /// The slowest reader was cut to make room.
    Evicted(Slot),
    /// Every slot is busy serving a request: the new connection is refused.
    Full,
}

impl Slots {
    /// A table of `cap` slots.
    pub fn new(cap: usize) -> Arc<Slots> {
        Arc::new(Slots { cap, table: Mutex::new(Table::default()) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Admits `stream`, cutting the oldest connection still reading its request if the table
    /// is full.
    pub fn admit(self: &Arc<Self>, stream: &TcpStream) -> Admission {
        let Ok(handle) = stream.try_clone() else { return Admission::Full };
        let mut t = self.lock();
        let mut evicted = false;
        if t.live.len() >= self.cap {
            // A whole request head already waiting unread means the connection's thread has
            // simply not run yet (a probe just accepted on a busy machine): it is not cut. A
            // trickling client's waiting bytes never make a whole head, so it stays cuttable
            // even when its thread is slow to read them.
            let oldest = t
                .live
                .iter()
                .enumerate()
                .filter(|(_, e)| e.reading && !has_waiting_head(&e.stream))
                .min_by_key(|(_, e)| e.since)
                .map(|(i, _)| i);
            let Some(i) = oldest else { return Admission::Full };
            let victim = t.live.swap_remove(i);
            let _ = victim.stream.shutdown(Shutdown::Both);
            evicted = true;
        }
        let id = t.next_id;
        t.next_id += 1;
        t.live.push(Entry { id, since: Instant::now(), reading: true, stream: handle });
        let slot = Slot { slots: self.clone(), id };
        if evicted { Admission::Evicted(slot) } else { Admission::Admitted(slot) }
    }

    /// Connections in the table.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().live.len()
    }
}

/// Whether bytes from the client wait unread on `stream` (a non-blocking peek, which leaves the
/// socket's own blocking mode alone).
fn has_waiting_head(stream: &TcpStream) -> bool {
    use std::os::fd::AsRawFd;
    let mut buf = [0u8; 4096];
    // SAFETY: `stream` owns an open socket for the duration of the call, and `buf` is valid and
    // writable for its whole length.
    let n = unsafe {
        libc::recv(
            stream.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    usize::try_from(n).is_ok_and(|n| buf[..n].windows(4).any(|w| w == b"\r\n\r\n"))
}

impl Slot {
    /// The request has been read: from now on this connection is never cut for a newcomer.
    pub fn request_read(&self) {
        if let Some(e) = self.slots.lock().live.iter_mut().find(|e| e.id == self.id) {
            e.reading = false;
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut t = self.slots.lock();
        if let Some(i) = t.live.iter().position(|e| e.id == self.id) {
            t.live.swap_remove(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::net::TcpListener;

    use super::*;

    fn pair(l: &TcpListener) -> (TcpStream, TcpStream) {
        let client = TcpStream::connect(l.local_addr().expect("addr")).expect("connect");
        let (server, _) = l.accept().expect("accept");
        (client, server)
    }

    #[test]
    fn a_full_table_cuts_the_oldest_waiting_reader_and_never_a_busy_connection() {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let slots = Slots::new(2);
        let (mut c1, s1) = pair(&l);
        let (mut c2, s2) = pair(&l);
        let (_c3, s3) = pair(&l);
        let Admission::Admitted(a1) = slots.admit(&s1) else { panic!("free slot") };
        let Admission::Admitted(a2) = slots.admit(&s2) else { panic!("free slot") };
        // The oldest has its request waiting unread (its thread has not run yet): it is kept.
        std::io::Write::write_all(&mut c1, b"GET /healthz HTTP/1.1\r\n\r\n").expect("write");
        let until = Instant::now() + std::time::Duration::from_secs(10);
        while !has_waiting_head(&s1) {
            assert!(Instant::now() < until, "the bytes arrive");
            std::thread::yield_now();
        }
        // The other trickles: its byte waiting unread makes no whole head, so it stays cuttable.
        std::io::Write::write_all(&mut c2, b"G").expect("write");
        let Admission::Evicted(a3) = slots.admit(&s3) else { panic!("a waiting reader is cut") };
        let mut buf = [0u8; 1];
        assert_eq!(c2.read(&mut buf).expect("eof"), 0, "the reader waiting on its client was shut down");
        assert!(c1.peer_addr().is_ok() && has_waiting_head(&s1), "the one with a request waiting stays");
        assert_eq!(slots.len(), 2);
        drop(a2); // its thread ends: releasing an evicted slot is harmless
        assert_eq!(slots.len(), 2);
        a1.request_read();
        a3.request_read();
        let (_c4, s4) = pair(&l);
        assert!(matches!(slots.admit(&s4), Admission::Full), "busy connections are never cut");
        drop(a1);
        assert!(matches!(slots.admit(&s4), Admission::Admitted(_)));
        assert_eq!(slots.len(), 1, "the dropped admission released its slot");
    }
}
