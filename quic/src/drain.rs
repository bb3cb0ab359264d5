//! A shard-local one-shot signal: set once when the shard starts draining, awaited by every
//! QUIC accept loop and HTTP/3 connection so they can send GOAWAY and stop taking new work.
//!
//! Owns: the flag and its waiters. Must not: cross threads (it is `Rc`-based by design).

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::task::{Poll, Waker};

/// Set once; every `wait` then completes.
#[derive(Debug, Default)]
pub struct DrainSignal {
    set: Cell<bool>,
    waiters: RefCell<Vec<Waker>>,
}

impl DrainSignal {
    /// Fires the signal and wakes every waiter.
    pub fn fire(&self) {
        self.set.set(true);
        for w in self.waiters.borrow_mut().drain(..) {
            w.wake();
        }
    }

    /// Whether the signal fired.
    pub fn is_set(&self) -> bool {
        self.set.get()
    }

    /// Completes once the signal fired.
    pub async fn wait(&self) {
        poll_fn(|cx| {
            if self.set.get() {
                return Poll::Ready(());
            }
            let mut w = self.waiters.borrow_mut();
            if !w.iter().any(|x| x.will_wake(cx.waker())) {
                w.push(cx.waker().clone());
            }
            Poll::Pending
        })
        .await
    }
}

/// A shard-local count with a way to wait until it is zero (open connections, live streams).
#[derive(Debug, Default)]
pub struct Gauge {
    n: Cell<usize>,
    waiters: RefCell<Vec<Waker>>,
}

impl Gauge {
    /// Counts one more.
    pub fn inc(&self) {
        self.n.set(self.n.get() + 1);
    }

    /// Counts one less; wakes the waiters at zero.
    pub fn dec(&self) {
        self.n.set(self.n.get().saturating_sub(1));
        if self.n.get() == 0 {
            for w in self.waiters.borrow_mut().drain(..) {
                w.wake();
            }
        }
    }

    /// The current count.
    pub fn get(&self) -> usize {
        self.n.get()
    }

    /// Completes when the count is zero.
    pub async fn zero(&self) {
        poll_fn(|cx| {
            if self.n.get() == 0 {
                return Poll::Ready(());
            }
            let mut w = self.waiters.borrow_mut();
            if !w.iter().any(|x| x.will_wake(cx.waker())) {
                w.push(cx.waker().clone());
            }
            Poll::Pending
        })
        .await
    }
}

/// Decrements a gauge when dropped.
#[derive(Debug)]
pub struct GaugeGuard(pub std::rc::Rc<Gauge>);

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    #[test]
    fn waiters_complete_after_fire() {
        let mut rt =
            monoio::RuntimeBuilder::<monoio::LegacyDriver>::new().enable_timer().build().expect("rt");
        rt.block_on(async {
            let d = Rc::new(DrainSignal::default());
            let d2 = d.clone();
            let waiter = monoio::spawn(async move {
                d2.wait().await;
                d2.is_set()
            });
            // Let the waiter run once and park on the signal.
            monoio::time::sleep(std::time::Duration::from_millis(1)).await;
            assert!(!d.is_set());
            d.fire();
            assert!(waiter.await, "the waiter saw the signal");
            d.wait().await; // already set: completes at once
            let g = Rc::new(Gauge::default());
            g.zero().await; // zero from the start
            g.inc();
            let guard = GaugeGuard(g.clone());
            let g2 = g.clone();
            let waiter = monoio::spawn(async move { g2.zero().await });
            drop(guard);
            waiter.await;
            assert_eq!(g.get(), 0);
        });
    }
}
