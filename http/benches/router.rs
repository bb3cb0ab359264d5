//! Router lookup benchmark: `Router::find` on hits and misses with 10 and 1,000 routes.
//!
//! Owns: the synthetic route sets and requests for measuring the router. Must not: measure
//! anything but `find` (compilation happens outside the timed loop).

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use portcullis_core::config::{Dur, HeaderOps, RouteConfig};
use portcullis_core::pipeline::{Headers, Method, RequestHead, Version};
use portcullis_http::router::Router;

/// The system allocator, counting allocations so the bench can check `find` makes none.
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

/// A route with the given path condition, hosts and methods.
fn route(
    path: Option<String>,
    prefix: Option<String>,
    hosts: Vec<String>,
    methods: Vec<String>,
) -> RouteConfig {
    RouteConfig {
        name: None,
        hosts,
        path,
        prefix,
        methods,
        headers: Vec::new(),
        priority: 0,
        upstream: "up".to_owned(),
        timeout: Dur::secs(30),
        try_timeout: None,
        max_body_bytes: None,
        retry: Default::default(),
        rewrite_prefix: None,
        request_headers: HeaderOps::default(),
        response_headers: HeaderOps::default(),
        auth: None,
        authz: Default::default(),
        rate_limits: Vec::new(),
        require_client_cert: false,
        cors: None,
    }
}

/// `n` routes cycling through prefixes, templates, exact paths, method-restricted templates and
/// host-bound prefixes (exact and wildcard hosts).
fn routes(n: usize) -> Vec<RouteConfig> {
    (0..n)
        .map(|i| match i % 6 {
            0 => route(None, Some(format!("/api{i}")), vec![], vec![]),
            1 => route(Some(format!("/svc{i}/users/{{id}}")), None, vec![], vec![]),
            2 => route(Some(format!("/svc{i}/health")), None, vec![], vec![]),
            3 => {
                route(Some(format!("/svc{i}/users/{{id}}/orders/{{oid}}")), None, vec![], vec!["GET".into()])
            }
            4 => route(None, Some(format!("/static{i}/")), vec![format!("h{i}.example.com")], vec![]),
            _ => route(None, Some("/t".to_owned()), vec![format!("*.tenant{i}.example.com")], vec![]),
        })
        .collect()
}

/// A GET request head.
fn req(host: &str, path: &str) -> RequestHead {
    let mut headers = Headers::with_capacity(4);
    headers.append("host", Bytes::copy_from_slice(host.as_bytes()));
    headers.append("user-agent", "bench");
    RequestHead {
        method: Method::Get,
        path: Bytes::copy_from_slice(path.as_bytes()),
        query: None,
        version: Version::Http11,
        authority: Some(Bytes::copy_from_slice(host.as_bytes())),
        headers,
    }
}

/// The index of a route of kind `kind` (0..6) near the middle of `n` routes.
fn middle(n: usize, kind: usize) -> usize {
    (n / 2) / 6 * 6 + kind
}

fn bench_size(c: &mut Criterion, n: usize) {
    let cfgs = routes(n);
    let router = match Router::compile(&cfgs) {
        Ok(r) => r,
        Err(e) => panic!("bench routes must compile: {e}"),
    };
    let host = "gw.example.net";
    let cases = [
        ("hit_prefix", req(host, &format!("/api{}/v1/items", middle(n, 0)))),
        ("hit_template", req(host, &format!("/svc{}/users/42", middle(n, 1)))),
        ("hit_exact", req(host, &format!("/svc{}/health", middle(n, 2)))),
        ("hit_template_deep", req(host, &format!("/svc{}/users/42/orders/7", middle(n, 3)))),
        (
            "hit_exact_host",
            req(&format!("h{}.example.com:443", middle(n, 4)), &format!("/static{}/a.css", middle(n, 4))),
        ),
        ("hit_wildcard_host", req(&format!("acme.tenant{}.example.com", middle(n, 5)), "/t/x")),
        ("miss_path", req(host, "/nothing/here/at/all")),
        ("miss_near", req(host, &format!("/svc{}/users", middle(n, 1)))),
        ("miss_host", req("www.tenant0.example.org", "/static4/a.css")),
    ];
    let mut group = c.benchmark_group(format!("router_find/{n}_routes"));
    for (name, r) in &cases {
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        let found = router.find(r);
        assert_eq!(ALLOCATIONS.load(Ordering::Relaxed), before, "{name}: find allocated");
        assert_eq!(found.is_some(), name.starts_with("hit"), "{name} with {n} routes");
        group.bench_function(*name, |b| b.iter(|| router.find(black_box(r))));
    }
    group.finish();
}

fn bench_router(c: &mut Criterion) {
    bench_size(c, 10);
    bench_size(c, 1000);
}

criterion_group!(benches, bench_router);
criterion_main!(benches);
