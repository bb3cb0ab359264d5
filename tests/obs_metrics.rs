//! `/metrics` on the admin listener, scraped after real requests through the real binary and
//! parsed by a real Prometheus text-format parser.

mod common;

use std::time::{Duration, Instant};

use common::{Client, Gateway, LONG, Metrics, Upstream, admin, closed_port, config, get, request};

const TOKEN: &str = "metrics-token-0123456789";

fn gateway(app: std::net::SocketAddr, extra: &str) -> Gateway {
    let rest = format!(
        "[admin]\nbind = \"127.0.0.1:0\"\ntoken = \"{TOKEN}\"\n\n{extra}\n\
         [[upstreams]]\nname = \"app\"\nendpoints = [\"{app}\"]\n\
         [[upstreams]]\nname = \"down\"\nendpoints = [\"{down}\"]\n\
         [[routes]]\nname = \"users\"\npath = \"/users/{{id}}\"\nupstream = \"app\"\n\
         [[routes]]\nname = \"broken\"\npath = \"/broken\"\nupstream = \"down\"\n",
        down = closed_port()
    );
    Gateway::start(&config("", &rest))
}

/// Scrapes until `check` holds (gauges are published every 250 ms) or panics after `LONG`.
fn scrape_until(addr: std::net::SocketAddr, what: &str, check: impl Fn(&Metrics) -> bool) -> Metrics {
    let deadline = Instant::now() + LONG;
    loop {
        let m = Metrics::scrape(addr, Some(TOKEN));
        if check(&m) {
            return m;
        }
        assert!(Instant::now() < deadline, "{what} never held; last scrape:\n{}", m.text);
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn request_metrics_by_route_template_method_status_and_protocol() {
    let app = Upstream::echo("app");
    let gw = gateway(app.addr, "");
    let admin_addr = gw.admin.expect("admin address printed");
    for id in 1..=3 {
        assert_eq!(get(gw.addr, &format!("/users/{id}?secret=x")).status, 200);
    }
    let post = request(gw.addr, b"POST /users/9 HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello");
    assert_eq!(post.status, 200);
    let http10 = request(gw.addr, b"GET /users/4 HTTP/1.0\r\nHost: t\r\n\r\n");
    assert_eq!(http10.status, 200);
    get(gw.addr, "/nope").assert_routed_error(404, "route_not_found");
    get(gw.addr, "/nope/again").assert_routed_error(404, "route_not_found");
    get(gw.addr, "/broken").assert_routed_error(502, "upstream_connect_failed");

    // The log phase runs after the response is written: wait until all 8 are recorded.
    let m =
        scrape_until(admin_addr, "8 requests recorded", |m| m.value("portcullis_requests_total", &[]) == 8.0);
    let users = [("route", "users"), ("upstream", "app")];
    let req = "portcullis_requests_total";
    let cell = |method, class, proto| {
        let mut l = users.to_vec();
        l.extend([("method", method), ("status_class", class), ("protocol", proto)]);
        m.value(req, &l)
    };
    assert_eq!(cell("GET", "2xx", "http/1.1"), 3.0, "{}", m.text);
    assert_eq!(cell("GET", "2xx", "http/1.0"), 1.0);
    assert_eq!(cell("POST", "2xx", "http/1.1"), 1.0);
    assert_eq!(m.value(req, &[("route", "_unmatched"), ("status_class", "4xx")]), 2.0);
    assert_eq!(m.value(req, &[("route", "broken"), ("upstream", "down"), ("status_class", "5xx")]), 1.0);
    // Labels carry route names, never raw paths.
    for s in &m.scrape.samples {
        if let Some(route) = s.labels.get("route") {
            assert!(!route.contains('/'), "raw path in a label: {route}");
        }
    }
    assert!(!m.text.contains("secret"), "no query in any label");
    assert_eq!(m.value("portcullis_request_body_bytes_total", &users), 5.0);
    assert!(m.value("portcullis_response_body_bytes_total", &users) > 0.0);

    // Histograms: every users request counted, cumulative buckets ending at +Inf.
    let total = m.histogram("portcullis_request_duration_seconds", &users);
    assert_eq!(total.last().map(|b| (b.0.is_infinite(), b.1)), Some((true, 5.0)), "{total:?}");
    assert!(total.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1), "cumulative: {total:?}");
    assert_eq!(m.value("portcullis_request_duration_seconds_count", &users), 5.0);
    assert_eq!(m.value("portcullis_upstream_duration_seconds_count", &users), 5.0);
    assert_eq!(m.value("portcullis_gateway_overhead_seconds_count", &users), 5.0);
    assert_eq!(
        m.value("portcullis_upstream_duration_seconds_count", &[("route", "broken")]),
        0.0,
        "no upstream answered the broken route"
    );
    let q = m.summary("portcullis_request_duration_quantile_seconds", &users);
    assert_eq!(q.iter().map(|(q, _)| *q).collect::<Vec<_>>(), vec![0.5, 0.95, 0.99]);
    assert!(q.iter().all(|(_, v)| *v > 0.0 && *v < 30.0), "{q:?}");
    assert!(q.windows(2).all(|w| w[0].1 <= w[1].1), "quantiles ordered: {q:?}");

    // The gateway's own added time: every request, proxied (the upstream answered) or local
    // (404s, and the 502 whose upstream never answered); cumulative fine buckets from 1 µs.
    let added = "portcullis_gateway_added_seconds";
    let count = |l: &[(&str, &str)]| m.value(&format!("{added}_count"), l);
    assert_eq!(count(&[]), 8.0, "{}", m.text);
    assert_eq!(count(&[("protocol", "http/1.1"), ("reply", "proxied")]), 4.0);
    assert_eq!(count(&[("protocol", "http/1.0"), ("reply", "proxied")]), 1.0);
    assert_eq!(count(&[("protocol", "http/1.1"), ("reply", "local")]), 3.0);
    let h = m.histogram(added, &[("protocol", "http/1.1"), ("reply", "proxied")]);
    assert_eq!(h.first().map(|b| b.0), Some(1e-6), "{h:?}");
    assert!(h.iter().filter(|b| b.0 <= 0.01).count() >= 40, "fine buckets up to 10 ms: {h:?}");
    assert!(h.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1), "cumulative: {h:?}");
    assert_eq!(h.last().map(|b| (b.0.is_infinite(), b.1)), Some((true, 4.0)));

    assert_eq!(m.value("portcullis_local_replies_total", &[("code", "route_not_found")]), 2.0);
    assert_eq!(m.value("portcullis_local_replies_total", &[("code", "upstream_connect_failed")]), 1.0);
    assert_eq!(m.value("portcullis_config_generation", &[]), 1.0);
    assert_eq!(m.value("portcullis_ready", &[]), 1.0);
}

