//! `Local<T>`: a `!Send` value that quinn's `Send + Sync` trait bounds may carry, checked to stay
//! on the thread that created it.
//!
//! Owns: the thread-affinity check. Must not: be used for anything that really crosses threads.

use std::thread::{self, ThreadId};

/// A value pinned to the thread that created it. quinn requires `Send + Sync` of its runtime
/// pieces because its stock runtimes are multi-threaded; on a shard every endpoint, connection
/// and timer is created and driven on the shard's own thread, so the bound is never exercised.
/// Every access checks the thread: a violation is a programming error and aborts loudly
/// instead of racing.
pub struct Local<T> {
    value: T,
    owner: ThreadId,
}

// SAFETY: the value is only reachable through `get` and `get_mut`, which refuse any thread but
// the owner, so it is never accessed concurrently nor from another thread. Its destructor runs
// only on the owner thread too: `drop` below aborts the process before the value's own drop
// could run anywhere else (quinn's handles are dropped by the tasks of the shard that created
// them, which the runtime spawns on that shard, so the abort is a bug detector).
unsafe impl<T> Send for Local<T> {}
// SAFETY: as above: shared references never leave the owner thread in a usable form (`Debug`
// reads only the owner id).
unsafe impl<T> Sync for Local<T> {}

impl<T> Local<T> {
    /// Wraps `value`, owned by the current thread.
    pub fn new(value: T) -> Local<T> {
        Local { value, owner: thread::current().id() }
    }

    /// The value; panics when called from another thread than the owner.
    pub fn get(&self) -> &T {
        self.check();
        &self.value
    }

    /// The value, mutably; panics when called from another thread than the owner.
    pub fn get_mut(&mut self) -> &mut T {
        self.check();
        &mut self.value
    }

    fn check(&self) {
        let here = thread::current().id();
        assert!(here == self.owner, "a shard-local QUIC value was touched from another thread");
    }
}

impl<T> Drop for Local<T> {
    fn drop(&mut self) {
        if thread::current().id() != self.owner {
            // Unwinding would still drop `value` here, off its thread (a data race for an `Rc`
            // inside): stop first, even while already panicking.
            eprintln!("a shard-local QUIC value was dropped on another thread");
            std::process::abort();
        }
    }
}

impl<T> std::fmt::Debug for Local<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Local").field("owner", &self.owner).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    #[test]
    fn owner_thread_reads_and_other_threads_are_refused() {
        let local = std::sync::Arc::new(Local::new(Rc::new(5)));
        assert_eq!(**local.get(), 5);
        let remote = local.clone();
        let r = std::thread::spawn(move || {
            let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| **remote.get()));
            std::mem::forget(remote);
            caught.is_err()
        })
        .join()
        .expect("join");
        assert!(r, "another thread must be refused");
    }
}
