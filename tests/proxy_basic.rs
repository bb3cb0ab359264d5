//! Proxying through the real binary: what reaches the upstream, what comes back to the client,
//! routing (path, template, prefix rewrite, method, host) and the 404 for unknown routes.

mod common;

use common::{Client, Gateway, Reply, Upstream, config, get, request, response, upstream_toml};

/// A gateway with one catch-all route to `up`.
fn catch_all(up: &Upstream, route_extra: &str) -> Gateway {
    Gateway::start(&config(
        "",
        &format!(
            "{}\n[[routes]]\nprefix = \"/\"\nupstream = \"app\"\n{route_extra}\n",
            upstream_toml("app", up.addr)
        ),
    ))
}

#[test]
fn status_reason_headers_and_body_are_preserved_byte_exact() {
    let mut body: Vec<u8> = (0u8..=255).collect();
    body.extend_from_slice(b"\r\n\r\nHTTP/1.1 200 OK\r\n\0tail");
    let upstream_resp = response(
        299,
        "Quite Custom  Reason",
        &[
            ("X-MiXeD-CaSe", "Value  with  inner  spaces"),
            ("content-TYPE", "application/x-odd"),
            ("X-Dup", "a"),
            ("X-Dup", "b"),
            ("Set-Cookie", "k=v; Path=/; HttpOnly"),
        ],
        &body,
    );
    let resp_for_up = upstream_resp.clone();
    let up = Upstream::start(move |_| Reply::Raw(resp_for_up.clone()));
    let gw = catch_all(&up, "");

    let mut c = Client::connect(gw.addr);
    let resp = c.request(b"GET /exact HTTP/1.1\r\nHost: test\r\nX-Client-CaSe: KeepMe\r\n\r\n");
    assert_eq!(resp.status, 299);
    assert_eq!(resp.reason, "Quite Custom  Reason");
    assert_eq!(resp.version, "HTTP/1.1");
    assert_eq!(resp.body, body, "body bytes");
    let head = String::from_utf8(resp.raw_head.clone()).expect("utf8 head");
    assert!(head.starts_with("HTTP/1.1 299 Quite Custom  Reason\r\n"), "status line: {head}");
    // Every upstream field arrives with its casing, value and relative order.
    let expected = "X-MiXeD-CaSe: Value  with  inner  spaces\r\ncontent-TYPE: application/x-odd\r\n\
                    X-Dup: a\r\nX-Dup: b\r\nSet-Cookie: k=v; Path=/; HttpOnly\r\n";
    assert!(head.contains(expected), "upstream fields in order and byte-exact:\n{head}");
    assert_eq!(resp.header_all("content-length"), vec![body.len().to_string()]);
    assert!(resp.header("transfer-encoding").is_none());

    // And the request field casing reached the upstream unchanged.
    let seen = up.last();
    let raw = String::from_utf8(seen.raw_head.clone()).expect("utf8");
    assert!(raw.contains("\r\nX-Client-CaSe: KeepMe\r\n"), "request field casing: {raw}");
    assert!(raw.starts_with("GET /exact HTTP/1.1\r\n"), "request line: {raw}");
}

#[test]
fn query_string_and_host_reach_the_upstream_unchanged() {
    let up = Upstream::echo("app");
    let gw = catch_all(&up, "");
    let resp = request(
        gw.addr,
        b"GET /search/a%20b?q=1&r=%2F&empty=&q=2 HTTP/1.1\r\nHost: Api.Example.com:8443\r\n\r\n",
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    let seen = up.last();
    assert_eq!(seen.target, "/search/a%20b?q=1&r=%2F&empty=&q=2");
    assert_eq!(seen.header_all("host"), vec!["Api.Example.com:8443"]);
    assert_eq!(seen.header("x-forwarded-host"), Some("Api.Example.com:8443"));
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));

    // A POST body and a request without a query.
    let resp = request(gw.addr, b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello");
    assert_eq!(resp.status, 200);
    let seen = up.last();
    assert_eq!(
        (seen.method.as_str(), seen.target.as_str(), seen.body.as_slice()),
        ("POST", "/p", &b"hello"[..])
    );
    assert_eq!(seen.header("content-length"), Some("5"));
}

