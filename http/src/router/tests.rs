//! Unit tests of the router: one or more per matching and ranking rule, plus compile errors.
//!
//! Owns: the shared test builders (`R`, `Q`) used here and by the property tests. Must not:
//! test anything outside `router`.

use bytes::Bytes;
use portcullis_core::config::{Dur, HeaderMatch, HeaderOps, RouteConfig};
use portcullis_core::pipeline::{Headers, Method, RequestHead, Version};

use super::{Router, RouterError};

/// Route builder.
#[derive(Clone, Debug)]
pub(super) struct R(pub RouteConfig);

impl R {
    fn new(path: Option<&str>, prefix: Option<&str>) -> R {
        R(RouteConfig {
            name: None,
            hosts: Vec::new(),
            path: path.map(str::to_owned),
            prefix: prefix.map(str::to_owned),
            methods: Vec::new(),
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
        })
    }
    /// A route with `path`.
    pub fn path(p: &str) -> R {
        R::new(Some(p), None)
    }
    /// A route with `prefix`.
    pub fn prefix(p: &str) -> R {
        R::new(None, Some(p))
    }
    /// A route with no path condition.
    pub fn any() -> R {
        R::new(None, None)
    }
    /// Adds a host.
    pub fn host(mut self, h: &str) -> R {
        self.0.hosts.push(h.to_owned());
        self
    }
    /// Adds a method.
    pub fn method(mut self, m: &str) -> R {
        self.0.methods.push(m.to_owned());
        self
    }
    /// Adds a header condition.
    pub fn header(mut self, name: &str, value: Option<&str>) -> R {
        self.0.headers.push(HeaderMatch { name: name.to_owned(), value: value.map(str::to_owned) });
        self
    }
    /// Sets the priority.
    pub fn priority(mut self, p: i32) -> R {
        self.0.priority = p;
        self
    }
}

/// Request builder.
#[derive(Clone, Debug)]
pub(super) struct Q(pub RequestHead);

impl Q {
    /// A GET for `path` without a host.
    pub fn get(path: &str) -> Q {
        Q(RequestHead {
            method: Method::Get,
            path: Bytes::copy_from_slice(path.as_bytes()),
            query: None,
            version: Version::Http11,
            authority: None,
            headers: Headers::default(),
        })
    }
    /// Sets the method.
    pub fn method(mut self, m: &str) -> Q {
        self.0.method = Method::from_config(m);
        self
    }
    /// Sets the authority (host, optionally with a port).
    pub fn host(mut self, h: &str) -> Q {
        self.0.authority = Some(Bytes::copy_from_slice(h.as_bytes()));
        self
    }
    /// Appends a header field.
    pub fn header(mut self, name: &str, value: &str) -> Q {
        self.0
            .headers
            .append(Bytes::copy_from_slice(name.as_bytes()), Bytes::copy_from_slice(value.as_bytes()));
        self
    }
}

/// Compiles `routes`, panicking on error (tests only).
pub(super) fn compile(routes: Vec<R>) -> Router {
    let cfgs: Vec<RouteConfig> = routes.into_iter().map(|r| r.0).collect();
    Router::compile(&cfgs).expect("routes compile")
}

fn find(router: &Router, q: Q) -> Option<usize> {
    router.find(&q.0)
}

fn compile_err(route: R) -> RouterError {
    match Router::compile(&[route.0]) {
        Ok(_) => panic!("route should not compile"),
        Err(e) => e,
    }
}

#[test]
fn router_is_send_and_sync() {
    fn check<T: Send + Sync + 'static>() {}
    check::<Router>();
}

#[test]
fn empty_router_finds_nothing() {
    let r = compile(vec![]);
    assert!(r.is_empty());
    assert_eq!(find(&r, Q::get("/")), None);
}

#[test]
fn priority_overrides_specificity() {
    let r = compile(vec![R::path("/a/b"), R::prefix("/").priority(5), R::any().priority(-1)]);
    assert_eq!(find(&r, Q::get("/a/b")), Some(1));
    let r = compile(vec![R::path("/a/b").priority(-1), R::any()]);
    assert_eq!(find(&r, Q::get("/a/b")), Some(1));
}

