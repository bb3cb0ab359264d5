//! One load-generator connection slot: connects (and reconnects after errors), sends requests
//! closed-loop (keep `pipeline` in flight) or open-loop (at the schedule's intended times) and
//! records each measured response in its thread's [`Stats`]. Owns its socket and buffers; never
//! holds the `Stats` borrow across an await.

use std::{
    cell::RefCell,
    collections::VecDeque,
    rc::Rc,
    time::{Duration, Instant},
};

use monoio::{
    buf::IoBufMut,
    io::{AsyncReadRent, AsyncWriteRentExt},
    net::TcpStream,
};

use super::{
    errors::{Fail, count},
    outcome::{connect, first_connect_error},
    pacer::Pacer,
    plan::Plan,
    response::{RespFramer, RespInfo},
    schedule::Schedule,
    stats::Stats,
};

/// Receive buffer a connection starts with.
const READ_BUF: usize = 64 * 1024;

/// A connected socket with its receive buffer and framer.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    framer: RespFramer,
    done: Vec<RespInfo>,
    out: Vec<u8>,
}

impl Conn {
    async fn open(plan: &Plan) -> Result<Self, Fail> {
        let stream = match monoio::time::timeout(plan.timeout, TcpStream::connect(plan.addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                first_connect_error(format_args!("TCP connect: {e}"));
                return Err(Fail::Connect);
            }
            Err(_) => return Err(Fail::Connect),
        };
        let _ = stream.set_nodelay(true);
        Ok(Self {
            stream,
            buf: Vec::with_capacity(READ_BUF),
            framer: RespFramer::default(),
            done: Vec::with_capacity(plan.pipeline.max(1)),
            out: Vec::with_capacity(plan.request.len() * plan.pipeline.max(1)),
        })
    }

    async fn send(&mut self) -> Result<(), Fail> {
        let out = std::mem::take(&mut self.out);
        let (res, mut out) = self.stream.write_all(out).await;
        out.clear();
        self.out = out;
        res.map(|_| ()).map_err(|_| Fail::Write)
    }

    /// Reads until at least one response completes; they are left in `self.done`. Returns the
    /// bytes read.
    async fn responses(&mut self) -> Result<u64, Fail> {
        self.done.clear();
        let mut read = 0u64;
        loop {
            if self.buf.len() == self.buf.capacity() {
                self.buf.reserve(READ_BUF);
            }
            let len = self.buf.len();
            let buf = std::mem::take(&mut self.buf);
            let (res, slice) = self.stream.read(buf.slice_mut(len..)).await;
            self.buf = slice.into_inner();
            match res {
                Ok(0) => return Err(Fail::Closed),
                Ok(n) => read += n as u64,
                Err(_) => return Err(Fail::Read),
            }
            let mut pos = 0;
            loop {
                let (n, resp) = self.framer.step(&self.buf[pos..]).map_err(|_| Fail::Parse)?;
                pos += n;
                match resp {
                    Some(r) => self.done.push(r),
                    None => break,
                }
            }
            self.buf.drain(..pos);
            if !self.done.is_empty() {
                return Ok(read);
            }
        }
    }

    async fn responses_within(&mut self, timeout: Duration) -> Result<u64, Fail> {
        monoio::time::timeout(timeout, self.responses()).await.unwrap_or(Err(Fail::Timeout))
    }
}

/// Runs HTTP/1.1 connection slot `index` until the plan's end.
pub async fn drive(plan: Rc<Plan>, index: usize, stats: Rc<RefCell<Stats>>) {
    match plan.rate {
        Some(rate) => open_loop(&plan, Schedule::new(plan.begin, rate, plan.conns, index), &stats).await,
        None => closed_loop(&plan, &stats).await,
    }
}

async fn closed_loop(plan: &Plan, stats: &RefCell<Stats>) {
    let depth = plan.pipeline.max(1);
    let mut sent: VecDeque<Instant> = VecDeque::with_capacity(depth);
    let mut first = true;
    let Some(mut conn) = connect(plan, stats, &mut first, || Conn::open(plan)).await else { return };
    monoio::time::sleep_until(plan.begin.into()).await;
    loop {
        let now = Instant::now();
        while sent.len() < depth && now < plan.end {
            conn.out.extend_from_slice(&plan.request);
            sent.push_back(now);
        }
        if sent.is_empty() {
            return;
        }
        let step = if conn.out.is_empty() { Ok(()) } else { conn.send().await };
        let step = match step {
            Ok(()) => conn.responses_within(plan.timeout).await,
            Err(f) => Err(f),
        };
        let close = match step {
            Ok(bytes) => {
                let done = Instant::now();
                let mut st = stats.borrow_mut();
                let measured_read = done >= plan.measure_from;
                if measured_read {
                    st.bytes_read += bytes;
                }
                let mut close = false;
                for resp in &conn.done {
                    let Some(at) = sent.pop_front() else { break };
                    close |= resp.close;
                    if at >= plan.measure_from {
                        st.answered(resp.status, done - at, done < plan.end);
                    }
                }
                close
            }
            Err(fail) => {
                let lost = sent.iter().filter(|&&at| at >= plan.measure_from).count() as u64;
                count(&mut stats.borrow_mut().errors, fail, lost.max(1));
                true
            }
        };
        if close {
            sent.clear();
            match connect(plan, stats, &mut first, || Conn::open(plan)).await {
                Some(c) => conn = c,
                None => return,
            }
        }
    }
}

async fn open_loop(plan: &Plan, schedule: Schedule, stats: &RefCell<Stats>) {
    let Some(pacer) = Pacer::for_sender(&mut stats.borrow_mut().errors) else { return };
    let mut first = true;
    let mut k = 0u64;
    let Some(mut conn) = connect(plan, stats, &mut first, || Conn::open(plan)).await else { return };
    let mut free_at = Instant::now();
    loop {
        let intended = schedule.at(k);
        k += 1;
        if intended >= plan.end {
            return;
        }
        if pacer.until(intended).await.is_err() {
            monoio::time::sleep_until(intended.into()).await;
        }
        let sent = Instant::now();
        // Coordinated omission: when the connection was still busy at the intended time (the
        // server held us up), the latency counts from the intended time. When it was free, any
        // delay is the generator's own timer slack, reported apart as send lag.
        let busy = free_at > intended;
        let origin = if busy { intended } else { sent };
        conn.out.extend_from_slice(&plan.request);
        let step = match conn.send().await {
            Ok(()) => conn.responses_within(plan.timeout).await,
            Err(f) => Err(f),
        };
        let measured = intended >= plan.measure_from;
        let done = Instant::now();
        free_at = done;
        let close = match step {
            Ok(bytes) => {
                let mut st = stats.borrow_mut();
                if measured {
                    st.bytes_read += bytes;
                    if !busy {
                        st.record_lag(sent - intended);
                    }
                }
                let mut close = false;
                for resp in &conn.done {
                    close |= resp.close;
                    if measured {
                        st.answered(resp.status, done - origin, done < plan.end);
                    }
                }
                close
            }
            Err(fail) => {
                if measured {
                    count(&mut stats.borrow_mut().errors, fail, 1);
                }
                true
            }
        };
        if close {
            match connect(plan, stats, &mut first, || Conn::open(plan)).await {
                Some(c) => conn = c,
                None => return,
            }
            free_at = Instant::now();
        }
    }
}
