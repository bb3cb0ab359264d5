//! Cross-shard steering of QUIC datagrams: every shard has its own `SO_REUSEPORT` UDP socket,
//! and the kernel picks the socket by hashing the 4-tuple. When a client's address changes, its
//! packets may land on another shard; that shard reads the owner from the destination
//! connection id (see `cid`) and hands the datagram over through the owner's inbox.
//!
//! Owns: the per-shard inboxes and the steering counters. Must not: parse more of QUIC than the
//! destination id. The inbox is a mutex-guarded queue, touched only for stray packets (rare: a
//! migration moves a connection's traffic once); the owner checks an atomic flag per poll.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::Waker;

use atomic_waker::AtomicWaker;
use quinn::udp::EcnCodepoint;

use crate::cid::{CidKey, server_dcid};

/// Most datagrams waiting in one shard's inbox; more are dropped (QUIC retransmits).
const INBOX_LIMIT: usize = 4096;

/// A datagram (or a GRO batch of same-sized datagrams) received by the wrong shard.
#[derive(Debug)]
pub struct Stray {
    /// The bytes.
    pub data: Vec<u8>,
    /// Size of each datagram inside `data` (GRO).
    pub stride: usize,
    /// Source address.
    pub addr: SocketAddr,
    /// ECN bits.
    pub ecn: Option<EcnCodepoint>,
    /// Destination IP, when known.
    pub dst_ip: Option<std::net::IpAddr>,
}

#[derive(Debug, Default)]
struct Inbox {
    queue: Mutex<Vec<Stray>>,
    pending: AtomicBool,
    waker: AtomicWaker,
    received: AtomicU64,
    forwarded: AtomicU64,
    dropped: AtomicU64,
}

/// The steering table shared by every shard of one listener.
#[derive(Debug)]
pub struct Steering {
    key: CidKey,
    inboxes: Vec<Inbox>,
}

/// Counters of one shard.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SteerStats {
    /// Datagrams this shard forwarded to their owner.
    pub forwarded: u64,
    /// Datagrams other shards forwarded to this one.
    pub received: u64,
    /// Datagrams dropped because the owner's inbox was full.
    pub dropped: u64,
}

impl Steering {
    /// A table for `shards` shards sharing `key`.
    pub fn new(shards: usize, key: CidKey) -> Steering {
        Steering { key, inboxes: (0..shards).map(|_| Inbox::default()).collect() }
    }

    /// The id key (for the shards' connection id generators).
    pub fn key(&self) -> &CidKey {
        &self.key
    }

    /// Number of shards.
    pub fn shards(&self) -> usize {
        self.inboxes.len()
    }

    /// The shard that owns `datagram`, when it is not `me`.
    pub fn foreign_owner(&self, me: usize, datagram: &[u8]) -> Option<usize> {
        let cid = server_dcid(datagram)?;
        let owner = self.key.shard_of(cid)?;
        (owner != me && owner < self.inboxes.len()).then_some(owner)
    }

    /// Hands `stray` to shard `owner` (from shard `from`) and wakes it.
    pub fn forward(&self, from: usize, owner: usize, stray: Stray) {
        let inbox = &self.inboxes[owner];
        {
            let mut q = inbox.queue.lock().unwrap_or_else(|p| p.into_inner());
            if q.len() >= INBOX_LIMIT {
                inbox.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            q.push(stray);
        }
        inbox.received.fetch_add(1, Ordering::Relaxed);
        self.inboxes[from].forwarded.fetch_add(1, Ordering::Relaxed);
        inbox.pending.store(true, Ordering::Release);
        inbox.waker.wake();
    }

    /// Registers the shard's receive task to be woken by forwarded datagrams.
    pub fn register(&self, me: usize, waker: &Waker) {
        self.inboxes[me].waker.register(waker);
    }

    /// Takes the datagrams forwarded to `me`, if any (one atomic load when there are none).
    pub fn take(&self, me: usize) -> Vec<Stray> {
        let inbox = &self.inboxes[me];
        if !inbox.pending.swap(false, Ordering::Acquire) {
            return Vec::new();
        }
        std::mem::take(&mut *inbox.queue.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The counters of shard `me`.
    pub fn stats(&self, me: usize) -> SteerStats {
        let i = &self.inboxes[me];
        SteerStats {
            forwarded: i.forwarded.load(Ordering::Relaxed),
            received: i.received.load(Ordering::Relaxed),
            dropped: i.dropped.load(Ordering::Relaxed),
        }
    }
}
