//! CORS at the gateway through the real binary, driven by curl against a real upstream:
//! preflights answered without reaching the upstream (204, or 403 JSON), allow-lists for origins
//! (exact and `*.` patterns), methods and headers, credentials, max-age and exposed headers,
//! `Vary: Origin`, the headers on upstream answers and on the gateway's own error replies alike,
//! a route override, and internal response headers stripped.

mod common;

use common::{Gateway, Reply, Upstream, config, response, upstream_toml};

const KEY: &str = "cors-test-key";
const KEY_SHA256: &str = "9983a3284ac5e786d9db0ad219d55fa72aa0361023afbe97ed871ba64caeaf75";

/// A response as curl saw it: status and lowercase header fields.
struct Seen {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Seen {
    fn all(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str()).collect()
    }

    fn one(&self, name: &str) -> Option<&str> {
        let all = self.all(name);
        assert!(all.len() <= 1, "{name} sent {} times: {:?}", all.len(), self.headers);
        all.first().copied()
    }

    fn has_no_cors(&self) {
        assert!(
            !self.headers.iter().any(|(n, _)| n.starts_with("access-control-")),
            "unexpected CORS headers: {:?}",
            self.headers
        );
    }
}

fn curl(gw: &Gateway, method: &str, path: &str, headers: &[(&str, &str)]) -> Seen {
    let url = format!("http://{}{path}", gw.addr);
    let mut args: Vec<String> = vec!["-s".into(), "-i".into(), "-X".into(), method.into(), url];
    for (n, v) in headers {
        args.push("-H".into());
        args.push(format!("{n}: {v}"));
    }
    let out = std::process::Command::new("curl").args(&args).output().expect("run curl (the suite needs it)");
    assert!(out.status.success(), "curl {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("a response head");
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).expect("status");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Seen { status, headers, body: body.to_owned() }
}

fn gateway(up: &Upstream) -> Gateway {
    Gateway::start(&config(
        "",
        &format!(
            "{}\n[cors]\nallow_origins = [\"https://app.example.com\", \"https://*.example.org\"]\n\
             allow_methods = [\"GET\", \"POST\", \"PUT\"]\nallow_headers = [\"content-type\", \"x-api-key\"]\n\
             expose_headers = [\"x-request-id\", \"x-upstream\"]\nallow_credentials = true\nmax_age = \"10m\"\n\
             [response]\nstrip_headers = [\"server\", \"x-powered-by\", \"x-internal-*\"]\n\
             [auth.api_keys]\nkeys = [{{ sha256 = \"{KEY_SHA256}\", consumer = \"web\" }}]\n\
             [[routes]]\nprefix = \"/api\"\nupstream = \"app\"\n\
             [[routes]]\nprefix = \"/public\"\nupstream = \"app\"\nauth = \"none\"\n\
             cors = {{ allow_origins = [\"*\"] }}\n\
             [[routes]]\nprefix = \"/plain\"\nupstream = \"app\"\nauth = \"none\"\ncors = {{ enabled = false }}\n",
            upstream_toml("app", up.addr),
        ),
    ))
}

fn leaky_upstream() -> Upstream {
    Upstream::start(|_| {
        Reply::Raw(response(
            200,
            "OK",
            &[
                ("Content-Type", "text/plain"),
                ("X-Upstream", "app"),
                ("Server", "leaky/1.0"),
                ("X-Powered-By", "php"),
                ("X-Internal-Trace", "node-7"),
                ("Access-Control-Allow-Origin", "*"),
            ],
            b"hello",
        ))
    })
}

