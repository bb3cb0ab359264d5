//! The process-wide metrics registry: hands each shard its own cells when a filter chain is
//! built (once per shard per config generation, under a mutex that the request path never
//! touches) and merges every shard's cells at scrape time.
//!
//! Owns: the series keys (route name, upstream name) and the bound on their number. Must not:
//! be called on the request path (filters keep the `Arc`s it hands out) or render text.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use super::added::AddedTime;
use super::histogram::HistogramSnapshot;
use super::series::{CLASSES, CodeTable, METHODS, PROTOCOLS, RouteSeries};

/// Most distinct (route, upstream) keys kept; later keys share the `_overflow` series. Keys of
/// routes removed by a reload are kept (counters never go backwards), so this bounds memory
/// across any number of reloads.
pub const MAX_SERIES: usize = 1024;

/// Label value of the series of requests that matched no route.
pub const UNMATCHED: &str = "_unmatched";

/// Label value of the series shared by keys beyond [`MAX_SERIES`].
pub const OVERFLOW: &str = "_overflow";

/// Most distinct (event, reason) counters; later ones share `(event, "_overflow")`.
pub const MAX_EVENTS: usize = 256;

#[derive(Debug)]
struct Entry {
    route: Arc<str>,
    upstream: Arc<str>,
    shards: Vec<Option<Arc<RouteSeries>>>,
}

#[derive(Debug)]
struct EventEntry {
    event: Arc<str>,
    reason: Arc<str>,
    shards: Vec<Option<Arc<AtomicU64>>>,
}

/// Most live gauges; later ones are not exported (their cells still work).
pub const MAX_GAUGES: usize = 1024;