#[test]
fn specificity_exact_template_prefix_catch_all() {
    let routes = || vec![R::any(), R::prefix("/users"), R::path("/users/{id}"), R::path("/users/7")];
    let r = compile(routes());
    assert_eq!(find(&r, Q::get("/users/7")), Some(3));
    assert_eq!(find(&r, Q::get("/users/8")), Some(2));
    assert_eq!(find(&r, Q::get("/users/8/x")), Some(1));
    assert_eq!(find(&r, Q::get("/other")), Some(0));
    // Same answer whatever the file order.
    let r = compile(routes().into_iter().rev().collect());
    assert_eq!(find(&r, Q::get("/users/7")), Some(0));
    assert_eq!(find(&r, Q::get("/users/8")), Some(1));
    assert_eq!(find(&r, Q::get("/users/8/x")), Some(2));
    assert_eq!(find(&r, Q::get("/other")), Some(3));
}

#[test]
fn prefix_matches_on_segment_boundaries() {
    let r = compile(vec![R::prefix("/api")]);
    for hit in ["/api", "/api/", "/api/x", "/api/x/y"] {
        assert_eq!(find(&r, Q::get(hit)), Some(0), "{hit}");
    }
    for miss in ["/apix", "/ap", "/", "/x/api"] {
        assert_eq!(find(&r, Q::get(miss)), None, "{miss}");
    }
    let r = compile(vec![R::prefix("/api/")]);
    for hit in ["/api/", "/api/x", "/api//"] {
        assert_eq!(find(&r, Q::get(hit)), Some(0), "{hit}");
    }
    for miss in ["/api", "/apix", "/"] {
        assert_eq!(find(&r, Q::get(miss)), None, "{miss}");
    }
}

#[test]
fn root_prefix_matches_everything_but_asterisk() {
    let r = compile(vec![R::prefix("/")]);
    for hit in ["/", "/a", "/a/b/", "//"] {
        assert_eq!(find(&r, Q::get(hit)), Some(0), "{hit}");
    }
    assert_eq!(find(&r, Q::get("*").method("OPTIONS")), None);
    let r = compile(vec![R::prefix("/"), R::any()]);
    assert_eq!(find(&r, Q::get("*").method("OPTIONS")), Some(1));
}

#[test]
fn longer_prefix_wins() {
    let r = compile(vec![R::prefix("/"), R::prefix("/api"), R::prefix("/api/"), R::prefix("/api/v1")]);
    assert_eq!(find(&r, Q::get("/x")), Some(0));
    assert_eq!(find(&r, Q::get("/api")), Some(1));
    assert_eq!(find(&r, Q::get("/api/x")), Some(2));
    assert_eq!(find(&r, Q::get("/api/v1")), Some(3));
    assert_eq!(find(&r, Q::get("/api/v1/z")), Some(3));
    assert_eq!(find(&r, Q::get("/api/v10")), Some(2));
}

#[test]
fn exact_paths_distinguish_trailing_slash() {
    let r = compile(vec![R::path("/a"), R::path("/a/"), R::path("/")]);
    assert_eq!(find(&r, Q::get("/a")), Some(0));
    assert_eq!(find(&r, Q::get("/a/")), Some(1));
    assert_eq!(find(&r, Q::get("/")), Some(2));
    assert_eq!(find(&r, Q::get("/a/b")), None);
    assert_eq!(find(&r, Q::get("//")), None);
}

#[test]
fn template_params_match_one_non_empty_segment() {
    let r = compile(vec![R::path("/users/{id}")]);
    assert_eq!(find(&r, Q::get("/users/1")), Some(0));
    assert_eq!(find(&r, Q::get("/users/abc-def")), Some(0));
    for miss in ["/users/", "/users", "/users/1/", "/users/1/x", "/users//"] {
        assert_eq!(find(&r, Q::get(miss)), None, "{miss}");
    }
    let r = compile(vec![R::path("/{a}/{b}")]);
    assert_eq!(find(&r, Q::get("/x/y")), Some(0));
    assert_eq!(find(&r, Q::get("//y")), None);
}