#[test]
fn request_id_is_generated_propagated_and_echoed() {
    let up = Upstream::echo("app");
    let gw = catch_all(&up, "");

    // None sent: one is generated (128 bits of hex), sent upstream and echoed.
    let resp = get(gw.addr, "/a");
    assert_eq!(resp.status, 200);
    let id = resp.header("x-request-id").expect("echoed id").to_owned();
    assert_eq!(id.len(), 32, "generated id {id:?}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "generated id {id:?}");
    assert_eq!(up.last().header_all("x-request-id"), vec![id.as_str()]);

    // Another request gets another id.
    let other = get(gw.addr, "/a");
    assert_ne!(other.header("x-request-id"), Some(id.as_str()));

    // A client id is propagated and echoed as is.
    let resp = request(gw.addr, b"GET /b HTTP/1.1\r\nHost: t\r\nX-Request-Id: client-id-42\r\n\r\n");
    assert_eq!(resp.header_all("x-request-id"), vec!["client-id-42"]);
    assert_eq!(up.last().header_all("x-request-id"), vec!["client-id-42"]);

    // An unacceptable id (too long) is replaced by a generated one.
    let long = "x".repeat(200);
    let resp =
        request(gw.addr, format!("GET /c HTTP/1.1\r\nHost: t\r\nX-Request-Id: {long}\r\n\r\n").as_bytes());
    let replaced = resp.header("x-request-id").expect("id").to_owned();
    assert_eq!(replaced.len(), 32);
    assert_eq!(up.last().header_all("x-request-id"), vec![replaced.as_str()]);
}

#[test]
fn forwarding_headers_from_an_untrusted_client_are_replaced() {
    let up = Upstream::echo("app");
    let gw = catch_all(&up, "");
    let resp = request(
        gw.addr,
        b"GET / HTTP/1.1\r\nHost: site.test\r\nX-Forwarded-For: 6.6.6.6\r\nX-Forwarded-For: 7.7.7.7\r\n\
          X-Real-IP: 6.6.6.6\r\nForwarded: for=6.6.6.6\r\nX-Forwarded-Host: evil.test\r\n\
          X-Forwarded-Proto: https\r\n\r\n",
    );
    assert_eq!(resp.status, 200);
    let seen = up.last();
    assert_eq!(seen.header_all("x-forwarded-for"), vec!["127.0.0.1"], "spoofed XFF stripped");
    assert_eq!(seen.header_all("x-forwarded-host"), vec!["site.test"]);
    assert_eq!(seen.header_all("x-forwarded-proto"), vec!["http"]);
    assert!(seen.header("x-real-ip").is_none(), "X-Real-IP stripped");
    assert!(seen.header("forwarded").is_none(), "Forwarded stripped");
}

#[test]
fn forwarding_headers_from_a_trusted_proxy_are_extended() {
    let up = Upstream::echo("app");
    let gw = Gateway::start(&config(
        "",
        &format!(
            "[forwarded]\ntrusted_proxies = [\"127.0.0.0/8\"]\n\n{}\n[[routes]]\nprefix = \"/\"\nupstream = \"app\"\n",
            upstream_toml("app", up.addr)
        ),
    ));
    let resp = request(gw.addr, b"GET / HTTP/1.1\r\nHost: site.test\r\nX-Forwarded-For: 203.0.113.9\r\n\r\n");
    assert_eq!(resp.status, 200);
    assert_eq!(up.last().header_all("x-forwarded-for"), vec!["203.0.113.9, 127.0.0.1"]);
}

#[test]
fn route_header_edits_apply_to_request_and_response() {
    let up = Upstream::start(|_| {
        Reply::Raw(response(
            200,
            "OK",
            &[("Server", "upstream/1.0"), ("X-Internal", "secret"), ("Cache-Control", "max-age=60")],
            b"ok",
        ))
    });
    let gw = catch_all(
        &up,
        "request_headers = { remove = [\"cookie\", \"x-drop\"], set = { x-env = \"prod\" }, add = { via = \"portcullis\" } }\n\
         response_headers = { remove = [\"server\", \"x-internal\"], set = { cache-control = \"no-store\" }, add = { x-served-by = \"gw\" } }\n",
    );
    let resp = request(
        gw.addr,
        b"GET /x HTTP/1.1\r\nHost: t\r\nCookie: a=b\r\nX-Drop: 1\r\nX-Env: dev\r\nVia: 1.1 client\r\nX-Keep: yes\r\n\r\n",
    );
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, b"ok");
    assert!(resp.header("server").is_none(), "response field removed");
    assert!(resp.header("x-internal").is_none(), "response field removed");
    assert_eq!(resp.header_all("cache-control"), vec!["no-store"], "response field set");
    assert_eq!(resp.header_all("x-served-by"), vec!["gw"], "response field added");

    let seen = up.last();
    assert!(seen.header("cookie").is_none(), "request field removed");
    assert!(seen.header("x-drop").is_none(), "request field removed");
    assert_eq!(seen.header_all("x-env"), vec!["prod"], "request field set (replacing the client's)");
    assert_eq!(seen.header_all("via"), vec!["1.1 client", "portcullis"], "request field added");
    assert_eq!(seen.header("x-keep"), Some("yes"));
}

