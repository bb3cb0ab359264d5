//! HTTP/2 toward upstreams (`protocol = "h2"` / `"h2c"`): per shard and per endpoint, a small set
//! of multiplexed client connections (h2 over monoio through `monoio_compat`), each driven by
//! its own task on the shard. A request leases a stream slot on the first live connection below
//! the peer's `SETTINGS_MAX_CONCURRENT_STREAMS`; when every connection is full the caller opens
//! another. A connection whose driver ended (GOAWAY, reset, I/O error) is dropped at the next
//! lookup; one idle past `idle_timeout` is closed by the shard's sweep.
//!
//! Owns: the shard's HTTP/2 upstream connections and their stream counts. Must not: pick
//! endpoints, retry, or convert heads (that is the engine, `forward::h2`).

pub mod body;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use h2::client::SendRequest;
use monoio_compat::StreamWrapper;

use super::conn::{OpenGuard, UpConn};

/// Stream receive window toward an upstream (per stream): room for a few large gRPC messages.
const STREAM_WINDOW: u32 = 1 << 20;
/// Connection receive window toward an upstream.
const CONN_WINDOW: u32 = 4 << 20;

/// One multiplexed HTTP/2 connection to an upstream endpoint.
pub struct H2Conn {
    send: SendRequest<Bytes>,
    /// Streams in flight on it from this shard.
    streams: Cell<usize>,
    /// Set by the driver task when the connection ended.
    dead: Rc<Cell<bool>>,
    last_used: Cell<Instant>,
    addr: SocketAddr,
    flavor: u64,
    _open: OpenGuard,
}

impl H2Conn {
    fn has_room(&self) -> bool {
        !self.dead.get() && self.streams.get() < self.send.current_max_send_streams()
    }

    /// Marks the connection unusable (a request on it failed before being sent).
    pub fn kill(&self) {
        self.dead.set(true);
    }
}

/// A stream slot on a connection, released on drop.
pub struct Lease {
    conn: Rc<H2Conn>,
    /// The connection was opened for this request (not shared before).
    pub fresh: bool,
}

impl Lease {
    fn new(conn: Rc<H2Conn>, fresh: bool) -> Lease {
        conn.streams.set(conn.streams.get() + 1);
        conn.last_used.set(Instant::now());
        Lease { conn, fresh }
    }

    /// A handle to send the request on.
    pub fn sender(&self) -> SendRequest<Bytes> {
        self.conn.send.clone()
    }

    /// The leased connection.
    pub fn conn(&self) -> &H2Conn {
        &self.conn
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.conn.streams.set(self.conn.streams.get().saturating_sub(1));
        self.conn.last_used.set(Instant::now());
    }
}

/// Why an HTTP/2 connection could not be set up on a fresh transport.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The handshake did not finish within the connect timeout.
    #[error("HTTP/2 handshake timed out")]
    Timeout,
    /// The peer refused or broke the handshake.
    #[error("HTTP/2 handshake failed: {0}")]
    Failed(h2::Error),
}

/// Connections per (endpoint, TLS flavor).
type ConnMap = HashMap<(SocketAddr, u64), Vec<Rc<H2Conn>>>;

/// The shard's HTTP/2 upstream connections, keyed by endpoint and TLS settings.
#[derive(Default)]
pub struct H2Pool {
    conns: RefCell<ConnMap>,
}

impl H2Pool {
    /// A stream slot on a live connection to `addr` (TLS settings `flavor`) with room for one
    /// more stream; dead connections met on the way are dropped. `None`: open a new one.
    pub fn lease(&self, addr: SocketAddr, flavor: u64) -> Option<Lease> {
        let mut map = self.conns.borrow_mut();
        let list = map.get_mut(&(addr, flavor))?;
        list.retain(|c| !c.dead.get());
        let conn = list.iter().find(|c| c.has_room())?.clone();
        Some(Lease::new(conn, false))
    }

    /// Makes an HTTP/2 connection of a freshly opened transport (plain or TLS), spawns its
    /// driver on this shard, adds it to the pool and leases its first stream.
    pub async fn connect(&self, conn: UpConn, timeout: Duration) -> Result<Lease, HandshakeError> {
        let UpConn { stream, addr, flavor, _open, .. } = conn;
        let mut builder = h2::client::Builder::new();
        builder.initial_window_size(STREAM_WINDOW).initial_connection_window_size(CONN_WINDOW);
        let handshake = builder.handshake::<_, Bytes>(StreamWrapper::new(stream));
        let (send, driver) = match monoio::time::timeout(timeout, handshake).await {
            Err(_) => return Err(HandshakeError::Timeout),
            Ok(Err(e)) => return Err(HandshakeError::Failed(e)),
            Ok(Ok(pair)) => pair,
        };
        let dead = Rc::new(Cell::new(false));
        let flag = dead.clone();
        monoio::spawn(async move {
            if let Err(e) = driver.await {
                tracing::debug!(%addr, error = %e, "upstream HTTP/2 connection ended");
            }
            flag.set(true);
        });
        let conn = Rc::new(H2Conn {
            send,
            streams: Cell::new(0),
            dead,
            last_used: Cell::new(Instant::now()),
            addr,
            flavor,
            _open,
        });
        self.conns.borrow_mut().entry((addr, flavor)).or_default().push(conn.clone());
        Ok(Lease::new(conn, true))
    }

    /// Closes every connection to `addr` (removed by discovery); streams in flight finish.
    pub fn forget(&self, addr: SocketAddr) {
        self.conns.borrow_mut().retain(|k, _| k.0 != addr);
    }

    /// Closes one connection to `addr` with no stream in flight; false when there is none.
    pub fn evict_idle(&self, addr: SocketAddr) -> bool {
        let mut map = self.conns.borrow_mut();
        for (k, list) in map.iter_mut() {
            if k.0 == addr
                && let Some(i) = list.iter().position(|c| c.streams.get() == 0)
            {
                list.remove(i);
                return true;
            }
        }
        false
    }

    /// Drops dead connections and closes those without streams for `max_idle` (dropping the
    /// last handle makes h2 close the connection with GOAWAY).
    pub fn sweep(&self, max_idle: Duration) {
        let mut map = self.conns.borrow_mut();
        for list in map.values_mut() {
            list.retain(|c| !c.dead.get() && (c.streams.get() > 0 || c.last_used.get().elapsed() < max_idle));
        }
        map.retain(|_, l| !l.is_empty());
    }

    /// Open HTTP/2 connections of this shard (for tests and metrics).
    pub fn len(&self) -> usize {
        self.conns.borrow().values().map(Vec::len).sum()
    }

    /// Whether no HTTP/2 connection is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The endpoint and TLS flavor of each open connection (for tests).
    pub fn endpoints(&self) -> Vec<(SocketAddr, u64)> {
        self.conns.borrow().values().flatten().map(|c| (c.addr, c.flavor)).collect()
    }
}
