//! A `quinn::Runtime` over the shard's own monoio runtime: quinn's tasks are spawned on the
//! shard, its timers are monoio timers, and its UDP socket waits for readiness with an io_uring
//! poll (or epoll on the fallback driver) while quinn's own `sendmsg`/`recvmmsg` path (GSO/GRO
//! where the kernel has them) does the I/O. No tokio runtime exists in the process.
//!
//! Owns: the adapter types. Must not: be used from a thread that is not running a monoio
//! runtime with timers enabled (every shard is one).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use quinn::udp::{RecvMeta, Transmit, UdpSocketState};
use quinn::{AsyncTimer, AsyncUdpSocket, Runtime, UdpPoller};

use crate::local::Local;
use crate::steer::{Steering, Stray};

/// quinn's runtime on the current monoio shard. With steering, the UDP sockets it wraps hand
/// datagrams owned by another shard to that shard and deliver the ones handed to this shard.
#[derive(Debug, Default, Clone)]
pub struct MonoioRuntime {
    steer: Option<(Arc<Steering>, usize)>,
}

impl MonoioRuntime {
    /// A runtime whose sockets steer datagrams across the shards of `steering`, as shard `shard`.
    pub fn steered(steering: Arc<Steering>, shard: usize) -> MonoioRuntime {
        MonoioRuntime { steer: Some((steering, shard)) }
    }
}

impl Runtime for MonoioRuntime {
    fn new_timer(&self, i: Instant) -> Pin<Box<dyn AsyncTimer>> {
        Box::pin(Timer(Local::new(Box::pin(monoio::time::sleep_until(monoio::time::Instant::from_std(i))))))
    }

    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) {
        // Detached: quinn's drivers end on their own when their endpoint or connection goes.
        drop(monoio::spawn(future));
    }

    fn wrap_udp_socket(&self, sock: std::net::UdpSocket) -> io::Result<Arc<dyn AsyncUdpSocket>> {
        Ok(Arc::new(UdpSocket::new(sock, self.steer.clone())?))
    }
}

/// A monoio sleep quinn can reset.
struct Timer(Local<Pin<Box<monoio::time::Sleep>>>);

impl std::fmt::Debug for Timer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MonoioTimer")
    }
}

impl AsyncTimer for Timer {
    fn reset(mut self: Pin<&mut Self>, i: Instant) {
        self.0.get_mut().as_mut().reset(monoio::time::Instant::from_std(i));
    }

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.0.get_mut().as_mut().poll(cx)
    }
}

type Readiness = Pin<Box<dyn Future<Output = io::Result<()>>>>;

/// The UDP socket: quinn-udp does the I/O on `std`; `ready` (a second descriptor of the same
/// socket, owned by monoio) only waits for readiness.
struct UdpSocket {
    std: std::net::UdpSocket,
    ready: Local<Rc<monoio::net::udp::UdpSocket>>,
    read_wait: Local<RefCell<Option<Readiness>>>,
    state: UdpSocketState,
    steer: Option<(Arc<Steering>, usize)>,
    backlog: Local<RefCell<VecDeque<Stray>>>,
}

impl std::fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MonoioUdpSocket").field("fd", &self.std.as_raw_fd()).finish()
    }
}

impl UdpSocket {
    fn new(std: std::net::UdpSocket, steer: Option<(Arc<Steering>, usize)>) -> io::Result<UdpSocket> {
        std.set_nonblocking(true)?;
        let state = UdpSocketState::new((&std).into())?;
        // SAFETY: `dup` returns a fresh descriptor (checked below) that nothing else owns; the
        // std socket created from it takes sole ownership and closes it on drop.
        let dup = unsafe { libc::dup(std.as_raw_fd()) };
        if dup < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `dup` is a valid, owned UDP socket descriptor (see above).
        let twin = unsafe { std::net::UdpSocket::from_raw_fd(dup) };
        let ready = monoio::net::udp::UdpSocket::from_std(twin)?;
        Ok(UdpSocket {
            std,
            ready: Local::new(Rc::new(ready)),
            read_wait: Local::new(RefCell::new(None)),
            state,
            steer,
            backlog: Local::new(RefCell::new(VecDeque::new())),
        })
    }

