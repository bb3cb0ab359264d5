//! The access log: each shard writes its JSON lines into a local [`LineBatch`] and hands whole
//! batches (up to [`BATCH_BYTES`], or whatever is there at the next tick) to a dedicated writer
//! thread through a bounded lock-free queue; when it is full the batch is dropped and its lines
//! counted, never waited for. Batch buffers travel back to the shards through a second queue,
//! so a steady state allocates nothing, and the queues are touched once per batch, not per line.
//! The writer appends to a file (reopened on SIGUSR1, for logrotate) or to stdout.
//!
//! Owns: the queues, the batches, the writer thread, the destination and its reopening, and the
//! JSON shape of a line ([`AccessRecord`]). Must not: block a shard, or see bodies or credentials (the
//! record has no field for them).

use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crossbeam_queue::ArrayQueue;

use super::json_line::{JsonObject, key};

/// A shard hands its batch over once it holds this many bytes (about 50 lines).
pub const BATCH_BYTES: usize = 16 * 1024;
/// Batch buffers larger than this are not recycled (one huge path must not pin memory).
const RECYCLE_MAX: usize = 4 * BATCH_BYTES;
/// How long the writer sleeps between rounds that did not fill [`ROUND`].
const IDLE: Duration = Duration::from_millis(5);
/// Most batches written in one vectored write.
const ROUND: usize = 64;
/// Lines a batch is counted as when sizing the queue from a line count.
const LINES_PER_BATCH: usize = 64;

/// Lines of one shard on their way to the writer.
#[derive(Debug)]
struct Batch {
    bytes: Vec<u8>,
    lines: u64,
}

/// Where lines go.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Target {
    Stdout,
    File(PathBuf),
}

#[derive(Debug)]
struct Inner {
    batches: ArrayQueue<Batch>,
    free: ArrayQueue<Vec<u8>>,
    dropped: AtomicU64,
    written: AtomicU64,
    failed: AtomicU64,
    reopen: Arc<AtomicBool>,
    /// Desired destination and a change counter (control plane only).
    target: Mutex<(Option<Target>, u64)>,
}

/// Handle to the access log (cheap to clone, `Send + Sync`).
#[derive(Clone, Debug)]
pub struct AccessLog {
    inner: Arc<Inner>,
}

/// Counters for `/metrics`.
#[derive(Clone, Copy, Debug, Default)]
pub struct AccessLogStats {
    /// Lines written.
    pub written: u64,
    /// Lines dropped because the queue was full.
    pub dropped: u64,
    /// Lines lost because the destination could not be written.
    pub failed: u64,
}

impl AccessLog {
    /// Creates the queues (about `capacity` lines, counted as batches of 64), registers SIGUSR1
    /// (reopen) and starts the writer thread. The log writes nothing until
    /// [`AccessLog::set_destination`] names a destination.
    pub fn start(capacity: usize) -> io::Result<AccessLog> {
        let capacity = capacity.div_ceil(LINES_PER_BATCH).max(2);
        let reopen = Arc::new(AtomicBool::new(false));
        signal_hook::flag::register(signal_hook::consts::SIGUSR1, reopen.clone())?;
        let inner = Arc::new(Inner {
            batches: ArrayQueue::new(capacity),
            free: ArrayQueue::new(capacity.min(256)),
            dropped: AtomicU64::new(0),
            written: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            reopen,
            target: Mutex::new((None, 0)),
        });
        let writer = inner.clone();
        std::thread::Builder::new().name("access-log".into()).spawn(move || run_writer(&writer))?;
        Ok(AccessLog { inner })
    }

    /// Sets the destination: `None` = off, `"stdout"`, or a file path (applied by the writer).
    pub fn set_destination(&self, path: Option<&str>) {
        let want = path.map(|p| if p == "stdout" { Target::Stdout } else { Target::File(PathBuf::from(p)) });
        let mut t = self.inner.target.lock().unwrap_or_else(PoisonError::into_inner);
        if t.0 != want {
            t.0 = want;
            t.1 += 1;
        }
    }

    fn buffer(&self) -> Vec<u8> {
        self.inner.free.pop().unwrap_or_else(|| Vec::with_capacity(BATCH_BYTES + 1024))
    }

