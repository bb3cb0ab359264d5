use portcullis_core::config::{Config, CorsConfig, RouteConfig};
use portcullis_core::pipeline::{Filter, Flow, Method};

use super::CorsFilter;
use crate::testutil::{block_on, cx, request, response, values};

fn route(cors: Option<CorsConfig>) -> RouteConfig {
    let mut r: RouteConfig = toml::from_str("upstream = \"app\"\nprefix = \"/\"\n").expect("route");
    r.cors = cors;
    r
}

fn filter(global: Option<CorsConfig>, routes: Vec<RouteConfig>) -> CorsFilter {
    let cfg = Config { cors: global, routes, ..Config::default() };
    assert!(CorsFilter::is_needed(&cfg));
    CorsFilter::build(&cfg)
}

fn app_only() -> CorsConfig {
    CorsConfig { allow_origins: vec!["https://app.test".into()], ..CorsConfig::default() }
}

#[test]
fn preflight_is_answered_and_actual_responses_get_the_headers() {
    let f = filter(Some(app_only()), vec![route(None)]);
    let mut req =
        request("/x", None, &[("origin", "https://app.test"), ("access-control-request-method", "PUT")]);
    req.method = Method::Options;
    let mut c = cx("10.0.0.1:1");
    c.route = Some(0);
    let Flow::Respond(reply) = block_on(f.on_request(&mut req, &mut c)) else { panic!("preflight answered") };
    assert_eq!(reply.status, 204);
    assert_eq!(
        values(&reply.headers, "access-control-allow-methods"),
        ["GET, HEAD, POST, PUT, PATCH, DELETE"]
    );
    let mut resp = response();
    f.on_response(&mut resp, &mut c);
    assert_eq!(values(&resp.headers, "access-control-allow-origin"), ["https://app.test"]);
    assert_eq!(values(&resp.headers, "vary"), ["Origin"]);

    // An actual request from another origin passes without CORS headers.
    let mut req = request("/x", None, &[("origin", "https://evil.test")]);
    let mut c = cx("10.0.0.1:1");
    c.route = Some(0);
    assert!(matches!(block_on(f.on_request(&mut req, &mut c)), Flow::Continue));
    let mut resp = response();
    resp.headers.append("access-control-allow-origin", "*");
    f.on_response(&mut resp, &mut c);
    assert!(values(&resp.headers, "access-control-allow-origin").is_empty(), "the upstream's is removed");
}

#[test]
fn a_route_can_override_or_disable_the_global_policy() {
    let off = CorsConfig { enabled: false, ..CorsConfig::default() };
    let f = filter(Some(app_only()), vec![route(Some(off)), route(None)]);
    let mut c = cx("10.0.0.1:1");
    c.route = Some(0);
    let mut req = request("/x", None, &[("origin", "https://app.test")]);
    assert!(matches!(block_on(f.on_request(&mut req, &mut c)), Flow::Continue));
    let mut resp = response();
    f.on_response(&mut resp, &mut c);
    assert!(resp.headers.is_empty(), "{:?}", resp.headers);
    // No route matched: the global policy applies.
    let mut c = cx("10.0.0.1:1");
    let mut req = request("/nowhere", None, &[("origin", "https://app.test")]);
    assert!(matches!(block_on(f.on_request(&mut req, &mut c)), Flow::Continue));
    let mut resp = response();
    f.on_response(&mut resp, &mut c);
    assert_eq!(values(&resp.headers, "access-control-allow-origin"), ["https://app.test"]);
}