#[test]
fn template_with_more_literal_segments_wins() {
    let r = compile(vec![
        R::path("/{a}/{b}/{c}"),
        R::path("/users/{id}/{c}"),
        R::path("/users/{id}/posts"),
        R::path("/{x}/{y}/posts"),
    ]);
    assert_eq!(find(&r, Q::get("/users/1/posts")), Some(2));
    assert_eq!(find(&r, Q::get("/users/1/likes")), Some(1));
    assert_eq!(find(&r, Q::get("/teams/1/posts")), Some(3));
    assert_eq!(find(&r, Q::get("/teams/1/likes")), Some(0));
}

#[test]
fn template_literal_bytes_break_segment_ties() {
    let r = compile(vec![R::path("/{x}/c"), R::path("/ab/{x}")]);
    assert_eq!(find(&r, Q::get("/ab/c")), Some(1));
}

#[test]
fn backtracks_from_a_dead_literal_branch_into_a_param() {
    let r = compile(vec![R::path("/a/b/c"), R::path("/{x}/b/d")]);
    assert_eq!(find(&r, Q::get("/a/b/d")), Some(1));
    assert_eq!(find(&r, Q::get("/a/b/c")), Some(0));
}

#[test]
fn wildcard_hosts() {
    let r = compile(vec![R::any().host("*.example.com")]);
    for hit in ["a.example.com", "a.b.example.com", "A.Example.COM:8443"] {
        assert_eq!(find(&r, Q::get("/").host(hit)), Some(0), "{hit}");
    }
    for miss in ["example.com", "aexample.com", ".example.com", "example.com.evil", "x.example.org"] {
        assert_eq!(find(&r, Q::get("/").host(miss)), None, "{miss}");
    }
    assert_eq!(find(&r, Q::get("/")), None);
}

#[test]
fn host_rank_exact_beats_wildcard_beats_any() {
    let r = compile(vec![
        R::prefix("/").host("*.example.com"),
        R::prefix("/"),
        R::prefix("/").host("api.example.com"),
        R::prefix("/").host("*.b.example.com"),
    ]);
    assert_eq!(find(&r, Q::get("/x").host("api.example.com")), Some(2));
    assert_eq!(find(&r, Q::get("/x").host("web.example.com")), Some(0));
    assert_eq!(find(&r, Q::get("/x").host("a.b.example.com")), Some(3));
    assert_eq!(find(&r, Q::get("/x").host("other.org")), Some(1));
    assert_eq!(find(&r, Q::get("/x")), Some(1));
}

#[test]
fn path_specificity_beats_host_specificity() {
    let r = compile(vec![R::prefix("/").host("api.example.com"), R::path("/x")]);
    assert_eq!(find(&r, Q::get("/x").host("api.example.com")), Some(1));
    assert_eq!(find(&r, Q::get("/y").host("api.example.com")), Some(0));
}

#[test]
fn multi_host_route_ranks_by_the_host_that_matched() {
    let r =
        compile(vec![R::any().host("*.example.com").host("a.example.com"), R::any().host("b.example.com")]);
    assert_eq!(find(&r, Q::get("/").host("a.example.com")), Some(0));
    assert_eq!(find(&r, Q::get("/").host("b.example.com")), Some(1));
    assert_eq!(find(&r, Q::get("/").host("c.example.com")), Some(0));
}

#[test]
fn host_is_case_insensitive_and_port_is_ignored() {
    let r = compile(vec![R::path("/a").host("API.Example.com"), R::any().host("[::1]")]);
    assert_eq!(find(&r, Q::get("/a").host("api.EXAMPLE.com:8080")), Some(0));
    assert_eq!(find(&r, Q::get("/a").host("api.example.com")), Some(0));
    assert_eq!(find(&r, Q::get("/a").host("api.example.org")), None);
    assert_eq!(find(&r, Q::get("/a")), None);
    assert_eq!(find(&r, Q::get("/z").host("[::1]:443")), Some(1));
}

