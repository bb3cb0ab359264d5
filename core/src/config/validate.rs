//! Semantic validation of a deserialized `Config`: every rule the types cannot express.
//!
//! Owns: the cross-field and cross-section rules, reporting every violation as a (key path,
//! message) pair, and filling the resolved fields (`ListenerConfig::addr`, `UpstreamConfig::addrs`,
//! lowercased route hosts). Must not: read files, map paths to lines (that is `load`/`spans`), or
//! build anything the runtime uses. Route rules live in `validate/routes.rs`.

mod auth;
mod cors;
mod dns;
mod edge;
mod health;
mod obs;
mod protocol;
mod quic;
mod ratelimit;
mod redis;
mod routes;
mod tls;
mod upstream;

pub use auth::{IDENTITY_SOURCES, JWT_ALGORITHMS, is_sha256_hex};
pub use health::load_endpoints_file;
pub use ratelimit::SCOPES as RATE_LIMIT_SCOPES;
pub use routes::FRAMING_HEADERS;

use std::collections::{HashMap, HashSet};
use std::net::{SocketAddr, ToSocketAddrs};

use super::cidr::Cidr;
use super::model::{Config, HttpConfig, ListenerConfig, RequestIdConfig, ServerConfig, UpstreamConfig};
use super::model_h2::Http2Config;
use super::spans::KeyPath;
use super::units::Dur;

/// One violation: where and what.
pub(crate) type Issue = (KeyPath, String);

/// Collects violations.
#[derive(Default)]
pub(crate) struct Issues(Vec<Issue>);

impl Issues {
    /// Records a violation at `path`.
    pub(crate) fn push(&mut self, path: KeyPath, message: impl Into<String>) {
        self.0.push((path, message.into()));
    }

    /// Records a violation when a duration is zero.
    pub(crate) fn nonzero(&mut self, path: KeyPath, d: Dur) {
        if d.0.is_zero() {
            self.push(path, "must be greater than zero");
        }
    }
}

/// Checks `config`, fills its resolved fields, and returns every violation (empty = valid).
pub(crate) fn validate(config: &mut Config) -> Vec<Issue> {
    let root = KeyPath::root();
    let mut out = Issues::default();
    server(&config.server, &root.key("server"), &mut out);
    listeners(&mut config.listeners, &root.key("listeners"), &mut out);
    http(&config.http, &root.key("http"), &mut out);
    http2(&config.http2, &root.key("http2"), &mut out);
    request_id(&config.request_id, &root.key("request_id"), &mut out);
    let proxies = root.key("forwarded").key("trusted_proxies");
    for (i, entry) in config.forwarded.trusted_proxies.iter().enumerate() {
        if let Err(reason) = Cidr::parse(entry) {
            out.push(proxies.index(i), format!("invalid trusted proxy {entry:?}: {reason}"));
        }
    }
    let names = upstreams(&mut config.upstreams, &root.key("upstreams"), &mut out);
    routes::check(&mut config.routes, &names, &root.key("routes"), &mut out);
    for (i, r) in config.routes.iter().enumerate() {
        upstream::check_retry(&r.retry, &root.key("routes").index(i).key("retry"), &mut out);
        let t = root.key("routes").index(i).key("try_timeout");
        upstream::check_try_timeout(r.try_timeout, r.timeout, &t, &mut out);
    }
    obs::check(config, &root, &mut out);
    auth::check(&config.auth, &config.routes, &root, &mut out);
    cors::check(config, &root, &mut out);
    ratelimit::check(
        &config.ratelimit,
        &config.routes,
        &root.key("ratelimit"),
        &root.key("routes"),
        &mut out,
    );
    out.0
}

/// `[server]`.
fn server(s: &ServerConfig, path: &KeyPath, out: &mut Issues) {
    if !(2..=32768).contains(&s.ring_entries) || !s.ring_entries.is_power_of_two() {
        out.push(
            path.key("ring_entries"),
            format!(
                "ring_entries {} must be a power of two from 2 to 32768 (the runtime raises values below 256 to 256)",
                s.ring_entries
            ),
        );
    }
    out.nonzero(path.key("drain_timeout"), s.drain_timeout);
    out.nonzero(path.key("watch_interval"), s.watch_interval);
}

