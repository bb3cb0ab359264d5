//! One rate-limit decision: the filter's request phase on a limited route for a known key (key
//! built from the client address and a header, bucket lookup, GCRA), admitted and refused, with
//! one and 10,000 keys in the table. Also checks that a decision for a known key allocates
//! nothing.
//!
//! Owns: the synthetic config and requests for measuring the limiter. Must not: measure the
//! response phase or chain building (both happen outside the timed loop).

use std::alloc::{GlobalAlloc, Layout, System};
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use portcullis_core::config::load_str;
use portcullis_core::pipeline::{Cx, Filter, Flow, Headers, Method, RequestHead, Version};
use portcullis_policies::{ChainEnv, RateLimitFilter};

mod common;
use common::cpu_per_call;

/// What one timed call is.
const UNIT: &str = "decision";

/// The system allocator, counting allocations so the bench can check a decision makes none.
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to `System`, which upholds the `GlobalAlloc` contract.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as this method.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as this method.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as this method.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Polls a future that never pends (the filter's request phase is synchronous inside).
fn now<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => unreachable!("the rate-limit filter never pends"),
    }
}

fn filter(rate: u64) -> RateLimitFilter {
    let text = format!(
        "[server]\nshards = 1\n[[listeners]]\nbind = \"127.0.0.1:0\"\n\
         [[upstreams]]\nname = \"up\"\nendpoints = [\"127.0.0.1:9\"]\n\
         [[routes]]\nname = \"api\"\nprefix = \"/\"\nupstream = \"up\"\nrate_limits = [\"ip\", \"key\"]\n\
         [ratelimit.limits.ip]\nkey = [\"client_ip\"]\nrate = {rate}\nburst = {rate}\n\
         [ratelimit.limits.key]\nkey = [\"header:x-api-key\", \"route\"]\nrate = {rate}\nburst = {rate}\n"
    );
    let cfg = load_str(&text, "bench.toml").unwrap_or_else(|e| panic!("{e}"));
    RateLimitFilter::build(&cfg, &ChainEnv::new())
}

fn request(key: &str) -> RequestHead {
    let mut headers = Headers::with_capacity(4);
    headers.append("host", "api.example.com");
    headers.append("x-api-key", Bytes::copy_from_slice(key.as_bytes()));
    RequestHead {
        method: Method::Get,
        path: Bytes::from_static(b"/v1/users"),
        query: None,
        version: Version::Http11,
        authority: Some(Bytes::from_static(b"api.example.com")),
        headers,
    }
}

fn decide(f: &RateLimitFilter, req: &mut RequestHead, peer: std::net::SocketAddr) -> bool {
    let mut cx = Cx::new(peer, false, Version::Http11);
    cx.route = Some(0);
    matches!(now(f.on_request(req, &mut cx)), Flow::Continue)
}

fn bench(c: &mut Criterion) {
    let peer = "203.0.113.9:4000".parse().expect("addr");
    let admitting = filter(1_000_000_000);
    let mut req = request("consumer-1");
    assert!(decide(&admitting, &mut req, peer));
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for _ in 0..1000 {
        assert!(decide(&admitting, &mut req, peer));
    }
    assert_eq!(ALLOCATIONS.load(Ordering::Relaxed), before, "a decision for a known key allocated");
    // What every decision below also pays outside the limiter: a fresh context (its clock read).
    cpu_per_call(UNIT, "baseline: Cx::new only", 2_000_000, || {
        black_box(Cx::new(peer, false, Version::Http11));
    });
    cpu_per_call(UNIT, "admit, 2 limits, 1 key", 2_000_000, || {
        black_box(decide(&admitting, &mut req, peer));
    });
    c.bench_function("ratelimit/admit, 2 limits, 1 key", |b| {
        b.iter(|| black_box(decide(&admitting, &mut req, peer)))
    });

    // 10,000 keys in the table: the lookup still hits a warm hash map.
    let mut reqs: Vec<RequestHead> = (0..10_000).map(|i| request(&format!("consumer-{i}"))).collect();
    for r in &mut reqs {
        decide(&admitting, r, peer);
    }
    let mut i = 0;
    cpu_per_call(UNIT, "admit, 2 limits, 10k keys", 2_000_000, || {
        i = (i + 7919) % reqs.len();
        black_box(decide(&admitting, &mut reqs[i], peer));
    });
    c.bench_function("ratelimit/admit, 2 limits, 10k keys", |b| {
        b.iter(|| {
            i = (i + 7919) % reqs.len();
            black_box(decide(&admitting, &mut reqs[i], peer))
        })
    });

    // Refused (the 429 path builds a reply; that allocation is the refusal's, not the lookup's).
    let refusing = filter(1);
    let mut req = request("consumer-1");
    decide(&refusing, &mut req, peer);
    cpu_per_call(UNIT, "refuse (429)", 500_000, || {
        black_box(decide(&refusing, &mut req, peer));
    });
    c.bench_function("ratelimit/refuse (429)", |b| b.iter(|| black_box(decide(&refusing, &mut req, peer))));
}

criterion_group!(benches, bench);
criterion_main!(benches);