    /// Queues `lines` newline-terminated lines; drops and counts them when the queue is full.
    fn submit(&self, bytes: Vec<u8>, lines: u64) {
        if let Err(mut b) = self.inner.batches.push(Batch { bytes, lines }) {
            self.inner.dropped.fetch_add(b.lines, Relaxed);
            b.bytes.clear();
            let _ = self.inner.free.push(b.bytes);
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> AccessLogStats {
        AccessLogStats {
            written: self.inner.written.load(Relaxed),
            dropped: self.inner.dropped.load(Relaxed),
            failed: self.inner.failed.load(Relaxed),
        }
    }

    /// Waits (up to `timeout`) until every queued line has been handed to the destination.
    pub fn flush(&self, timeout: Duration) {
        let deadline = std::time::Instant::now() + timeout;
        while !self.inner.batches.is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(IDLE);
        }
        // The writer flushes after each batch; give the last batch one more round.
        std::thread::sleep(IDLE * 2);
    }
}

/// One shard's lines not yet handed to the writer (shard-local: keep it in a `RefCell`). Lines
/// wait here until [`BATCH_BYTES`] have collected or the next [`LineBatch::flush`] (the observe
/// filter flushes on every shard tick); dropping the batch flushes it.
#[derive(Debug)]
pub struct LineBatch {
    log: AccessLog,
    bytes: Vec<u8>,
    lines: u64,
}

impl LineBatch {
    /// An empty batch for `log`.
    pub fn new(log: AccessLog) -> LineBatch {
        LineBatch { log, bytes: Vec::new(), lines: 0 }
    }

    /// The buffer to append one line to (no newline); finish the line with [`LineBatch::end_line`].
    pub fn line(&mut self) -> &mut Vec<u8> {
        if self.bytes.capacity() == 0 {
            self.bytes = self.log.buffer();
        }
        &mut self.bytes
    }

    /// Ends the line just written; hands the batch over once it holds [`BATCH_BYTES`].
    pub fn end_line(&mut self) {
        self.bytes.push(b'\n');
        self.lines += 1;
        if self.bytes.len() >= BATCH_BYTES {
            self.flush();
        }
    }

    /// Hands over the buffered lines, if any.
    pub fn flush(&mut self) {
        if self.lines > 0 {
            let bytes = std::mem::take(&mut self.bytes);
            self.log.submit(bytes, std::mem::take(&mut self.lines));
        }
    }
}

impl Drop for LineBatch {
    fn drop(&mut self) {
        self.flush();
    }
}

enum Sink {
    Off,
    Stdout(io::Stdout),
    File(File),
}

fn open(target: &Option<Target>) -> Sink {
    match target {
        None => Sink::Off,
        Some(Target::Stdout) => Sink::Stdout(io::stdout()),
        Some(Target::File(path)) => match OpenOptions::new().create(true).append(true).open(path) {
            Ok(f) => Sink::File(f),
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "cannot open the access log; lines are lost until it can be");
                Sink::Off
            }
        },
    }
}

fn run_writer(inner: &Inner) {
    let mut version = u64::MAX;
    let mut target = None;
    let mut sink = Sink::Off;
    let mut round = Vec::with_capacity(ROUND);
    loop {
        let (want, v) = inner.target.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let reopen = inner.reopen.swap(false, Relaxed);
        if v != version || reopen {
            if reopen {
                tracing::info!("SIGUSR1: reopening the access log");
            }
            version = v;
            target = want;
            sink = open(&target);
        }
        while round.len() < ROUND
            && let Some(batch) = inner.batches.pop()
        {
            round.push(batch);
        }
        let lines: u64 = round.iter().map(|b| b.lines).sum();
        // The whole round in one write(2) straight from the shards' buffers: no copy into a
        // buffered writer, no syscall per batch.
        let ok = match &mut sink {
            Sink::Off => target.is_none(),
            Sink::Stdout(out) => write_all_vectored(&mut out.lock(), &round).is_ok(),
            Sink::File(f) => write_all_vectored(f, &round).is_ok(),
        };
        if !ok {
            inner.failed.fetch_add(lines, Relaxed);
        } else if target.is_some() {
            inner.written.fetch_add(lines, Relaxed);
        }
        let full = round.len() >= ROUND;
        for mut batch in round.drain(..) {
            if batch.bytes.capacity() <= RECYCLE_MAX {
                batch.bytes.clear();
                let _ = inner.free.push(batch.bytes);
            }
        }
        // Unless the queue held a full round, wait for the next one: writing as soon as a batch
        // arrives would cost one write(2) per batch. Batches wait at most `IDLE` plus one write.
        if !full {
            std::thread::sleep(IDLE);
        }
    }
}