/// `[[listeners]]`: at least one, unique names, parseable and distinct binds.
fn listeners(list: &mut [ListenerConfig], path: &KeyPath, out: &mut Issues) {
    if list.is_empty() {
        out.push(
            path.clone(),
            "at least one listener is required, e.g. [[listeners]] bind = \"0.0.0.0:8080\"",
        );
    }
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut binds: HashMap<SocketAddr, usize> = HashMap::new();
    for (i, l) in list.iter_mut().enumerate() {
        let here = path.index(i);
        if let Some(t) = l.tls.as_mut() {
            tls::check(t, &here.key("tls"), out);
            if l.h2c {
                out.push(
                    here.key("h2c"),
                    "h2c is for plain listeners; a TLS listener offers HTTP/2 with alpn = [\"h2\", \"http/1.1\"]",
                );
            }
        }
        quic::check(l, &here, out);
        if l.name.trim().is_empty() {
            out.push(here.key("name"), "listener name must not be empty");
        } else if let Some(&first) = names.get(&l.name) {
            out.push(
                here.key("name"),
                format!(
                    "duplicate listener name {:?} (also listeners[{first}]); give each listener its own name",
                    l.name
                ),
            );
        } else {
            names.insert(l.name.clone(), i);
        }
        match l.bind.parse::<SocketAddr>() {
            Ok(addr) => {
                l.addr = Some(addr);
                if addr.port() != 0 {
                    if let Some(&first) = binds.get(&addr) {
                        out.push(
                            here.key("bind"),
                            format!("address {addr} is already bound by listeners[{first}]"),
                        );
                    } else {
                        binds.insert(addr, i);
                    }
                }
            }
            Err(_) => {
                l.addr = None;
                out.push(
                    here.key("bind"),
                    format!(
                        "bind {:?} is not an IP address and port like \"0.0.0.0:8080\" or \"[::]:8080\"",
                        l.bind
                    ),
                );
            }
        }
    }
}

/// `[http]`: limits in range, timeouts non-zero.
fn http(h: &HttpConfig, path: &KeyPath, out: &mut Issues) {
    if !(1..=512).contains(&h.max_headers) {
        out.push(path.key("max_headers"), format!("max_headers {} must be from 1 to 512", h.max_headers));
    }
    if !(1024..=1024 * 1024).contains(&h.max_header_bytes.0) {
        out.push(
            path.key("max_header_bytes"),
            format!("max_header_bytes {} must be from 1KiB (1024) to 1MiB (1048576)", h.max_header_bytes.0),
        );
    }
    out.nonzero(path.key("header_timeout"), h.header_timeout);
    out.nonzero(path.key("idle_timeout"), h.idle_timeout);
    out.nonzero(path.key("body_timeout"), h.body_timeout);
    out.nonzero(path.key("websocket_idle_timeout"), h.websocket_idle_timeout);
}

/// `[http2]`: limits in the ranges HTTP/2 allows.
fn http2(h: &Http2Config, path: &KeyPath, out: &mut Issues) {
    if h.max_concurrent_streams == 0 {
        out.push(path.key("max_concurrent_streams"), "max_concurrent_streams must be at least 1");
    }
    if !(1024..=1024 * 1024).contains(&h.max_header_list_size.0) {
        out.push(path.key("max_header_list_size"), "max_header_list_size must be from 1KiB to 1MiB");
    }
    for (key, v) in [
        ("initial_stream_window", h.initial_stream_window),
        ("initial_connection_window", h.initial_connection_window),
    ] {
        if !(65_535..=(1 << 31) - 1).contains(&v.0) {
            out.push(path.key(key), format!("{key} must be from 65535 bytes to 2GiB - 1"));
        }
    }
    for (key, v) in [
        ("max_resets_per_second", h.max_resets_per_second),
        ("max_pings_per_second", h.max_pings_per_second),
        ("max_settings_per_second", h.max_settings_per_second),
        ("max_continuation_frames", h.max_continuation_frames),
    ] {
        if v == 0 {
            out.push(path.key(key), format!("{key} must be at least 1"));
        }
    }
}

