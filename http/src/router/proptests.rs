//! Property test: `Router::find` agrees with a naive linear reference over random route sets,
//! hosts, paths, methods and headers.
//!
//! Owns: the reference matcher (string operations, no trie) and the generators. Must not: reuse
//! the router's parsing or ranking code, so the two implementations stay independent.

use std::cmp::Reverse;

use portcullis_core::config::RouteConfig;
use portcullis_core::pipeline::RequestHead;
use proptest::prelude::*;

use super::Router;
use super::tests::{Q, R};

/// Reference rank: (priority, kind, literal segments, literal bytes, host class, wildcard
/// suffix length, conditions, file order), compared lexicographically.
type NaiveRank = (i32, u8, usize, usize, u8, usize, usize, Reverse<usize>);

/// How `host` matches pattern `pat`: `Some((class, suffix_len))` or `None`.
fn naive_host(pat: &str, host: Option<&str>) -> Option<(u8, usize)> {
    if pat == "*" {
        return Some((0, 0));
    }
    let host = host?.to_ascii_lowercase();
    let pat = pat.to_ascii_lowercase();
    match pat.strip_prefix('*') {
        Some(suffix) => (host.len() > suffix.len() && host.ends_with(suffix)).then_some((1, suffix.len())),
        None => (host == pat).then_some((2, 0)),
    }
}

/// `(kind, literal segments, literal bytes)` when `path` satisfies the route's path condition.
fn naive_path(cfg: &RouteConfig, path: &str) -> Option<(u8, usize, usize)> {
    match (&cfg.path, &cfg.prefix) {
        (None, None) => Some((0, 0, 0)),
        (None, Some(p)) => {
            let hit = if p.ends_with('/') {
                path.starts_with(p.as_str())
            } else {
                path == p || path.starts_with(&format!("{p}/"))
            };
            hit.then_some((1, 0, p.len()))
        }
        (Some(p), _) if !p.contains('{') => (path == p).then_some((3, 0, p.len())),
        (Some(p), _) => {
            let (Some(pat), Some(got)) = (p.strip_prefix('/'), path.strip_prefix('/')) else { return None };
            let pat: Vec<&str> = pat.split('/').collect();
            let got: Vec<&str> = got.split('/').collect();
            if pat.len() != got.len() {
                return None;
            }
            let (mut segs, mut bytes) = (0, 0);
            for (a, b) in pat.iter().zip(&got) {
                if a.starts_with('{') {
                    if b.is_empty() {
                        return None;
                    }
                } else if a != b {
                    return None;
                } else {
                    segs += 1;
                    bytes += a.len();
                }
            }
            Some((2, segs, bytes))
        }
    }
}

/// True when the request satisfies the route's method and header conditions.
fn naive_conds(cfg: &RouteConfig, req: &RequestHead) -> bool {
    let method_ok =
        cfg.methods.is_empty() || cfg.methods.iter().any(|m| m.as_bytes() == req.method.as_bytes());
    method_ok
        && cfg.headers.iter().all(|h| {
            req.headers.iter().any(|f| {
                f.name.eq_ignore_ascii_case(h.name.as_bytes())
                    && h.value.as_ref().is_none_or(|v| f.value[..] == *v.as_bytes())
            })
        })
}

/// The reference: rank every route linearly and take the greatest.
fn naive_find(routes: &[RouteConfig], req: &RequestHead) -> Option<usize> {
    let host = req.host().map(|h| String::from_utf8_lossy(h).into_owned());
    let path = String::from_utf8_lossy(&req.path).into_owned();
    let mut best: Option<NaiveRank> = None;
    for (i, cfg) in routes.iter().enumerate() {
        if !naive_conds(cfg, req) {
            continue;
        }
        let Some((kind, segs, bytes)) = naive_path(cfg, &path) else { continue };
        let host_rank = if cfg.hosts.is_empty() {
            Some((0, 0))
        } else {
            cfg.hosts.iter().filter_map(|p| naive_host(p, host.as_deref())).max()
        };
        let Some((class, suffix)) = host_rank else { continue };
        let conds = usize::from(!cfg.methods.is_empty()) + cfg.headers.len();
        let rank = (cfg.priority, kind, segs, bytes, class, suffix, conds, Reverse(i));
        best = best.max(Some(rank));
    }
    best.map(|r| r.7.0)
}