#[derive(Debug)]
struct GaugeEntry {
    metric: &'static str,
    help: &'static str,
    labels: Vec<(&'static str, String)>,
    cell: Weak<AtomicU64>,
}

/// One gauge at a scrape: metric name, help text, labels, value.
pub type GaugeSnapshot = (&'static str, &'static str, Vec<(&'static str, String)>, u64);

#[derive(Debug, Default)]
struct Registry {
    series: Vec<Entry>,
    codes: Vec<Option<Arc<CodeTable>>>,
    added: Vec<Option<Arc<AddedTime>>>,
    events: Vec<EventEntry>,
    gauges: Vec<GaugeEntry>,
}

/// Handle to the registry (cheap to clone, `Send + Sync`).
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    inner: Arc<Mutex<Registry>>,
}

/// One key's cells merged over all shards.
#[derive(Debug)]
pub struct SeriesSnapshot {
    /// Route name (or [`UNMATCHED`] / [`OVERFLOW`]).
    pub route: Arc<str>,
    /// Upstream name (empty for unmatched requests).
    pub upstream: Arc<str>,
    /// Requests per (method, class, protocol), indexed like [`RouteSeries::requests`].
    pub requests: Vec<u64>,
    /// Request body bytes.
    pub bytes_in: u64,
    /// Response body bytes.
    pub bytes_out: u64,
    /// Whole exchange.
    pub total: HistogramSnapshot,
    /// Upstream time.
    pub upstream_time: HistogramSnapshot,
    /// Gateway overhead.
    pub overhead: HistogramSnapshot,
}

impl SeriesSnapshot {
    /// Requests of one (method, class, protocol) cell.
    pub fn requests(&self, method: usize, class: usize, protocol: usize) -> u64 {
        self.requests[(method * CLASSES.len() + class) * PROTOCOLS.len() + protocol]
    }
}

/// Everything merged at one scrape.
#[derive(Debug, Default)]
pub struct MetricsSnapshot {
    /// Per (route, upstream).
    pub series: Vec<SeriesSnapshot>,
    /// Local replies per code, summed over shards.
    pub codes: Vec<(&'static str, u64)>,
    /// Filter events (event, reason, count), summed over shards.
    pub events: Vec<(Arc<str>, Arc<str>, u64)>,
    /// Live process-wide gauges, in registration order.
    pub gauges: Vec<GaugeSnapshot>,
    /// The gateway's added time per (protocol, reply), summed over shards: cell `i` is labelled
    /// by [`added_labels`](super::added_labels)`(i)`; empty until a shard took its cells.
    pub added: Vec<HistogramSnapshot>,
}

fn slot<T: Default>(v: &mut Vec<Option<Arc<T>>>, shard: usize) -> Arc<T> {
    if v.len() <= shard {
        v.resize_with(shard + 1, || None);
    }
    v[shard].get_or_insert_with(Default::default).clone()
}

impl Metrics {
    /// A new, empty registry.
    pub fn new() -> Metrics {
        Metrics::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cells of (`route`, `upstream`) owned by `shard` (created on first use). Build time only.
    pub fn series(&self, shard: usize, route: &str, upstream: &str) -> Arc<RouteSeries> {
        let mut reg = self.lock();
        let pos = reg.series.iter().position(|e| &*e.route == route && &*e.upstream == upstream);
        let idx = match pos {
            Some(i) => i,
            None if reg.series.len() < MAX_SERIES => {
                reg.series.push(Entry { route: route.into(), upstream: upstream.into(), shards: Vec::new() });
                reg.series.len() - 1
            }
            None => match reg.series.iter().position(|e| &*e.route == OVERFLOW) {
                Some(i) => i,
                None => {
                    // The overflow key takes the last regular place, so the total stays bounded.
                    let last = reg.series.len() - 1;
                    reg.series[last] =
                        Entry { route: OVERFLOW.into(), upstream: OVERFLOW.into(), shards: Vec::new() };
                    last
                }
            },
        };
        slot(&mut reg.series[idx].shards, shard)
    }

    /// A counter of `event` (e.g. `auth_failure`, `rate_limited`, `retry`) with `reason` (a
    /// bounded value such as `expired_token` or a limit's name, never request data), owned by
    /// `shard`: a filter takes it when it is built and adds to it with [`bump`](super::bump) on
    /// the request path. Exported as `portcullis_events_total{event, reason}`. Build time only.
    pub fn event(&self, shard: usize, event: &str, reason: &str) -> Arc<AtomicU64> {
        let mut reg = self.lock();
        let find =
            |reg: &Registry, r: &str| reg.events.iter().position(|e| &*e.event == event && &*e.reason == r);
        let idx = match find(&reg, reason) {
            Some(i) => i,
            None => {
                let reason = if reg.events.len() < MAX_EVENTS { reason } else { OVERFLOW };
                match find(&reg, reason) {
                    Some(i) => i,
                    None => {
                        reg.events.push(EventEntry {
                            event: event.into(),
                            reason: reason.into(),
                            shards: Vec::new(),
                        });
                        reg.events.len() - 1
                    }
                }
            }
        };
        slot(&mut reg.events[idx].shards, shard)
    }

    /// A process-wide gauge `metric{labels}` (e.g. an endpoint's health) set by its one owner
    /// with a relaxed store. Exported while the returned `Arc` lives, so a dropped owner's gauge
    /// disappears from the next scrape. Off the request path only.
    pub fn gauge(
        &self,
        metric: &'static str,
        help: &'static str,
        labels: Vec<(&'static str, String)>,
    ) -> Arc<AtomicU64> {
        let cell = Arc::new(AtomicU64::new(0));
        let mut reg = self.lock();
        reg.gauges.retain(|g| g.cell.strong_count() > 0);
        if reg.gauges.len() < MAX_GAUGES {
            reg.gauges.push(GaugeEntry { metric, help, labels, cell: Arc::downgrade(&cell) });
        }
        cell
    }

    /// The local-reply code table owned by `shard`. Build time only.
    pub fn codes(&self, shard: usize) -> Arc<CodeTable> {
        slot(&mut self.lock().codes, shard)
    }

    /// The added-time histograms owned by `shard`. Build time only.
    pub fn added(&self, shard: usize) -> Arc<AddedTime> {
        slot(&mut self.lock().added, shard)
    }

    /// Merges every shard's cells (scrape time).
    pub fn snapshot(&self) -> MetricsSnapshot {
        let reg = self.lock();
        let cells = METHODS.len() * CLASSES.len() * PROTOCOLS.len();
        let mut out = MetricsSnapshot::default();
        for e in &reg.series {
            let mut s = SeriesSnapshot {
                route: e.route.clone(),
                upstream: e.upstream.clone(),
                requests: vec![0; cells],
                bytes_in: 0,
                bytes_out: 0,
                total: HistogramSnapshot::default(),
                upstream_time: HistogramSnapshot::default(),
                overhead: HistogramSnapshot::default(),
            };
            for cellset in e.shards.iter().flatten() {
                for m in 0..METHODS.len() {
                    for c in 0..CLASSES.len() {
                        for p in 0..PROTOCOLS.len() {
                            s.requests[(m * CLASSES.len() + c) * PROTOCOLS.len() + p] +=
                                cellset.requests(m, c, p);
                        }
                    }
                }
                let (i, o) = cellset.bytes();
                s.bytes_in += i;
                s.bytes_out += o;
                cellset.total.merge_into(&mut s.total);
                cellset.upstream.merge_into(&mut s.upstream_time);
                cellset.overhead.merge_into(&mut s.overhead);
            }
            out.series.push(s);
        }
        let mut codes = Vec::new();
        for t in reg.codes.iter().flatten() {
            t.snapshot(&mut codes);
        }
        for (code, n) in codes {
            match out.codes.iter_mut().find(|(c, _)| *c == code) {
                Some((_, total)) => *total += n,
                None => out.codes.push((code, n)),
            }
        }
        out.codes.sort_unstable();
        for a in reg.added.iter().flatten() {
            a.merge_into(&mut out.added);
        }
        for e in &reg.events {
            let n = e.shards.iter().flatten().map(|c| c.load(std::sync::atomic::Ordering::Relaxed)).sum();
            out.events.push((e.event.clone(), e.reason.clone(), n));
        }
        for g in &reg.gauges {
            if let Some(cell) = g.cell.upgrade() {
                let v = cell.load(std::sync::atomic::Ordering::Relaxed);
                out.gauges.push((g.metric, g.help, g.labels.clone(), v));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::series::Sample;

    #[test]
    fn merges_shards_and_keeps_keys_across_generations() {
        let m = Metrics::new();
        let a0 = m.series(0, "users", "app");
        let a1 = m.series(1, "users", "app");
        assert!(Arc::ptr_eq(&a0, &m.series(0, "users", "app")), "a reload reuses the shard's cells");
        let sample = Sample {
            method: 0,
            class: 1,
            protocol: 1,
            bytes_in: 0,
            bytes_out: 5,
            total_us: 50,
            upstream_us: None,
        };
        a0.record(&sample);
        a1.record(&sample);
        m.codes(1).record("route_not_found");
        m.codes(0).record("route_not_found");
        let snap = m.snapshot();
        assert_eq!(snap.series.len(), 1);
        assert_eq!(snap.series[0].requests(0, 1, 1), 2);
        assert_eq!(snap.series[0].bytes_out, 10);
        assert_eq!(snap.series[0].total.count(), 2);
        assert_eq!(snap.codes, vec![("route_not_found", 2)]);
        assert!(snap.added.is_empty(), "no shard took added-time cells");
        m.added(0).record(1, false, std::time::Duration::from_micros(20));
        m.added(1).record(1, false, std::time::Duration::from_micros(30));
        let snap = m.snapshot();
        assert_eq!((snap.added[2].count(), snap.added[2].sum_us), (2, 50));
    }

    #[test]
    fn event_counters_per_shard_merge_and_stay_bounded() {
        let m = Metrics::new();
        let a = m.event(0, "auth_failure", "expired_token");
        crate::telemetry::bump(&a, 2);
        crate::telemetry::bump(&m.event(1, "auth_failure", "expired_token"), 1);
        assert!(Arc::ptr_eq(&a, &m.event(0, "auth_failure", "expired_token")));
        for i in 0..MAX_EVENTS + 10 {
            m.event(0, "retry", &format!("r{i}"));
        }
        let snap = m.snapshot();
        assert_eq!(snap.events[0], ("auth_failure".into(), "expired_token".into(), 3));
        assert!(snap.events.len() <= MAX_EVENTS + 1, "{}", snap.events.len());
        assert!(snap.events.iter().any(|(e, r, _)| &**e == "retry" && &**r == OVERFLOW));
    }

    #[test]
    fn gauges_live_as_long_as_their_owner() {
        let m = Metrics::new();
        let up = m.gauge("portcullis_x", "X.", vec![("endpoint", "a".into())]);
        up.store(1, std::sync::atomic::Ordering::Relaxed);
        let snap = m.snapshot();
        assert_eq!(snap.gauges, vec![("portcullis_x", "X.", vec![("endpoint", "a".to_owned())], 1)]);
        drop(up);
        assert!(m.snapshot().gauges.is_empty());
    }

    #[test]
    fn series_count_is_bounded() {
        let m = Metrics::new();
        for i in 0..MAX_SERIES + 50 {
            m.series(0, &format!("r{i}"), "u");
        }
        let snap = m.snapshot();
        assert_eq!(snap.series.len(), MAX_SERIES);
        assert_eq!(snap.series.iter().filter(|s| &*s.route == OVERFLOW).count(), 1);
    }
}
