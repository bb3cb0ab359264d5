//! Connection slots of the multiplexed protocols (HTTP/2, HTTP/3): each connection runs
//! `streams` stream slots, each with one request in flight at a time, closed loop (send again as
//! soon as the response is in) or open loop (at the schedule's intended times, latency from the
//! intended time: the same schedule, pacer and statistics as HTTP/1.1). A connection that dies
//! is reopened and its slots resume their schedules. Owns the slot loops; the protocol lives
//! behind [`Mux`]. Never holds the `Stats` borrow across an await.

use std::{
    cell::{Cell, RefCell},
    rc::Rc,
    time::Instant,
};

use super::{
    errors::{Fail, count},
    outcome::connect,
    pacer::Pacer,
    plan::Plan,
    schedule::Schedule,
    stats::Stats,
};

/// One multiplexed connection; clones share it (one clone per stream slot).
pub trait Mux: Clone + Sized + 'static {
    /// Connects (TCP/TLS or QUIC) and sets the session up, within `plan.timeout`.
    async fn open(plan: &Plan) -> Result<Self, Fail>;
    /// Sends the plan's request on a new stream and reads the response through: its status
    /// and body size.
    async fn request(&mut self, plan: &Plan) -> Result<(u16, u64), Fail>;
    /// Whether the connection is gone (its slots then stop and it is reopened).
    fn closed(&self) -> bool;
    /// Closes the connection politely at the end of the run.
    async fn shutdown(self);
}

/// Runs connection `index` (of `plan.conns`) until the plan's end.
pub async fn drive<M: Mux>(plan: Rc<Plan>, index: usize, stats: Rc<RefCell<Stats>>) {
    let streams = plan.streams.max(1);
    // Open loop: each slot's next request number survives reconnections.
    let next: Rc<[Cell<u64>]> = (0..streams).map(|_| Cell::new(0)).collect();
    let mut first = true;
    loop {
        let Some(conn) = connect(&plan, &stats, &mut first, || M::open(&plan)).await else { return };
        let slots: Vec<_> = (0..streams)
            .map(|s| {
                let slot = Slot { conn: conn.clone(), id: s * plan.conns + index, stream: s };
                monoio::spawn(slot.run(plan.clone(), stats.clone(), next.clone()))
            })
            .collect();
        for slot in slots {
            slot.await;
        }
        if Instant::now() >= plan.end || !conn.closed() {
            conn.shutdown().await;
            return;
        }
    }
}

/// One stream slot: `id` numbers it among all slots of the run (for the schedule).
struct Slot<M> {
    conn: M,
    id: usize,
    stream: usize,
}

impl<M: Mux> Slot<M> {
    async fn run(self, plan: Rc<Plan>, stats: Rc<RefCell<Stats>>, next: Rc<[Cell<u64>]>) {
        match plan.rate {
            Some(rate) => {
                let slots = plan.conns * plan.streams.max(1);
                let schedule = Schedule::new(plan.begin, rate, slots, self.id);
                let next = &next[self.stream];
                self.open_loop(&plan, schedule, &stats, next).await;
            }
            None => self.closed_loop(&plan, &stats).await,
        }
    }

    async fn exchange(&mut self, plan: &Plan) -> Result<(u16, u64), Fail> {
        monoio::time::timeout(plan.timeout, self.conn.request(plan)).await.unwrap_or(Err(Fail::Timeout))
    }

    async fn closed_loop(mut self, plan: &Plan, stats: &RefCell<Stats>) {
        monoio::time::sleep_until(plan.begin.into()).await;
        loop {
            let at = Instant::now();
            if at >= plan.end {
                return;
            }
            let res = self.exchange(plan).await;
            let done = Instant::now();
            let measured = at >= plan.measure_from;
            match res {
                Ok((status, bytes)) => {
                    if measured {
                        let mut st = stats.borrow_mut();
                        st.bytes_read += bytes;
                        st.answered(status, done - at, done < plan.end);
                    }
                }
                Err(fail) => {
                    if measured {
                        count(&mut stats.borrow_mut().errors, fail, 1);
                    }
                    if self.conn.closed() {
                        return;
                    }
                }
            }
        }
    }

    async fn open_loop(mut self, plan: &Plan, schedule: Schedule, stats: &RefCell<Stats>, next: &Cell<u64>) {
        let Some(pacer) = Pacer::for_sender(&mut stats.borrow_mut().errors) else { return };
        let mut free_at = Instant::now();
        loop {
            let k = next.get();
            next.set(k + 1);
            let intended = schedule.at(k);
            if intended >= plan.end {
                return;
            }
            if pacer.until(intended).await.is_err() {
                monoio::time::sleep_until(intended.into()).await;
            }
            let sent = Instant::now();
            // As for HTTP/1.1: a slot still busy at the intended time counts from it (no
            // coordinated omission); a free one's delay is the generator's own send lag.
            let busy = free_at > intended;
            let origin = if busy { intended } else { sent };
            let res = self.exchange(plan).await;
            let done = Instant::now();
            free_at = done;
            let measured = intended >= plan.measure_from;
            match res {
                Ok((status, bytes)) => {
                    if measured {
                        let mut st = stats.borrow_mut();
                        st.bytes_read += bytes;
                        if !busy {
                            st.record_lag(sent - intended);
                        }
                        st.answered(status, done - origin, done < plan.end);
                    }
                }
                Err(fail) => {
                    if measured {
                        count(&mut stats.borrow_mut().errors, fail, 1);
                    }
                    if self.conn.closed() {
                        return;
                    }
                }
            }
        }
    }
}