const SEGS: &[&str] = &["a", "b", "ab", ""];

fn segment() -> impl Strategy<Value = &'static str> {
    prop::sample::select(SEGS)
}

fn route() -> impl Strategy<Value = R> {
    let path = prop::collection::vec((segment(), any::<bool>()), 0..4);
    let kind = 0u8..4;
    let hosts = prop::collection::vec(
        prop::sample::select(&["a.com", "B.a.com", "x.b.a.com", "*.a.com", "*.b.a.com", "*"][..]),
        0..3,
    );
    let methods = prop::collection::vec(prop::sample::select(&["GET", "POST"][..]), 0..2);
    let headers = prop::collection::vec(
        prop::sample::select(&[("x-a", None), ("X-A", Some("1")), ("x-b", Some("2"))][..]),
        0..3,
    );
    let priority = prop::sample::select(&[0, 0, 0, 1, -1][..]);
    (path, kind, any::<bool>(), hosts, methods, headers, priority).prop_map(
        |(path, kind, slash, hosts, methods, headers, priority)| {
            let mut text = String::new();
            for (i, (seg, param)) in path.iter().enumerate() {
                text.push('/');
                if *param && kind == 1 {
                    text.push_str(&format!("{{p{i}}}"));
                } else {
                    text.push_str(seg);
                }
            }
            let mut r = match kind {
                0 => R::any(),
                1 | 2 => R::path(if text.is_empty() { "/" } else { &text }),
                _ => {
                    if slash || text.is_empty() {
                        text.push('/');
                    }
                    R::prefix(&text)
                }
            };
            for h in hosts {
                r = r.host(h);
            }
            for m in methods {
                r = r.method(m);
            }
            for (name, value) in headers {
                r = r.header(name, value);
            }
            r.priority(priority)
        },
    )
}

fn request() -> impl Strategy<Value = Q> {
    let path = prop::collection::vec(segment(), 0..5);
    let host = prop::sample::select(
        &[None, Some("a.com"), Some("A.COM:8080"), Some("b.a.com"), Some("x.b.a.com"), Some("q.x.b.a.com")][..],
    );
    let method = prop::sample::select(&["GET", "POST", "PUT"][..]);
    let headers =
        prop::collection::vec(prop::sample::select(&[("x-a", "1"), ("X-A", "2"), ("x-b", "2")][..]), 0..3);
    (path, any::<bool>(), host, method, headers, 0u8..20).prop_map(
        |(segs, trailing, host, method, headers, star)| {
            let mut p = String::new();
            for s in &segs {
                p.push('/');
                p.push_str(s);
            }
            if trailing || p.is_empty() {
                p.push('/');
            }
            if star == 0 {
                p = "*".to_owned();
            }
            let mut q = Q::get(&p).method(method);
            if let Some(h) = host {
                q = q.host(h);
            }
            for (n, v) in headers {
                q = q.header(n, v);
            }
            q
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn find_agrees_with_naive_reference(
        routes in prop::collection::vec(route(), 0..12),
        reqs in prop::collection::vec(request(), 1..8),
    ) {
        let cfgs: Vec<RouteConfig> = routes.into_iter().map(|r| r.0).collect();
        let router = Router::compile(&cfgs).map_err(|e| TestCaseError::fail(e.to_string()))?;
        for q in &reqs {
            let path = String::from_utf8_lossy(&q.0.path).into_owned();
            prop_assert_eq!(router.find(&q.0), naive_find(&cfgs, &q.0), "path {} routes {:?}", path, cfgs);
        }
    }
}