/// `[request_id]`: a token header name and a sane length limit.
fn request_id(r: &RequestIdConfig, path: &KeyPath, out: &mut Issues) {
    if !is_token(&r.header) {
        out.push(path.key("header"), format!("header {:?} is not a valid header name", r.header));
    }
    if !(1..=1024).contains(&r.max_length) {
        out.push(path.key("max_length"), format!("max_length {} must be from 1 to 1024", r.max_length));
    }
}

/// `[[upstreams]]`: unique names, resolvable endpoints. Returns the defined names.
fn upstreams(list: &mut [UpstreamConfig], path: &KeyPath, out: &mut Issues) -> HashSet<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, u) in list.iter_mut().enumerate() {
        let here = path.index(i);
        if u.name.trim().is_empty() {
            out.push(here.key("name"), "upstream name must not be empty");
        } else if let Some(&first) = seen.get(&u.name) {
            out.push(
                here.key("name"),
                format!("duplicate upstream name {:?} (also upstreams[{first}])", u.name),
            );
        } else {
            seen.insert(u.name.clone(), i);
        }
        if u.endpoints.is_empty() && u.endpoints_file.is_none() && u.dns.is_none() {
            out.push(
                here.key("endpoints"),
                "an upstream needs at least one endpoint, e.g. [\"127.0.0.1:9000\"], an endpoints_file or dns",
            );
        }
        u.addrs.clear();
        u.weights.clear();
        for (j, ep) in u.endpoints.iter().enumerate() {
            match resolve_endpoint(ep.address()) {
                Ok(addrs) => {
                    u.weights.extend(addrs.iter().map(|_| ep.weight()));
                    u.addrs.extend(addrs);
                }
                Err(msg) => out.push(here.key("endpoints").index(j), msg),
            }
        }
        health::check(u, &here, out);
        upstream::check(u, &here, out);
        if let Some(d) = &u.dns {
            dns::check(d, &here.key("dns"), out);
        }
        protocol::check(u, &here, out);
        if let Some(tls) = &u.tls {
            edge::check_tls(tls, &here.key("tls"), out);
        }
        out.nonzero(here.key("connect_timeout"), u.connect_timeout);
        out.nonzero(here.key("pool").key("idle_timeout"), u.pool.idle_timeout);
    }
    seen.into_keys().collect()
}

/// Resolves a `host:port` endpoint to its addresses (load time, and endpoints file changes).
pub fn resolve_endpoint(ep: &str) -> Result<Vec<SocketAddr>, String> {
    let shape = || format!("endpoint {ep:?} must be host:port, like \"10.0.0.5:8080\" or \"[::1]:8080\"");
    let (host, port) = ep.rsplit_once(':').ok_or_else(shape)?;
    let port: u16 = port.parse().map_err(|_| shape())?;
    if host.is_empty() || port == 0 || ep.trim() != ep {
        return Err(shape());
    }
    match ep.to_socket_addrs() {
        Ok(addrs) => {
            let addrs: Vec<SocketAddr> = addrs.collect();
            if addrs.is_empty() { Err(format!("endpoint {ep:?} resolves to no address")) } else { Ok(addrs) }
        }
        Err(e) => Err(format!("cannot resolve endpoint {ep:?}: {e}")),
    }
}

/// True for a non-empty RFC 9110 token (header names, methods).
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// True for `host:port` with a non-empty host and a port in 1..=65535 (Redis addresses).
pub(crate) fn is_host_port(addr: &str) -> bool {
    addr.rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0))
}

