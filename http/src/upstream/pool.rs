//! Per-shard keep-alive connection pool toward upstream endpoints.
//!
//! Owns: idle upstream connections of one shard, keyed by endpoint address (so pools survive
//! config reloads that keep the endpoint), LIFO reuse, idle expiry, bounded size, and the count
//! of open (idle and busy) connections per endpoint. Must not:
//! be shared across threads (it lives in the shard's `Rc` state; no locks).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use monoio::net::TcpStream;

use super::conn::{OpenGuard, UpConn};
use super::stream::UpStream;

/// Initial read buffer of an upstream connection.
const UPSTREAM_READ_BUF: usize = 8 * 1024;

struct Idle {
    conn: UpConn,
    since: Instant,
}

/// Counters for tests and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// New connections opened.
    pub connects: u64,
    /// Requests sent on a reused connection.
    pub reuses: u64,
}

/// The shard's idle connections (HTTP/1.1) and multiplexed HTTP/2 connections.
#[derive(Default)]
pub struct Pool {
    /// HTTP/2 connections, shared by concurrent requests.
    pub h2: super::h2::H2Pool,
    idle: RefCell<HashMap<(SocketAddr, u64), Vec<Idle>>>,
    open: RefCell<HashMap<SocketAddr, Rc<Cell<u32>>>>,
    connects: Cell<u64>,
    reuses: Cell<u64>,
}

/// Why connecting failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The connect timeout passed.
    #[error("connect to {0} timed out")]
    Timeout(SocketAddr),
    /// The OS refused (refused, unreachable, ...).
    #[error("connect to {0} failed: {1}")]
    Io(SocketAddr, io::Error),
}

impl Pool {
    /// Takes the most recently used idle connection to `addr` with TLS settings `flavor` that is
    /// younger than `max_idle`.
    pub fn checkout(&self, addr: SocketAddr, flavor: u64, max_idle: Duration) -> Option<UpConn> {
        let mut map = self.idle.borrow_mut();
        let list = map.get_mut(&(addr, flavor))?;
        while let Some(idle) = list.pop() {
            if idle.since.elapsed() < max_idle {
                self.reuses.set(self.reuses.get() + 1);
                return Some(idle.conn);
            }
        }
        None
    }

    /// Returns a connection for reuse; closes it instead when `max` are already idle.
    pub fn checkin(&self, conn: UpConn, max: usize) {
        let mut map = self.idle.borrow_mut();
        let list = map.entry((conn.addr, conn.flavor)).or_default();
        if list.len() < max {
            list.push(Idle { conn, since: Instant::now() });
        }
    }

    /// Opens a new plain TCP connection, bounded by `timeout`.
    pub async fn connect(&self, addr: SocketAddr, timeout: Duration) -> Result<UpConn, ConnectError> {
        let stream = match monoio::time::timeout(timeout, TcpStream::connect_addr(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(ConnectError::Io(addr, e)),
            Err(_) => return Err(ConnectError::Timeout(addr)),
        };
        let _ = stream.set_nodelay(true);
        self.connects.set(self.connects.get() + 1);
        let count = self.open.borrow_mut().entry(addr).or_default().clone();
        count.set(count.get() + 1);
        let rbuf = BytesMut::with_capacity(UPSTREAM_READ_BUF);
        Ok(UpConn {
            stream: UpStream::Plain(stream),
            rbuf,
            requests: 0,
            addr,
            flavor: 0,
            _open: OpenGuard(count),
        })
    }

    /// Open connections (idle and busy) of this shard toward `addr`.
    pub fn open_count(&self, addr: SocketAddr) -> u32 {
        self.open.borrow().get(&addr).map_or(0, |c| c.get())
    }

    /// Closes the oldest idle connection toward any of `addrs`; false when none is idle.
    pub fn evict_idle(&self, addrs: impl Iterator<Item = SocketAddr>) -> bool {
        let mut map = self.idle.borrow_mut();
        for addr in addrs {
            if let Some(list) = map.iter_mut().find_map(|(k, l)| (k.0 == addr && !l.is_empty()).then_some(l))
            {
                list.remove(0);
                return true;
            }
            if self.h2.evict_idle(addr) {
                return true;
            }
        }
        false
    }

    /// Closes every idle connection toward `addr` (an endpoint discovery removed); busy ones
    /// finish their request and are then closed instead of pooled.
    pub fn forget(&self, addr: SocketAddr) {
        self.idle.borrow_mut().retain(|k, _| k.0 != addr);
        self.h2.forget(addr);
    }

    /// Closes idle connections older than `max_idle` (run periodically by the shard).
    pub fn sweep(&self, max_idle: Duration) {
        self.h2.sweep(max_idle);
        let mut map = self.idle.borrow_mut();
        for list in map.values_mut() {
            list.retain(|i| i.since.elapsed() < max_idle);
        }
        map.retain(|_, l| !l.is_empty());
        drop(map);
        self.open.borrow_mut().retain(|_, c| c.get() > 0 || Rc::strong_count(c) > 1);
    }

    /// Connection counters.
    pub fn stats(&self) -> PoolStats {
        PoolStats { connects: self.connects.get(), reuses: self.reuses.get() }
    }

    /// Number of idle connections held.
    pub fn idle_count(&self) -> usize {
        self.idle.borrow().values().map(Vec::len).sum()
    }
}