#[test]
fn connection_gauges_and_reload_results() {
    let app = Upstream::echo("app");
    let gw = gateway(app.addr, "");
    let admin_addr = gw.admin.expect("admin address printed");
    // Held-open keep-alive connections show up in the per-shard gauge (published every 250 ms).
    let mut clients: Vec<Client> = (0..3).map(|_| Client::connect(gw.addr)).collect();
    for c in &mut clients {
        assert_eq!(c.get("/users/1").status, 200);
    }
    let m = scrape_until(admin_addr, "3 active connections", |m| {
        m.value("portcullis_connections_active", &[("protocol", "http/1")]) == 3.0
    });
    assert_eq!(m.find("portcullis_connections_active", &[]).len(), 6, "per shard and protocol");
    drop(clients);
    scrape_until(admin_addr, "connections closed", |m| m.value("portcullis_connections_active", &[]) == 0.0);

    // A good reload, then a refused one.
    let toml = std::fs::read_to_string(gw.config_path()).expect("config");
    gw.reload(&toml, 2);
    let m = Metrics::scrape(admin_addr, Some(TOKEN));
    assert_eq!(m.value("portcullis_config_generation", &[]), 2.0);
    assert_eq!(m.value("portcullis_config_reloads_total", &[("result", "applied")]), 1.0);
    assert_eq!(m.value("portcullis_config_last_reload_success", &[]), 1.0);
    let mark = gw.log_mark();
    gw.write_config(&format!("{toml}\n[http]\nmax_headers = 0\n"));
    gw.signal("HUP");
    gw.wait_for_log_after(mark, "config reload refused", LONG);
    let m = scrape_until(admin_addr, "refused reload counted", |m| {
        m.value("portcullis_config_reloads_total", &[("result", "refused")]) == 1.0
    });
    assert_eq!(m.value("portcullis_config_last_reload_success", &[]), 0.0);
    assert_eq!(m.value("portcullis_config_generation", &[]), 2.0, "the running generation stays");
    assert!(m.value("portcullis_config_last_reload_timestamp_seconds", &[]) > 1.0e9);
    // Series survive a reload: the counter did not go back.
    assert_eq!(m.value("portcullis_requests_total", &[("route", "users")]), 3.0, "{}", m.text);
}

#[test]
fn metrics_need_the_token_and_can_be_disabled() {
    let app = Upstream::echo("app");
    let gw = gateway(app.addr, "[metrics]\nenabled = false\n");
    let admin_addr = gw.admin.expect("admin address printed");
    let r = admin(admin_addr, "GET", "/metrics", None, b"");
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"portcullis-admin\""));
    assert_eq!(admin(admin_addr, "GET", "/metrics", Some("wrong-token-0123456789"), b"").status, 401);
    assert_eq!(get(gw.addr, "/users/1").status, 200);
    let m = Metrics::scrape(admin_addr, Some(TOKEN));
    assert!(m.find("portcullis_requests_total", &[]).is_empty(), "per-route metrics off");
    assert_eq!(m.value("portcullis_config_generation", &[]), 1.0, "process gauges stay");
}

#[test]
fn rate_limit_hits_are_counted_by_limit() {
    let app = Upstream::echo("app");
    let limits = "[ratelimit.limits.per-ip]\nkey = [\"client_ip\"]\nrate = 1\nper = \"1h\"\nburst = 1\n";
    let rest = format!(
        "[admin]\nbind = \"127.0.0.1:0\"\ntoken = \"{TOKEN}\"\n\n{limits}\n\
         [[upstreams]]\nname = \"app\"\nendpoints = [\"{}\"]\n\
         [[routes]]\nname = \"users\"\npath = \"/users/{{id}}\"\nupstream = \"app\"\nrate_limits = [\"per-ip\"]\n",
        app.addr
    );
    let gw = Gateway::start(&config("", &rest));
    // Two shards, each with its share of the limit: at most 2 of 6 pass, the rest are refused.
    let refused = (0..6).filter(|i| get(gw.addr, &format!("/users/{i}")).status == 429).count();
    assert!(refused >= 4, "{refused} refused");
    // The local reply is counted in the log phase, after the response was written: wait for both.
    let m = scrape_until(gw.admin.expect("admin"), "hits counted", |m| {
        m.value("portcullis_events_total", &[("event", "rate_limited")]) == refused as f64
            && m.value("portcullis_local_replies_total", &[("code", "rate_limited")]) == refused as f64
    });
    assert_eq!(
        m.value("portcullis_events_total", &[("event", "rate_limited"), ("reason", "per-ip")]),
        refused as f64
    );
    assert_eq!(m.value("portcullis_local_replies_total", &[("code", "rate_limited")]), refused as f64);
}