#[test]
fn preflights_are_answered_at_the_gateway() {
    let up = leaky_upstream();
    let gw = gateway(&up);
    let origin = ("Origin", "https://app.example.com");

    // Allowed: 204 with the allow-lists, no credential needed, the upstream never sees it.
    let r = curl(
        &gw,
        "OPTIONS",
        "/api/items",
        &[
            origin,
            ("Access-Control-Request-Method", "PUT"),
            ("Access-Control-Request-Headers", "Content-Type, X-Api-Key"),
        ],
    );
    assert_eq!(r.status, 204, "{:?}", r.headers);
    assert_eq!(r.one("access-control-allow-origin"), Some("https://app.example.com"));
    assert_eq!(r.one("access-control-allow-methods"), Some("GET, POST, PUT"));
    assert_eq!(r.one("access-control-allow-headers"), Some("Content-Type, X-Api-Key"));
    assert_eq!(r.one("access-control-allow-credentials"), Some("true"));
    assert_eq!(r.one("access-control-max-age"), Some("600"));
    assert!(r.all("vary").contains(&"Origin"));
    assert!(r.one("content-length").is_none() && r.body.is_empty(), "204 has no body: {:?}", r.headers);
    // A pattern origin.
    let r = curl(
        &gw,
        "OPTIONS",
        "/api/items",
        &[("Origin", "https://shop.eu.example.org"), ("Access-Control-Request-Method", "GET")],
    );
    assert_eq!(r.status, 204);
    assert_eq!(r.one("access-control-allow-origin"), Some("https://shop.eu.example.org"));

    // Refused: disallowed origin, method or header: 403 JSON, no CORS headers.
    for (o, m, h, msg) in [
        ("https://evil.test", "GET", "", "origin not allowed"),
        ("https://example.org", "GET", "", "origin not allowed"),
        ("https://app.example.com", "DELETE", "", "method not allowed"),
        ("https://app.example.com", "GET", "x-secret", "request header not allowed"),
    ] {
        let r = curl(
            &gw,
            "OPTIONS",
            "/api/items",
            &[("Origin", o), ("Access-Control-Request-Method", m), ("Access-Control-Request-Headers", h)],
        );
        assert_eq!(r.status, 403, "{o} {m} {h}");
        r.has_no_cors();
        let body: serde_json::Value = serde_json::from_str(&r.body).expect("JSON error body");
        assert_eq!(body["error"]["code"], "cors_forbidden");
        assert!(body["error"]["message"].as_str().is_some_and(|s| s.starts_with(msg)), "{body}");
    }
    assert_eq!(up.requests(), 0, "no preflight reached the upstream");
}

#[test]
fn responses_carry_cors_headers_uniformly_and_lose_internal_headers() {
    let up = leaky_upstream();
    let gw = gateway(&up);
    let origin = ("Origin", "https://app.example.com");
    let key = ("X-Api-Key", KEY);

    // An upstream answer: the gateway's CORS headers replace the upstream's; internal headers gone.
    let r = curl(&gw, "GET", "/api/items", &[origin, key]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, "hello");
    assert_eq!(r.one("access-control-allow-origin"), Some("https://app.example.com"));
    assert_eq!(r.one("access-control-allow-credentials"), Some("true"));
    assert_eq!(r.one("access-control-expose-headers"), Some("x-request-id, x-upstream"));
    assert!(r.all("vary").contains(&"Origin"));
    for gone in ["server", "x-powered-by", "x-internal-trace"] {
        assert!(r.one(gone).is_none(), "{gone} reached the client");
    }
    assert_eq!(r.one("x-upstream"), Some("app"));

    // The gateway's own error replies: 401 (no key) and 404 (no route) carry them too.
    let r = curl(&gw, "GET", "/api/items", &[origin]);
    assert_eq!(r.status, 401);
    assert_eq!(r.one("access-control-allow-origin"), Some("https://app.example.com"));
    assert_eq!(r.one("access-control-allow-credentials"), Some("true"));
    let r = curl(&gw, "GET", "/nowhere", &[origin, key]);
    assert_eq!(r.status, 404);
    assert_eq!(r.one("access-control-allow-origin"), Some("https://app.example.com"));

    // A disallowed origin gets no CORS headers (the upstream's are removed too), but Vary.
    let r = curl(&gw, "GET", "/api/items", &[("Origin", "https://evil.test"), key]);
    assert_eq!(r.status, 200);
    r.has_no_cors();
    assert!(r.all("vary").contains(&"Origin"));
    // No Origin at all: no CORS headers.
    curl(&gw, "GET", "/api/items", &[key]).has_no_cors();

    // Route override: any origin, no credentials: `*`.
    let r = curl(&gw, "GET", "/public/x", &[("Origin", "https://anyone.test")]);
    assert_eq!(r.status, 200);
    assert_eq!(r.one("access-control-allow-origin"), Some("*"));
    assert!(r.one("access-control-allow-credentials").is_none());
    // CORS off on a route: the upstream's answer passes, internal headers are still stripped.
    let r = curl(&gw, "GET", "/plain/x", &[origin]);
    assert_eq!(r.one("access-control-allow-origin"), Some("*"), "upstream's own header kept");
    assert!(r.one("server").is_none());
}
