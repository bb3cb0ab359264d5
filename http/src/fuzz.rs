//! Entry points of the cargo-fuzz targets in `http/fuzz`: each feeds arbitrary bytes to one
//! parser of this crate and asserts what must hold for every input (no panic, nothing consumed
//! beyond the input, results that agree with each other). They live in the crate, compiled and
//! unit-tested with it, so moving a parser keeps its fuzz target building; `http/fuzz` only wraps
//! them, and the tests below replay the committed seed corpora through them.
//!
//! Owns: the fuzzing invariants of the HTTP/1.1 codec, the upstream response parser, the X.509
//! reader and the route patterns. Must not: be called by the gateway.

use std::sync::OnceLock;

use bytes::{Bytes, BytesMut};
use portcullis_core::config::{HeaderMatch, RouteConfig, load_str};
use portcullis_core::pipeline::{Headers, Method, RequestHead, Version};

use crate::h1::chunked::{ChunkedDecoder, Step};
use crate::h1::request::{HeadLimits, parse_request};
use crate::h1::response::{RespBody, parse_response};
use crate::router::Router;
use crate::tls::x509;

/// HTTP/1.1 request head: arbitrary bytes, split in two reads at a point the first byte picks;
/// never panics and never consumes more than it holds.
pub fn h1_request(data: &[u8]) {
    let limits = HeadLimits { max_header_bytes: 8192, max_headers: 64 };
    let split = data.first().copied().unwrap_or(0) as usize % (data.len().max(1));
    let mut buf = BytesMut::from(&data[..split]);
    if let Ok(None) = parse_request(&mut buf, limits, Headers::default()) {
        buf.extend_from_slice(&data[split..]);
        let before = buf.len();
        if let Ok(Some(_)) = parse_request(&mut buf, limits, Headers::default()) {
            assert!(buf.len() <= before);
        }
    }
}

/// Chunked body decoder: decodes or fails cleanly, never yields more data bytes than it was fed.
pub fn h1_chunked(data: &[u8]) {
    let mut dec = ChunkedDecoder::new(4096);
    let mut buf = BytesMut::from(data);
    let mut out = 0usize;
    while let Ok(step) = dec.step(&mut buf) {
        match step {
            Step::Data(d) => out += d.len(),
            Step::NeedMore | Step::End { .. } => break,
        }
    }
    assert!(out <= data.len());
}

/// Upstream response head (the first byte picks HEAD or not and where the bytes split in two
/// reads): never panics; a parsed head consumes at most the bytes given, and a body framed by
/// length comes with exactly one `Content-Length`.
pub fn h1_response(data: &[u8]) {
    let Some((&ctl, data)) = data.split_first() else { return };
    let head_request = ctl & 1 == 1;
    let split = usize::from(ctl >> 1) % (data.len() + 1);
    let mut buf = BytesMut::from(&data[..split]);
    let parsed = match parse_response(&mut buf, 8192, head_request) {
        Ok(None) => {
            buf.extend_from_slice(&data[split..]);
            parse_response(&mut buf, 8192, head_request)
        }
        other => other,
    };
    if let Ok(Some(resp)) = parsed {
        assert!(buf.len() <= data.len());
        if let RespBody::Length(_) = resp.body {
            let values = resp.head.headers.get_all("content-length").count();
            assert_eq!(values, 1, "a length-framed body has one Content-Length");
        }
        if head_request {
            assert_eq!(resp.body, RespBody::None);
        }
    }
}

/// X.509 DER reader: never panics; what it reads out of a certificate formats without panicking
/// (times) and the identities it yields are non-overlapping copies of the input.
pub fn x509(data: &[u8]) {
    if let Ok(info) = x509::parse(data) {
        let _ = x509::format_time(info.not_before);
        let _ = x509::format_time(info.not_after);
        let text: usize = info.dns_names.iter().chain(&info.uris).map(String::len).sum();
        // Lossy UTF-8 may widen a byte to three; anything beyond is invented input.
        assert!(text <= data.len() * 3);
    }
}

/// Route patterns and matching. The input is text, one directive per line (`route`, `host X`,
/// `path X`, `prefix X`, `method X`, `header NAME[=VALUE]`, `priority N`, then requests as
/// `req METHOD HOST PATH`). Checks: compiling never panics; a matched index is a route; a route
/// with only an exact literal path matches a request for that path; and routes the router refuses
/// are refused by the config validator too (it mirrors the router's limits, so a validated config
/// always compiles; the validator runs only then, it is the slow part).
pub fn route_patterns(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (routes, requests) = route_script(&text);
    let router = Router::compile(&routes);
    if router.is_err()
        && let Ok(cfg) = load_str(&routes_toml(&routes), "fuzz.toml")
        && let Err(e) = Router::compile(&cfg.routes)
    {
        panic!("the validator accepted routes the router refuses: {e}");
    }
    if let Ok(router) = &router {
        for req in &requests {
            if let Some(i) = router.find(req) {
                assert!(i < routes.len());
            }
        }
        for r in &routes {
            if let Some(p) = exact_only(r) {
                let req = request("GET", None, p);
                assert!(router.find(&req).is_some(), "exact path {p:?} matched nothing");
            }
        }
    }
}