#[test]
fn star_host_means_any_host() {
    let r = compile(vec![R::any().host("*")]);
    assert_eq!(find(&r, Q::get("/").host("x.org")), Some(0));
    assert_eq!(find(&r, Q::get("/")), Some(0));
}

#[test]
fn method_mismatch_falls_through_to_less_specific_route() {
    let r = compile(vec![
        R::prefix("/"),
        R::path("/a").method("GET").method("HEAD"),
        R::path("/{x}").method("PUT"),
    ]);
    assert_eq!(find(&r, Q::get("/a")), Some(1));
    assert_eq!(find(&r, Q::get("/a").method("HEAD")), Some(1));
    assert_eq!(find(&r, Q::get("/a").method("PUT")), Some(2));
    assert_eq!(find(&r, Q::get("/a").method("POST")), Some(0));
    assert_eq!(find(&r, Q::get("/a").method("get")), Some(0));
}

#[test]
fn extension_methods_match() {
    let r = compile(vec![R::any().method("PURGE")]);
    assert_eq!(find(&r, Q::get("/").method("PURGE")), Some(0));
    assert_eq!(find(&r, Q::get("/")), None);
}

#[test]
fn header_mismatch_falls_through_to_less_specific_route() {
    let r = compile(vec![
        R::prefix("/api"),
        R::path("/api/x").header("X-Canary", Some("1")),
        R::path("/api/x").header("x-debug", None).priority(-1),
    ]);
    assert_eq!(find(&r, Q::get("/api/x").header("x-canary", "1")), Some(1));
    assert_eq!(find(&r, Q::get("/api/x").header("X-CANARY", "2").header("x-canary", "1")), Some(1));
    assert_eq!(find(&r, Q::get("/api/x").header("x-canary", "2")), Some(0));
    assert_eq!(find(&r, Q::get("/api/x").header("x-canary", "1 ")), Some(0));
    assert_eq!(find(&r, Q::get("/api/x")), Some(0));
    // Priority -1 loses even to the less specific prefix route.
    assert_eq!(find(&r, Q::get("/api/x").header("X-Debug", "")), Some(0));
    let r = compile(vec![R::path("/api/x").header("x-debug", None)]);
    assert_eq!(find(&r, Q::get("/api/x").header("X-Debug", "")), Some(0));
    assert_eq!(find(&r, Q::get("/api/x")), None);
}

#[test]
fn all_header_conditions_must_hold() {
    let r = compile(vec![R::any().header("a", Some("1")).header("b", None)]);
    assert_eq!(find(&r, Q::get("/").header("a", "1").header("b", "x")), Some(0));
    assert_eq!(find(&r, Q::get("/").header("a", "1")), None);
    assert_eq!(find(&r, Q::get("/").header("b", "1")), None);
}

#[test]
fn condition_failure_in_host_table_falls_back_to_any_host() {
    let r = compile(vec![R::path("/a").host("x.org").method("POST"), R::prefix("/")]);
    assert_eq!(find(&r, Q::get("/a").host("x.org").method("POST")), Some(0));
    assert_eq!(find(&r, Q::get("/a").host("x.org")), Some(1));
}

#[test]
fn more_conditions_beat_fewer() {
    let r = compile(vec![
        R::path("/a"),
        R::path("/a").method("GET"),
        R::path("/a").method("GET").header("x", None),
        R::path("/a").header("x", None).header("y", None).method("GET"),
    ]);
    assert_eq!(find(&r, Q::get("/a").header("x", "").header("y", "")), Some(3));
    assert_eq!(find(&r, Q::get("/a").header("x", "")), Some(2));
    assert_eq!(find(&r, Q::get("/a")), Some(1));
    assert_eq!(find(&r, Q::get("/a").method("POST")), Some(0));
}

#[test]
fn host_rank_comes_before_conditions() {
    let r = compile(vec![R::any().method("GET").header("x", None), R::any().host("a.org")]);
    assert_eq!(find(&r, Q::get("/").host("a.org").header("x", "")), Some(1));
}