/// True when a header value holds no control characters other than HTAB (so no CR, LF or NUL).
pub(crate) fn is_field_value(s: &str) -> bool {
    s.bytes().all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

#[cfg(test)]
pub(crate) mod tests {
    use crate::config::{Config, load_str};

    /// A valid config of [`BASE_LINES`] lines; tests append to it.
    pub(crate) const BASE: &str = "\
[[listeners]]
bind = \"127.0.0.1:0\"

[[upstreams]]
name = \"app\"
endpoints = [\"127.0.0.1:9000\"]

";
    /// Lines in [`BASE`]; the first appended line is `BASE_LINES + 1`.
    pub(crate) const BASE_LINES: usize = 7;

    /// Loads `BASE` followed by `extra`.
    pub(crate) fn load(extra: &str) -> Result<Config, Vec<(String, Option<usize>, String)>> {
        load_str(&format!("{BASE}{extra}"), "t.toml")
            .map_err(|e| e.0.into_iter().map(|e| (e.path, e.line, e.message)).collect())
    }

    /// Asserts `BASE + extra` fails with exactly one error at `path` on line `BASE_LINES + line`
    /// whose message contains `needle`.
    pub(crate) fn one(extra: &str, path: &str, line: usize, needle: &str) {
        let errs = load(extra).err().unwrap_or_default();
        assert_eq!(errs.len(), 1, "expected one error, got {errs:#?}");
        let (p, l, m) = &errs[0];
        assert_eq!((p.as_str(), *l), (path, Some(BASE_LINES + line)), "{m}");
        assert!(m.contains(needle), "message {m:?} lacks {needle:?}");
    }

    #[test]
    fn base_is_valid() {
        let cfg = load("").expect("base config is valid");
        assert_eq!(cfg.listeners[0].addr, Some("127.0.0.1:0".parse().expect("addr")));
        assert_eq!(cfg.upstreams[0].addrs, vec!["127.0.0.1:9000".parse().expect("addr")]);
    }

    #[test]
    fn needs_a_listener() {
        let text = "[[upstreams]]\nname = \"a\"\nendpoints = [\"127.0.0.1:1\"]\n";
        let errs = load_str(text, "t.toml").expect_err("no listener").0;
        assert_eq!(errs.len(), 1);
        assert_eq!((errs[0].path.as_str(), errs[0].line), ("listeners", Some(1)));
        let errs = load_str("listeners = []\n\n", "t.toml").expect_err("empty").0;
        assert!(errs[0].message.contains("at least one listener"));
    }

    #[test]
    fn listener_bind_must_be_an_address() {
        one(
            "[[listeners]]\nname = \"b\"\nbind = \"localhost:80\"\n",
            "listeners[1].bind",
            3,
            "not an IP address",
        );
        one(
            "[[listeners]]\nname = \"b\"\nbind = \"127.0.0.1\"\n",
            "listeners[1].bind",
            3,
            "not an IP address",
        );
    }

    #[test]
    fn listener_names_unique() {
        // The second listener has no name: the error points at its `[[listeners]]` header.
        one(
            "[[listeners]]\nbind = \"127.0.0.1:0\"\n",
            "listeners[1].name",
            1,
            "duplicate listener name \"default\"",
        );
    }

    #[test]
    fn duplicate_binds() {
        let extra = "[[listeners]]\nname = \"x\"\nbind = \"127.0.0.1:8080\"\n\
                     [[listeners]]\nname = \"y\"\nbind = \"127.0.0.1:8080\"\n";
        one(extra, "listeners[2].bind", 6, "already bound by listeners[1]");
        // Port 0 twice is fine: each gets its own free port.
        assert!(load("[[listeners]]\nname = \"x\"\nbind = \"127.0.0.1:0\"\n").is_ok());
    }

    #[test]
    fn ring_entries_power_of_two() {
        one("[server]\nring_entries = 1000\n", "server.ring_entries", 2, "power of two");
        one("[server]\nring_entries = 65536\n", "server.ring_entries", 2, "power of two");
        one("[server]\nring_entries = 1\n", "server.ring_entries", 2, "power of two");
        assert!(load("[server]\nring_entries = 2\n").is_ok());
        assert!(load("[server]\nring_entries = 32768\n").is_ok());
    }

    #[test]
    fn http_limits() {
        one("[http]\nmax_headers = 0\n", "http.max_headers", 2, "from 1 to 512");
        one("[http]\n\nmax_headers = 513\n", "http.max_headers", 3, "from 1 to 512");
        one("[http]\nmax_header_bytes = \"1023B\"\n", "http.max_header_bytes", 2, "1KiB");
        one("[http]\nmax_header_bytes = \"2MiB\"\n", "http.max_header_bytes", 2, "1MiB");
        assert!(load("[http]\nmax_headers = 512\nmax_header_bytes = \"1MiB\"\n").is_ok());
    }

    #[test]
    fn timeouts_non_zero() {
        one("[http]\nidle_timeout = \"0s\"\n", "http.idle_timeout", 2, "greater than zero");
        one("[server]\ndrain_timeout = \"0ms\"\n", "server.drain_timeout", 2, "greater than zero");
        one(
            "[[upstreams]]\nname = \"b\"\nendpoints = [\"127.0.0.1:1\"]\nconnect_timeout = \"0s\"\n",
            "upstreams[1].connect_timeout",
            4,
            "greater than zero",
        );
        one(
            "[[upstreams]]\nname = \"b\"\nendpoints = [\"127.0.0.1:1\"]\n[upstreams.pool]\nidle_timeout = \"0s\"\n",
            "upstreams[1].pool.idle_timeout",
            5,
            "greater than zero",
        );
    }

    #[test]
    fn upstream_names() {
        one(
            "[[upstreams]]\nname = \"app\"\nendpoints = [\"127.0.0.1:1\"]\n",
            "upstreams[1].name",
            2,
            "duplicate",
        );
        one("[[upstreams]]\nname = \"\"\nendpoints = [\"127.0.0.1:1\"]\n", "upstreams[1].name", 2, "empty");
    }

    #[test]
    fn upstream_endpoints() {
        one(
            "[[upstreams]]\nname = \"b\"\nendpoints = []\n",
            "upstreams[1].endpoints",
            3,
            "at least one endpoint",
        );
        let extra = "[[upstreams]]\nname = \"b\"\nendpoints = [\n  \"127.0.0.1:1\",\n  \"127.0.0.1\",\n]\n";
        one(extra, "upstreams[1].endpoints[1]", 5, "must be host:port");
        one(
            "[[upstreams]]\nname = \"b\"\nendpoints = [\"127.0.0.1:0\"]\n",
            "upstreams[1].endpoints[0]",
            3,
            "host:port",
        );
        let extra =
            "[[upstreams]]\nname = \"b\"\nendpoints = [\"127.0.0.1:1\", \"no-such-host.invalid:80\"]\n";
        one(extra, "upstreams[1].endpoints[1]", 3, "cannot resolve endpoint \"no-such-host.invalid:80\"");
    }

    #[test]
    fn endpoints_resolve_to_every_address() {
        let cfg =
            load("[[upstreams]]\nname = \"b\"\nendpoints = [\"127.0.0.1:1\", \"[::1]:2\"]\n").expect("valid");
        let want: Vec<std::net::SocketAddr> =
            vec!["127.0.0.1:1".parse().expect("addr"), "[::1]:2".parse().expect("addr")];
        assert_eq!(cfg.upstreams[1].addrs, want);
    }

    #[test]
    fn trusted_proxies() {
        let extra = "[forwarded]\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\", \"10.0.0.0/33\", \"proxy\"]\n";
        let errs = load(extra).err().unwrap_or_default();
        let paths: Vec<_> = errs.iter().map(|(p, l, _)| (p.as_str(), *l)).collect();
        assert_eq!(
            paths,
            [
                ("forwarded.trusted_proxies[2]", Some(BASE_LINES + 2)),
                ("forwarded.trusted_proxies[3]", Some(BASE_LINES + 2))
            ]
        );
        assert!(errs[0].2.contains("invalid trusted proxy \"10.0.0.0/33\""), "{}", errs[0].2);
    }

    #[test]
    fn request_id() {
        one("[request_id]\nheader = \"x request id\"\n", "request_id.header", 2, "not a valid header name");
        one("[request_id]\nheader = \"\"\n", "request_id.header", 2, "not a valid header name");
        one("[request_id]\nmax_length = 0\n", "request_id.max_length", 2, "from 1 to 1024");
        one("[request_id]\nmax_length = 1025\n", "request_id.max_length", 2, "from 1 to 1024");
    }
}