/// A route with a literal exact path and no other condition (its path, if so).
fn exact_only(r: &RouteConfig) -> Option<&str> {
    let p = r.path.as_deref()?;
    let plain = r.hosts.is_empty() && r.methods.is_empty() && r.headers.is_empty() && r.prefix.is_none();
    (plain && !p.contains(['{', '}'])).then_some(p)
}

/// A valid route taken from a minimal config, to clone (so new fields need no change here).
fn base_route() -> &'static RouteConfig {
    static BASE: OnceLock<RouteConfig> = OnceLock::new();
    BASE.get_or_init(|| {
        let text = "[[listeners]]\nbind = \"127.0.0.1:0\"\n[[upstreams]]\nname = \"up\"\n\
                    endpoints = [\"127.0.0.1:9\"]\n[[routes]]\nupstream = \"up\"\n";
        match load_str(text, "base.toml") {
            Ok(mut cfg) if !cfg.routes.is_empty() => cfg.routes.swap_remove(0),
            other => panic!("the fuzzing base config must load: {other:?}"),
        }
    })
}

/// Reads the route-fuzzing script (see `route_patterns`).
fn route_script(text: &str) -> (Vec<RouteConfig>, Vec<RequestHead>) {
    let mut routes: Vec<RouteConfig> = Vec::new();
    let mut requests = Vec::new();
    for line in text.lines().take(256) {
        let (word, arg) = line.split_once(' ').unwrap_or((line, ""));
        if word == "req" {
            let mut it = arg.splitn(3, ' ');
            let (m, h, p) = (it.next().unwrap_or("GET"), it.next(), it.next().unwrap_or("/"));
            requests.push(request(m, h.filter(|h| *h != "-"), p));
            continue;
        }
        if word == "route" || routes.is_empty() {
            routes.push(base_route().clone());
        }
        let Some(r) = routes.last_mut() else { continue };
        match word {
            "host" => r.hosts.push(arg.to_owned()),
            "path" => r.path = Some(arg.to_owned()),
            "prefix" => r.prefix = Some(arg.to_owned()),
            "method" => r.methods.push(arg.to_owned()),
            "priority" => r.priority = arg.trim().parse().unwrap_or(0),
            "header" => {
                let (name, value) = match arg.split_once('=') {
                    Some((n, v)) => (n, Some(v.to_owned())),
                    None => (arg, None),
                };
                r.headers.push(HeaderMatch { name: name.to_owned(), value });
            }
            _ => {}
        }
    }
    (routes, requests)
}

/// A request as the HTTP/1.1 parser would hand it to the router.
fn request(method: &str, host: Option<&str>, path: &str) -> RequestHead {
    let mut headers = Headers::with_capacity(1);
    if let Some(h) = host {
        headers.append("host", Bytes::copy_from_slice(h.as_bytes()));
    }
    RequestHead {
        method: Method::from_bytes(method.as_bytes(), || Bytes::copy_from_slice(method.as_bytes())),
        path: Bytes::copy_from_slice(path.as_bytes()),
        query: None,
        version: Version::Http11,
        authority: host.map(|h| Bytes::copy_from_slice(h.as_bytes())),
        headers,
    }
}

/// The routes as a config file, for the validator.
fn routes_toml(routes: &[RouteConfig]) -> String {
    let mut out = String::from(
        "[[listeners]]\nbind = \"127.0.0.1:0\"\n[[upstreams]]\nname = \"up\"\nendpoints = [\"127.0.0.1:9\"]\n",
    );
    for r in routes {
        out.push_str("[[routes]]\nupstream = \"up\"\n");
        out.push_str(&format!("priority = {}\n", r.priority));
        let list = |v: &[String]| v.iter().map(|s| toml_string(s)).collect::<Vec<_>>().join(", ");
        out.push_str(&format!("hosts = [{}]\nmethods = [{}]\n", list(&r.hosts), list(&r.methods)));
        if let Some(p) = &r.path {
            out.push_str(&format!("path = {}\n", toml_string(p)));
        }
        if let Some(p) = &r.prefix {
            out.push_str(&format!("prefix = {}\n", toml_string(p)));
        }
        for h in &r.headers {
            out.push_str(&format!("[[routes.headers]]\nname = {}\n", toml_string(&h.name)));
            if let Some(v) = &h.value {
                out.push_str(&format!("value = {}\n", toml_string(v)));
            }
        }
    }
    out
}

/// `s` as a TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs every file of `fuzz/seeds/<target>` through `entry`; returns how many there were.
    fn replay(target: &str, entry: fn(&[u8])) -> usize {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds").join(target);
        let mut n = 0;
        for file in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = file.expect("dir entry").path();
            entry(&std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())));
            n += 1;
        }
        n
    }

    #[test]
    fn committed_seed_corpora_pass_their_invariants() {
        for (target, entry) in [
            ("h1_request", h1_request as fn(&[u8])),
            ("h1_chunked", h1_chunked),
            ("h1_response", h1_response),
            ("x509", x509),
            ("route_patterns", route_patterns),
        ] {
            assert!(replay(target, entry) >= 3, "{target}: too few seeds");
        }
    }

    #[test]
    fn toml_strings_escape_quotes_backslashes_and_controls() {
        assert_eq!(toml_string("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000A\"");
    }
}