#[test]
fn ties_go_to_the_earlier_route() {
    let r = compile(vec![R::prefix("/a"), R::prefix("/a"), R::path("/b/{x}"), R::path("/b/{y}")]);
    assert_eq!(find(&r, Q::get("/a/1")), Some(0));
    assert_eq!(find(&r, Q::get("/b/1")), Some(2));
    let r = compile(vec![R::any().host("a.org"), R::any().host("A.ORG")]);
    assert_eq!(find(&r, Q::get("/").host("a.org")), Some(0));
}

#[test]
fn many_routes_each_find_their_own() {
    let mut routes = Vec::new();
    for i in 0..1000 {
        routes.push(match i % 4 {
            0 => R::prefix(&format!("/p{i}")),
            1 => R::path(&format!("/svc{i}/users/{{id}}")),
            2 => R::path(&format!("/exact/{i}")),
            _ => R::prefix("/h").host(&format!("h{i}.example.com")),
        });
    }
    let r = compile(routes);
    assert_eq!(r.len(), 1000);
    for i in 0..1000 {
        let q = match i % 4 {
            0 => Q::get(&format!("/p{i}/deep/er")),
            1 => Q::get(&format!("/svc{i}/users/42")),
            2 => Q::get(&format!("/exact/{i}")),
            _ => Q::get("/h/x").host(&format!("H{i}.example.com:80")),
        };
        assert_eq!(find(&r, q), Some(i), "route {i}");
    }
    assert_eq!(find(&r, Q::get("/svc1/users")), None);
    assert_eq!(find(&r, Q::get("/h/x").host("h0.example.com")), None);
}

#[test]
fn hostile_inputs_do_not_panic() {
    let r = compile(vec![R::path("/{a}/{b}"), R::prefix("/a").host("*.x.org")]);
    let long_host = "a.".repeat(400) + "x.org";
    assert_eq!(find(&r, Q::get("/a").host(&long_host)), None);
    let deep = "/a".repeat(5000);
    assert_eq!(find(&r, Q::get(&deep)), None);
    assert_eq!(find(&r, Q::get("")), None);
    assert_eq!(find(&r, Q::get("/a").host("")), None);
    assert_eq!(find(&r, Q::get("/a").host("...x.org")), Some(1));
}

#[test]
fn compile_rejects_invalid_routes() {
    let mut both = R::path("/a");
    both.0.prefix = Some("/b".to_owned());
    assert!(matches!(compile_err(both), RouterError::PathAndPrefix { .. }));
    for p in ["a", "", "/a{b}", "/{}", "/{a}/{a}", "/{a", "/a}/{b}", "/x?y"] {
        assert!(matches!(compile_err(R::path(p)), RouterError::BadPath { .. }), "{p}");
    }
    for p in ["api", "/{a}", "/a b"] {
        assert!(matches!(compile_err(R::prefix(p)), RouterError::BadPrefix { .. }), "{p}");
    }
    for h in ["", "*.", "*example.com", "a.*.com", "*.*.com", "a.com:80", "a b.com", &"a".repeat(256)] {
        assert!(matches!(compile_err(R::any().host(h)), RouterError::BadHost { .. }), "{h}");
    }
    for m in ["", "G ET"] {
        assert!(matches!(compile_err(R::any().method(m)), RouterError::BadMethod { .. }), "{m}");
    }
    let e = compile_err(R::any().header("", None));
    assert!(matches!(e, RouterError::BadHeaderName { .. }));
    let deep = "/a".repeat(200);
    assert!(matches!(compile_err(R::path(&deep)), RouterError::BadPath { .. }));
    let mut named = R::path("nope");
    named.0.name = Some("users".to_owned());
    let msg = compile_err(named).to_string();
    assert!(msg.contains("users") && msg.contains("must start with `/`"), "{msg}");
}

#[test]
fn exact_path_may_contain_a_lone_closing_brace() {
    let r = compile(vec![R::path("/a}b")]);
    assert_eq!(find(&r, Q::get("/a}b")), Some(0));
}