/// Writes every batch of `round`, in order, with as few vectored writes as the sink allows.
fn write_all_vectored(w: &mut impl Write, round: &[Batch]) -> io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = round.iter().map(|b| IoSlice::new(&b.bytes)).collect();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        match w.write_vectored(rest) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut rest, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    w.flush()
}

/// One access log line. Borrowed fields only: building it allocates nothing.
#[derive(Debug)]
pub struct AccessRecord<'a> {
    /// RFC 3339 UTC time the response finished, millisecond precision.
    pub time: &'a str,
    /// Request id (bytes as received or generated; shown lossily if not UTF-8).
    pub request_id: &'a [u8],
    /// W3C trace id (32 lowercase hex digits), when tracing is on.
    pub trace_id: Option<&'a str>,
    /// Client IP (after trusted-proxy processing).
    pub client_ip: &'a str,
    /// Request method.
    pub method: &'a str,
    /// Route name (the template, never a raw path); null when no route matched.
    pub route: Option<&'a str>,
    /// Path as received, query stripped or redacted per config (shown lossily if not UTF-8).
    pub path: &'a [u8],
    /// Status sent (0 = none: the connection broke first).
    pub status: u16,
    /// Request body bytes received.
    pub bytes_in: u64,
    /// Response body bytes sent.
    pub bytes_out: u64,
    /// Whole exchange in microseconds.
    pub duration_us: u64,
    /// Upstream time (request sent to response head) in microseconds.
    pub upstream_us: Option<u64>,
    /// The gateway's own added time in microseconds (head read to response head written, less
    /// the upstream wait); none for an exchange that became a tunnel (`101`).
    pub added_us: Option<u64>,
    /// Upstream endpoint used (`ip:port`).
    pub upstream: Option<&'a str>,
    /// Authenticated consumer (shown lossily if not UTF-8).
    pub consumer: Option<&'a [u8]>,
    /// Protocol the client spoke.
    pub protocol: &'a str,
    /// TLS version, when the client connection is TLS.
    pub tls: Option<&'a str>,
    /// Gateway error code, when the gateway answered itself.
    pub error: Option<&'a str>,
}

impl AccessRecord<'_> {
    /// Appends this record as one JSON object (no newline) to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        // Keys, punctuation and fixed-size fields take ~300 bytes; one reservation covers them.
        let hint = 320 + self.request_id.len() + self.path.len() + self.consumer.map_or(0, <[u8]>::len);
        let mut o = JsonObject::new(out, hint);
        // Fields the gateway formats itself (time, hex ids, addresses, static names) need no
        // escaping; client- or config-supplied text does.
        o.plain(key!("time"), self.time);
        o.bytes(key!("request_id"), self.request_id);
        o.opt_plain(key!("trace_id"), self.trace_id);
        o.plain(key!("client_ip"), self.client_ip);
        o.str(key!("method"), self.method);
        o.opt_str(key!("route"), self.route);
        o.bytes(key!("path"), self.path);
        o.num(key!("status"), u64::from(self.status));
        o.num(key!("bytes_in"), self.bytes_in);
        o.num(key!("bytes_out"), self.bytes_out);
        o.num(key!("duration_us"), self.duration_us);
        o.opt_num(key!("upstream_us"), self.upstream_us);
        o.opt_num(key!("added_us"), self.added_us);
        o.opt_plain(key!("upstream"), self.upstream);
        o.opt_bytes(key!("consumer"), self.consumer);
        o.plain(key!("protocol"), self.protocol);
        o.opt_plain(key!("tls"), self.tls);
        o.opt_plain(key!("error"), self.error);
        o.end();
    }
}

/// A small stack buffer that `write!` can fill (addresses for the log line, no allocation).
#[derive(Debug)]
pub struct StackText<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> Default for StackText<N> {
    fn default() -> Self {
        StackText { buf: [0; N], len: 0 }
    }
}