#[test]
fn prefix_rewrite_replaces_the_prefix_and_keeps_the_query() {
    let up = Upstream::echo("app");
    let gw = Gateway::start(&config(
        "",
        &format!(
            "{}\n[[routes]]\nprefix = \"/v1/users\"\nrewrite_prefix = \"/users\"\nupstream = \"app\"\n\n\
             [[routes]]\nprefix = \"/strip\"\nrewrite_prefix = \"/\"\nupstream = \"app\"\n",
            upstream_toml("app", up.addr)
        ),
    ));
    for (path, want) in [
        ("/v1/users/7?fields=a,b", "/users/7?fields=a,b"),
        ("/v1/users", "/users"),
        ("/v1/users/", "/users/"),
        ("/strip/deep/x?y=1", "/deep/x?y=1"),
        ("/strip", "/"),
    ] {
        let resp = get(gw.addr, path);
        assert_eq!(resp.status, 200, "{path}: {}", resp.text());
        assert_eq!(up.last().target, want, "{path}");
    }
    // Prefixes match on segment boundaries only.
    get(gw.addr, "/v1/usersX").assert_routed_error(404, "route_not_found");
}

#[test]
fn path_template_matches_exactly_one_segment() {
    let up = Upstream::echo("app");
    let gw = Gateway::start(&config(
        "",
        &format!(
            "{}\n[[routes]]\npath = \"/users/{{id}}\"\nupstream = \"app\"\n",
            upstream_toml("app", up.addr)
        ),
    ));
    let resp = get(gw.addr, "/users/42?x=1");
    assert_eq!(resp.status, 200);
    assert_eq!(up.last().target, "/users/42?x=1");
    for miss in ["/users/", "/users", "/users/42/posts", "/user/42"] {
        get(gw.addr, miss).assert_routed_error(404, "route_not_found");
    }
    assert_eq!(up.requests(), 1, "misses never reach the upstream");
}

