//! The process-wide view of one upstream's endpoints, shared by every shard and by the upstream
//! service thread: the current endpoint list (replaced as a whole when discovery changes it,
//! with a generation counter shards compare per request) and each endpoint's health.
//!
//! Owns: the endpoint list snapshot, per-endpoint health atomics and the unhealthy count. Must
//! not: pick endpoints, count per-shard state, or do I/O. The mutex is taken only when the list
//! changes or a shard sees a new generation, never on an ordinary request.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// One endpoint as every shard sees it.
#[derive(Debug)]
pub struct SharedEndpoint {
    /// Its address.
    pub addr: SocketAddr,
    /// Relative weight.
    pub weight: u32,
    healthy: AtomicBool,
    retired: AtomicBool,
}

impl SharedEndpoint {
    /// False once active health checks marked it unhealthy.
    #[inline]
    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// True once it left the endpoint list (its health checks stop).
    pub fn retired(&self) -> bool {
        self.retired.load(Ordering::Relaxed)
    }
}

/// Where endpoints come from; the published list is their union (first occurrence wins).
#[derive(Debug, Default)]
struct Sources {
    fixed: Vec<(SocketAddr, u32)>,
    file: Vec<(SocketAddr, u32)>,
    dns: Vec<(SocketAddr, u32)>,
}

/// Which source a discovery update replaces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Inline `endpoints` (on reload).
    Fixed,
    /// The watched `endpoints_file`.
    File,
    /// DNS discovery (`[upstreams.dns]`).
    Dns,
}

/// One upstream's endpoints, shared by all shards.
#[derive(Debug)]
pub struct LiveUpstream {
    /// Upstream name.
    pub name: String,
    generation: AtomicU64,
    list: Mutex<(Arc<Vec<Arc<SharedEndpoint>>>, Sources)>,
    unhealthy: AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl LiveUpstream {
    /// An upstream whose endpoints are `fixed` (plus `file`, from an endpoints file).
    pub fn new(name: &str, fixed: &[(SocketAddr, u32)], file: &[(SocketAddr, u32)]) -> LiveUpstream {
        let live = LiveUpstream {
            name: name.to_owned(),
            generation: AtomicU64::new(0),
            list: Mutex::new((Arc::new(Vec::new()), Sources::default())),
            unhealthy: AtomicUsize::new(0),
        };
        live.update(Source::Fixed, fixed);
        live.update(Source::File, file);
        live
    }

    /// Changes whenever the list does (a shard compares it per request: one relaxed load).
    #[inline]
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The current list.
    pub fn list(&self) -> Arc<Vec<Arc<SharedEndpoint>>> {
        lock(&self.list).0.clone()
    }

    /// Endpoints marked unhealthy by active checks (a shard reads it per pick: one relaxed load).
    #[inline]
    pub fn unhealthy(&self) -> usize {
        self.unhealthy.load(Ordering::Relaxed)
    }

    /// Replaces one source's endpoints; publishes a new list when the union changed. Kept
    /// endpoints keep their health; removed ones are retired. Returns true when published.
    pub fn update(&self, source: Source, eps: &[(SocketAddr, u32)]) -> bool {
        let mut guard = lock(&self.list);
        let (list, sources) = &mut *guard;
        let slot = match source {
            Source::Fixed => &mut sources.fixed,
            Source::File => &mut sources.file,
            Source::Dns => &mut sources.dns,
        };
        if slot.as_slice() == eps {
            return false;
        }
        *slot = eps.to_vec();
        let mut next: Vec<Arc<SharedEndpoint>> = Vec::new();
        for &(addr, weight) in sources.fixed.iter().chain(&sources.file).chain(&sources.dns) {
            if next.iter().any(|e| e.addr == addr) {
                continue;
            }
            let kept = list.iter().find(|e| e.addr == addr && e.weight == weight).cloned();
            next.push(kept.unwrap_or_else(|| {
                Arc::new(SharedEndpoint {
                    addr,
                    weight,
                    healthy: AtomicBool::new(true),
                    retired: AtomicBool::new(false),
                })
            }));
        }
        let same = next.len() == list.len() && next.iter().zip(list.iter()).all(|(a, b)| Arc::ptr_eq(a, b));
        if same {
            return false;
        }
        for old in list.iter().filter(|o| !next.iter().any(|n| Arc::ptr_eq(n, o))) {
            old.retired.store(true, Ordering::Relaxed);
        }
        tracing::info!(upstream = %self.name, endpoints = next.len(), ?source, "upstream endpoints changed");
        *list = Arc::new(next);
        self.recount(list);
        self.generation.fetch_add(1, Ordering::Release);
        true
    }

    /// Sets an endpoint's health (from the health checker); returns true when it changed.
    pub fn set_health(&self, ep: &SharedEndpoint, healthy: bool) -> bool {
        if ep.healthy.swap(healthy, Ordering::Relaxed) == healthy {
            return false;
        }
        let guard = lock(&self.list);
        self.recount(&guard.0);
        true
    }

    fn recount(&self, list: &[Arc<SharedEndpoint>]) {
        self.unhealthy.store(list.iter().filter(|e| !e.healthy()).count(), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(port: u16) -> (SocketAddr, u32) {
        (SocketAddr::from(([127, 0, 0, 1], port)), 1)
    }

    #[test]
    fn updates_keep_health_of_kept_endpoints_and_retire_removed_ones() {
        let live = LiveUpstream::new("u", &[a(1), a(2)], &[]);
        let g0 = live.generation();
        let first = live.list();
        assert!(live.set_health(&first[1], false));
        assert_eq!(live.unhealthy(), 1);
        assert!(!live.update(Source::Fixed, &[a(1), a(2)]), "no change, no new generation");
        assert!(live.update(Source::File, &[a(2), a(3)]));
        assert!(live.generation() > g0);
        let now = live.list();
        assert_eq!(now.iter().map(|e| e.addr.port()).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert!(Arc::ptr_eq(&now[1], &first[1]) && !now[1].healthy());
        assert!(live.update(Source::Fixed, &[a(3)]));
        assert!(first[0].retired() && !first[1].retired(), "2 is still in the file");
        assert_eq!(live.unhealthy(), 1);
        // DNS adds to the union; clearing it retires only what no other source lists.
        assert!(live.update(Source::Dns, &[a(3), a(4)]));
        let with_dns = live.list();
        assert_eq!(with_dns.iter().map(|e| e.addr.port()).collect::<Vec<_>>(), vec![3, 2, 4]);
        assert!(live.update(Source::Dns, &[]));
        assert!(with_dns[2].retired() && !with_dns[0].retired());
    }
}