impl<const N: usize> StackText<N> {
    /// The text written so far.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }

    fn push(&mut self, b: &[u8]) -> std::fmt::Result {
        let end = self.len + b.len();
        if end > N {
            return Err(std::fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(b);
        self.len = end;
        Ok(())
    }

    fn push_u16(&mut self, mut v: u16) -> std::fmt::Result {
        let mut digits = [0u8; 5];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        self.push(&digits[i..])
    }

    /// Writes an IP address (IPv4 by hand: the common case, several times faster than `fmt`).
    pub fn ip(&mut self, ip: std::net::IpAddr) -> &str {
        self.len = 0;
        let _ = self.write_ip(ip);
        self.as_str()
    }

    /// Writes `ip:port` (`[ip]:port` for IPv6).
    pub fn socket(&mut self, addr: std::net::SocketAddr) -> &str {
        self.len = 0;
        let v6 = addr.is_ipv6();
        let _ = (|| {
            if v6 {
                self.push(b"[")?;
            }
            self.write_ip(addr.ip())?;
            self.push(if v6 { b"]:" } else { b":" })?;
            self.push_u16(addr.port())
        })();
        self.as_str()
    }

    fn write_ip(&mut self, ip: std::net::IpAddr) -> std::fmt::Result {
        match ip {
            std::net::IpAddr::V4(v4) => {
                for (i, o) in v4.octets().iter().enumerate() {
                    if i > 0 {
                        self.push(b".")?;
                    }
                    self.push_u16(u16::from(*o))?;
                }
                Ok(())
            }
            std::net::IpAddr::V6(v6) => std::fmt::Write::write_fmt(self, format_args!("{v6}")),
        }
    }
}

impl<const N: usize> std::fmt::Write for StackText<N> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.push(s.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_addresses_without_fmt() {
        let mut t = StackText::<64>::default();
        assert_eq!(t.ip("10.0.255.7".parse().expect("ip")), "10.0.255.7");
        assert_eq!(t.ip("::ffff:1.2.3.4".parse().expect("ip")), "::ffff:1.2.3.4");
        assert_eq!(t.socket("127.0.0.1:8080".parse().expect("addr")), "127.0.0.1:8080");
        assert_eq!(t.socket("[2001:db8::1]:0".parse().expect("addr")), "[2001:db8::1]:0");
        assert_eq!(t.socket("[::1]:65535".parse().expect("addr")), "[::1]:65535");
    }

    #[test]
    fn writes_lines_and_counts_drops() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("access.log");
        let log = AccessLog::start(16).expect("start");
        // Off: lines are consumed and discarded.
        let mut batch = LineBatch::new(log.clone());
        batch.line().extend_from_slice(b"{\"n\":0}");
        batch.end_line();
        batch.flush();
        log.flush(Duration::from_secs(5));
        log.set_destination(path.to_str());
        for i in 1..=3 {
            batch.line().extend_from_slice(format!("{{\"n\":{i}}}").as_bytes());
            batch.end_line();
        }
        assert!(std::fs::read_to_string(&path).unwrap_or_default().is_empty(), "lines wait for a flush");
        drop(batch);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if text.lines().count() == 3 {
                assert_eq!(text, "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n");
                break;
            }
            assert!(std::time::Instant::now() < deadline, "lines not written: {text:?}");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(log.stats().written, 3);
        // A full batch goes by itself.
        let mut batch = LineBatch::new(log.clone());
        let long = vec![b'x'; BATCH_BYTES];
        batch.line().extend_from_slice(&long);
        batch.end_line();
        assert_eq!(batch.lines, 0, "handed over at BATCH_BYTES");
        // A full queue drops (and counts every line of the batch) instead of blocking.
        let full = AccessLog { inner: Arc::new(Inner { batches: ArrayQueue::new(1), ..inner_parts() }) };
        full.submit(Vec::new(), 2);
        full.submit(Vec::new(), 5);
        assert_eq!(full.stats().dropped, 5);
    }

    fn inner_parts() -> Inner {
        Inner {
            batches: ArrayQueue::new(1),
            free: ArrayQueue::new(1),
            dropped: AtomicU64::new(0),
            written: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            reopen: Arc::new(AtomicBool::new(false)),
            target: Mutex::new((None, 0)),
        }
    }
}