    /// Moves datagrams other shards handed over into quinn's buffers; returns how many.
    fn deliver_strays(
        &self,
        steer: &Steering,
        me: usize,
        cx: &Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> usize {
        steer.register(me, cx.waker());
        let mut backlog = self.backlog.get().borrow_mut();
        backlog.extend(steer.take(me));
        let mut n = 0;
        while n < bufs.len().min(meta.len()) {
            let Some(stray) = backlog.pop_front() else { break };
            let len = stray.data.len();
            if len > bufs[n].len() {
                continue; // cannot happen with quinn's buffer sizes; drop rather than truncate
            }
            bufs[n][..len].copy_from_slice(&stray.data);
            meta[n] = RecvMeta {
                addr: stray.addr,
                len,
                stride: stray.stride,
                ecn: stray.ecn,
                dst_ip: stray.dst_ip,
            };
            n += 1;
        }
        n
    }

    /// Forwards the received datagrams another shard owns and compacts the rest to the front;
    /// returns how many stay here.
    fn keep_own(
        &self,
        steer: &Steering,
        me: usize,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
        n: usize,
    ) -> usize {
        let mut kept = 0;
        for i in 0..n {
            let m = meta[i];
            let data = &bufs[i][..m.len];
            if let Some(owner) = steer.foreign_owner(me, data) {
                let stray = Stray {
                    data: data.to_vec(),
                    stride: m.stride,
                    addr: m.addr,
                    ecn: m.ecn,
                    dst_ip: m.dst_ip,
                };
                steer.forward(me, owner, stray);
                continue;
            }
            if kept != i {
                let (front, back) = bufs.split_at_mut(i);
                front[kept][..m.len].copy_from_slice(&back[0][..m.len]);
                meta[kept] = m;
            }
            kept += 1;
        }
        kept
    }
}

impl AsyncUdpSocket for UdpSocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        Box::pin(WritePoller { socket: self, wait: Local::new(None) })
    }

    fn try_send(&self, transmit: &Transmit<'_>) -> io::Result<()> {
        self.state.send((&self.std).into(), transmit)
    }

    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        loop {
            if let Some((steer, me)) = &self.steer {
                let n = self.deliver_strays(steer, *me, cx, bufs, meta);
                if n > 0 {
                    return Poll::Ready(Ok(n));
                }
            }
            match self.state.recv((&self.std).into(), bufs, meta) {
                Ok(n) => {
                    let n = match &self.steer {
                        Some((steer, me)) => self.keep_own(steer, *me, bufs, meta, n),
                        None => n,
                    };
                    if n > 0 {
                        return Poll::Ready(Ok(n));
                    }
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
            let mut slot = self.read_wait.get().borrow_mut();
            let wait = slot.get_or_insert_with(|| {
                let sock = self.ready.get().clone();
                Box::pin(async move { sock.readable(false).await })
            });
            match wait.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(res) => {
                    *slot = None;
                    res?;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.std.local_addr()
    }

    fn may_fragment(&self) -> bool {
        self.state.may_fragment()
    }

    fn max_transmit_segments(&self) -> usize {
        self.state.max_gso_segments()
    }

    fn max_receive_segments(&self) -> usize {
        self.state.gro_segments()
    }
}

/// Waits for the socket to accept datagrams again after a `WouldBlock` send.
struct WritePoller {
    socket: Arc<UdpSocket>,
    wait: Local<Option<Readiness>>,
}

impl std::fmt::Debug for WritePoller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MonoioUdpPoller")
    }
}

impl UdpPoller for WritePoller {
    fn poll_writable(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let sock = self.socket.ready.get().clone();
        let wait =
            self.wait.get_mut().get_or_insert_with(|| Box::pin(async move { sock.writable(false).await }));
        let res = wait.as_mut().poll(cx);
        if res.is_ready() {
            *self.wait.get_mut() = None;
        }
        res
    }
}