#[test]
fn method_mismatch_falls_through_to_a_less_specific_route_or_404() {
    let specific = Upstream::echo("specific");
    let general = Upstream::echo("general");
    let gw = Gateway::start(&config(
        "",
        &format!(
            "{}{}\n[[routes]]\npath = \"/api/items\"\nmethods = [\"GET\"]\nupstream = \"specific\"\n\n\
             [[routes]]\nprefix = \"/api\"\nupstream = \"general\"\n\n\
             [[routes]]\npath = \"/only-get\"\nmethods = [\"GET\", \"HEAD\"]\nupstream = \"specific\"\n",
            upstream_toml("specific", specific.addr),
            upstream_toml("general", general.addr)
        ),
    ));
    let resp = get(gw.addr, "/api/items");
    assert_eq!(resp.header("x-upstream"), Some("specific"));
    let resp = request(gw.addr, b"POST /api/items HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi");
    assert_eq!(resp.header("x-upstream"), Some("general"), "POST falls through to the prefix route");
    assert_eq!(general.last().body, b"hi");

    let resp = request(gw.addr, b"DELETE /only-get HTTP/1.1\r\nHost: t\r\n\r\n");
    resp.assert_routed_error(404, "route_not_found");
    let mut c = Client::connect(gw.addr);
    c.send(b"HEAD /only-get HTTP/1.1\r\nHost: t\r\n\r\n");
    let head = c.read_head_response();
    assert_eq!(head.status, 200);
    assert_eq!(specific.last().method, "HEAD");
    // The connection is still usable after a bodiless HEAD response.
    assert_eq!(c.get("/only-get").status, 200);
}

#[test]
fn host_based_routing_ignores_case_and_port() {
    let exact = Upstream::echo("exact");
    let wild = Upstream::echo("wild");
    let gw = Gateway::start(&config(
        "",
        &format!(
            "{}{}\n[[routes]]\nhosts = [\"api.example.com\"]\nprefix = \"/\"\nupstream = \"exact\"\n\n\
             [[routes]]\nhosts = [\"*.example.com\"]\nprefix = \"/\"\nupstream = \"wild\"\n",
            upstream_toml("exact", exact.addr),
            upstream_toml("wild", wild.addr)
        ),
    ));
    let host = |h: &str| request(gw.addr, format!("GET /x HTTP/1.1\r\nHost: {h}\r\n\r\n").as_bytes());
    assert_eq!(host("api.example.com").header("x-upstream"), Some("exact"));
    assert_eq!(host("API.Example.COM:8080").header("x-upstream"), Some("exact"));
    assert_eq!(host("www.example.com").header("x-upstream"), Some("wild"));
    assert_eq!(host("a.b.example.com").header("x-upstream"), Some("wild"));
    host("example.com").assert_routed_error(404, "route_not_found");
    host("example.org").assert_routed_error(404, "route_not_found");
    // An absolute-form target names the host too.
    let resp = request(gw.addr, b"GET http://api.example.com/abs?q=1 HTTP/1.1\r\nHost: other.org\r\n\r\n");
    assert_eq!(resp.header("x-upstream"), Some("exact"));
    assert_eq!(exact.last().target, "/abs?q=1");
}

#[test]
fn unknown_route_is_a_clean_404_json_and_the_connection_stays_usable() {
    let up = Upstream::echo("app");
    let gw = Gateway::start(&config(
        "",
        &format!("{}\n[[routes]]\npath = \"/known\"\nupstream = \"app\"\n", upstream_toml("app", up.addr)),
    ));
    let mut c = Client::connect(gw.addr);
    let resp = c.request(b"GET /nope HTTP/1.1\r\nHost: t\r\nX-Request-Id: trace-404\r\n\r\n");
    let id = resp.assert_routed_error(404, "route_not_found");
    assert_eq!(id, "trace-404");
    assert!(resp.header("connection").is_none(), "a 404 keeps the connection: {:?}", resp.headers);
    // A 404 with a body: the body is discarded and the next request is parsed correctly.
    let resp = c.request(b"POST /nope HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nabcd");
    resp.assert_routed_error(404, "route_not_found");
    let resp = c.get("/known");
    assert_eq!(resp.status, 200);
    assert_eq!(up.requests(), 1, "unknown routes never reach an upstream");
    // HEAD on an unknown route: status and length, no body.
    c.send(b"HEAD /nope HTTP/1.1\r\nHost: t\r\n\r\n");
    let head = c.read_head_response();
    assert_eq!(head.status, 404);
    assert_eq!(c.get("/known").status, 200, "nothing was left on the connection after the HEAD reply");
}
