//! Loading a config file: read, parse, deserialize, validate, and place every error on a line.
//!
//! Owns: `load_file`/`load_str`/`load_str_with`, placing build-time errors on lines (`locate`),
//! and the error types they return (`ConfigError`, `ConfigErrors`).
//! Must not: decide what is valid (that is `validate`) or apply a config to a running gateway.

use std::fmt;
use std::path::Path;

use serde::Deserialize;
use toml::de::DeTable;

use super::model::Config;
use super::spans::{KeyPath, SpannedDoc, line_of};
use super::validate::validate;

/// One problem in a config file: where it is and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", Rendered(self))]
pub struct ConfigError {
    /// The file as named by the caller (e.g. `gateway.toml`).
    pub file: String,
    /// Dotted key path, e.g. `routes[3].upstream`; empty for the whole file.
    pub path: String,
    /// 1-based line in the file; `None` when the file could not be read.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

/// Renders `path: message (file:line)`.
struct Rendered<'a>(&'a ConfigError);

impl fmt::Display for Rendered<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.0;
        if !e.path.is_empty() {
            write!(f, "{}: ", e.path)?;
        }
        write!(f, "{} ({}", e.message, e.file)?;
        if let Some(line) = e.line {
            write!(f, ":{line}")?;
        }
        f.write_str(")")
    }
}

/// Every problem found in a config file (never empty), displayed one per line in file order.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", Lines(&self.0))]
pub struct ConfigErrors(
    /// The errors, in file order.
    pub Vec<ConfigError>,
);

/// Renders errors one per line.
struct Lines<'a>(&'a [ConfigError]);

impl fmt::Display for Lines<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl ConfigErrors {
    /// The errors, in file order.
    pub fn errors(&self) -> &[ConfigError] {
        &self.0
    }

    /// Number of errors.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no errors (never the case for a returned `ConfigErrors`).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// Reads, parses and validates the config file at `path` (endpoints are resolved via DNS).
pub fn load_file(path: &Path) -> Result<Config, ConfigErrors> {
    let file = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => load_str(&text, &file),
        Err(e) => Err(ConfigErrors(vec![ConfigError {
            file,
            path: String::new(),
            line: None,
            message: format!("cannot read config file: {e}"),
        }])),
    }
}

/// Parses and validates config `text`; `file` names it in errors.
pub fn load_str(text: &str, file: &str) -> Result<Config, ConfigErrors> {
    load_str_with(text, file, |_| Vec::new())
}

/// Like [`load_str`], and calls `prepare` on the parsed config before it is validated (e.g. to
/// point file names at the copies a config source wrote). `prepare` returns its own problems as
/// `(key path, message)`; they are placed on lines like validation errors.
pub fn load_str_with(
    text: &str,
    file: &str,
    prepare: impl FnOnce(&mut Config) -> Vec<(String, String)>,
) -> Result<Config, ConfigErrors> {
    let error = |path: String, line: usize, message: String| ConfigError {
        file: file.to_owned(),
        path,
        line: Some(line),
        message,
    };
    let (table, syntax) = DeTable::parse_recoverable(text);
    if !syntax.is_empty() {
        // Every syntax error the parser recovered from, not only the first.
        let doc = SpannedDoc::new(text, table);
        let list = syntax
            .iter()
            .map(|e| {
                let span = e.span().unwrap_or(0..0);
                let path =
                    if span.is_empty() { String::new() } else { doc.path_at(span.clone()).to_string() };
                error(path, line_of(text, span.start), e.message().to_owned())
            })
            .collect();
        return Err(finish(file, list));
    }
    let doc = SpannedDoc::new(text, table.clone());
    let mut config = match Config::deserialize(toml::de::Deserializer::from(table)) {
        Ok(config) => config,
        Err(e) => {
            let (path, line) = match e.span() {
                Some(span) => (doc.path_at(span.clone()).to_string(), line_of(text, span.start)),
                None => (String::new(), 1),
            };
            return Err(finish(file, vec![error(path, line, e.message().to_owned())]));
        }
    };
    let prepared = prepare(&mut config);
    if !prepared.is_empty() {
        let list = prepared
            .into_iter()
            .map(|(path, message)| {
                let line = doc.line_of_path(&parse_path(&path).0);
                error(path, line, message)
            })
            .collect();
        return Err(finish(file, list));
    }
    let issues = validate(&mut config);
    if issues.is_empty() {
        return Ok(config);
    }
    let list = issues
        .into_iter()
        .map(|(path, message)| error(path.to_string(), doc.line_of_path(&path), message))
        .collect();
    Err(finish(file, list))
}

/// Places errors found while building a valid config (files read, keys loaded, certificates
/// checked), each `"key.path: reason"` or `"key.path: sub[0]: reason"`, on the line of their key
/// in `text` (the config `file` was read from). An error without a key path points at line 1.
pub fn locate(text: &str, file: &str, errors: impl IntoIterator<Item = String>) -> ConfigErrors {
    let (table, _) = DeTable::parse_recoverable(text);
    let doc = SpannedDoc::new(text, table);
    let list = errors
        .into_iter()
        .map(|raw| {
            let (path, message) = split_path(&raw);
            let line = if path.is_empty() { 1 } else { doc.line_of_path(&parse_path(&path).0) };
            ConfigError { file: file.to_owned(), path, line: Some(line), message }
        })
        .collect();
    finish(file, list)
}

/// Splits `"a.b[0]: c[1]: reason"` into `("a.b[0].c[1]", "reason")`: leading words that read as
/// key paths (letters, digits, `_`, `-`, `.`, `[n]`; no spaces or slashes) each followed by `": "`.
fn split_path(raw: &str) -> (String, String) {
    let mut path = String::new();
    let mut rest = raw;
    while let Some((head, tail)) = rest.split_once(": ") {
        // After the first, only single segments (`keys[0]`): `keys.txt: ...` names a file.
        let allowed: &[u8] = if path.is_empty() { b"_-.[]" } else { b"_-[]" };
        let looks_like_key = head.starts_with(|c: char| c.is_ascii_alphabetic())
            && head.bytes().all(|b| b.is_ascii_alphanumeric() || allowed.contains(&b))
            && parse_path(head).1;
        if !looks_like_key {
            break;
        }
        if !path.is_empty() && !head.starts_with('[') {
            path.push('.');
        }
        path.push_str(head);
        rest = tail;
    }
    (path, rest.to_owned())
}

/// Parses a rendered key path (`routes[3].request_headers.set.x-env`); the bool says whether
/// every segment was understood (the path holds the part that was).
fn parse_path(text: &str) -> (KeyPath, bool) {
    let mut path = KeyPath::root();
    for part in text.split('.') {
        let (key, indexes) = part.split_once('[').map_or((part, ""), |(k, i)| (k, i));
        if key.is_empty() && path.segs().is_empty() {
            return (path, false);
        }
        if !key.is_empty() {
            path = path.key(key);
        }
        if indexes.is_empty() {
            continue;
        }
        for index in format!("[{indexes}").split('[').skip(1) {
            match index.strip_suffix(']').and_then(|n| n.parse().ok()) {
                Some(n) => path = path.index(n),
                None => return (path, false),
            }
        }
    }
    (path, true)
}

/// Orders errors by line (stable, so errors on one line keep validation order).
fn finish(file: &str, mut list: Vec<ConfigError>) -> ConfigErrors {
    if list.is_empty() {
        // A parser that fails must say why; never return an empty error list.
        list.push(ConfigError {
            file: file.to_owned(),
            path: String::new(),
            line: None,
            message: "invalid config".to_owned(),
        });
    }
    list.sort_by_key(|e| e.line.unwrap_or(usize::MAX));
    ConfigErrors(list)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DriverMode, ForwardedMode, Size};

    fn errs(text: &str) -> Vec<ConfigError> {
        load_str(text, "t.toml").expect_err("config must be refused").0
    }

    const OK_TAIL: &str = "\
[[listeners]]
bind = \"127.0.0.1:0\"

[[upstreams]]
name = \"app\"
endpoints = [\"127.0.0.1:9000\"]
";

    #[test]
    fn tls_rules_are_reported_with_their_lines() {
        let text = "[[listeners]]\nbind = \"127.0.0.1:0\"\n[listeners.tls]\nalpn = [\"spdy\"]\n\
                    cipher_suites = [\"TLS_RSA_WITH_RC4\", \"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256\"]\n\
                    [[listeners.tls.certificates]]\ncert = \"a.crt\"\nkey = \"a.key\"\n\
                    server_names = [\"*.example.com\", \"bad name\"]\n\
                    [[listeners.tls.certificates]]\ncert = \"b.crt\"\nkey = \"b.key\"\n\
                    server_names = [\"*.EXAMPLE.com\"]\n";
        let e = errs(text);
        let find = |needle: &str| {
            e.iter()
                .find(|x| x.to_string().contains(needle))
                .unwrap_or_else(|| panic!("no {needle:?} in {e:?}"))
        };
        assert_eq!(find("unknown ALPN protocol \"spdy\"").line, Some(4));
        assert_eq!(find("unknown cipher suite \"TLS_RSA_WITH_RC4\"").line, Some(5));
        assert!(find("at least one TLS 1.3 suite").to_string().contains("cipher_suites"));
        assert_eq!(find("server name \"bad name\" must be a DNS name").line, Some(9));
        assert_eq!(find("is also served by certificates[0]").line, Some(13));
        let ok = "[[listeners]]\nbind = \"127.0.0.1:0\"\n[listeners.tls]\nmin_version = \"1.3\"\n\
                  [[listeners.tls.certificates]]\ncert = \"a.crt\"\nkey = \"a.key\"\n";
        let cfg = load_str(ok, "t.toml").expect("valid TLS listener");
        let tls = cfg.listeners[0].tls.as_ref().expect("tls");
        assert_eq!(tls.min_version, super::super::TlsVersion::Tls13);
        assert_eq!(
            cfg.watched_files(),
            [std::path::PathBuf::from("a.crt"), std::path::PathBuf::from("a.key")]
        );
    }

    #[test]
    fn build_errors_are_placed_on_their_key() {
        let text = "[[listeners]]\nbind = \"127.0.0.1:0\"\n[listeners.tls]\n\
                    [[listeners.tls.certificates]]\ncert = \"a.crt\"\nkey = \"a.key\"\n\
                    [auth]\n[[auth.jwt]]\nname = \"m\"\nkeys = [{ secret_env = \"S\" }]\n";
        let e = locate(
            text,
            "gw.toml",
            [
                "listeners[0].tls.certificates[0].key: cannot read a.key: gone".to_owned(),
                "auth.jwt[0]: keys[0]: environment variable S is not set".to_owned(),
                "auth.api_keys: keys.txt: cannot read".to_owned(),
                "/tmp/x: not a key path: at all".to_owned(),
            ],
        );
        let got: Vec<_> = e.errors().iter().map(|e| (e.path.as_str(), e.line, e.message.as_str())).collect();
        assert_eq!(
            got,
            [
                ("", Some(1), "/tmp/x: not a key path: at all"),
                ("listeners[0].tls.certificates[0].key", Some(6), "cannot read a.key: gone"),
                ("auth.api_keys", Some(7), "keys.txt: cannot read"),
                ("auth.jwt[0].keys[0]", Some(10), "environment variable S is not set"),
            ]
        );
        assert_eq!(
            e.errors()[1].to_string(),
            "listeners[0].tls.certificates[0].key: cannot read a.key: gone (gw.toml:6)"
        );
    }

    #[test]
    fn prepare_runs_before_validation_and_its_errors_have_lines() {
        let text = format!("{OK_TAIL}[[routes]]\nprefix = \"/\"\nupstream = \"app\"\n");
        let cfg = load_str_with(&text, "t.toml", |c| {
            c.upstreams[0].name = "renamed".to_owned();
            Vec::new()
        });
        let e = cfg.expect_err("the route's upstream no longer exists");
        assert_eq!(e.errors()[0].path, "routes[0].upstream");
        let e =
            load_str_with(&text, "t.toml", |_| vec![("upstreams[0].endpoints".to_owned(), "no".to_owned())])
                .expect_err("prepare refused");
        assert_eq!((e.errors()[0].line, e.errors()[0].message.as_str()), (Some(6), "no"));
    }

    #[test]
    fn syntax_error_reports_its_line() {
        let text = format!("[server]\nshards = 2\nwatch_config = tru\n{OK_TAIL}");
        let e = errs(&text);
        assert_eq!(e[0].line, Some(3), "{e:?}");
        assert_eq!(e[0].file, "t.toml");
        assert!(!e[0].message.is_empty());
        let e = errs("[[routes]\nupstream = \"a\"\n");
        assert_eq!(e[0].line, Some(1), "{e:?}");
    }

    #[test]
    fn unknown_key_reports_path_and_line() {
        let text = format!("{OK_TAIL}\n[[routes]]\nupstream = \"app\"\nupstrem = \"app\"\n");
        let e = errs(&text);
        assert_eq!(e.len(), 1);
        assert_eq!((e[0].path.as_str(), e[0].line), ("routes[0].upstrem", Some(10)));
        assert!(e[0].message.contains("unknown field `upstrem`"), "{}", e[0].message);
        let e = errs(&format!("[servr]\nshards = 1\n{OK_TAIL}"));
        assert_eq!((e[0].path.as_str(), e[0].line), ("servr", Some(1)));
    }

    #[test]
    fn missing_required_key_points_at_its_table() {
        let text = format!("{OK_TAIL}\n[[routes]]\nprefix = \"/\"\n\n[[routes]]\nprefix = \"/x\"\n");
        let e = errs(&text);
        assert_eq!((e[0].path.as_str(), e[0].line), ("routes[0]", Some(8)), "{e:?}");
        assert!(e[0].message.contains("missing field `upstream`"));
    }

    #[test]
    fn bad_unit_reports_the_value() {
        let e = errs(&format!("{OK_TAIL}\n[http]\nidle_timeout = \"10 days\"\n"));
        assert_eq!((e[0].path.as_str(), e[0].line), ("http.idle_timeout", Some(9)));
        assert!(e[0].message.contains("unknown duration unit"), "{}", e[0].message);
        let e = errs(&format!("{OK_TAIL}\n[server]\ndriver = \"kqueue\"\n"));
        assert_eq!((e[0].path.as_str(), e[0].line), ("server.driver", Some(9)));
    }

    #[test]
    fn every_semantic_error_is_reported_in_file_order() {
        let text = "\
[server]
ring_entries = 1000

[[listeners]]
bind = \"nope\"

[[upstreams]]
name = \"app\"
endpoints = []

[[routes]]
path = \"/a\"
prefix = \"/b\"
upstream = \"missing\"
methods = [\"get\"]
";
        let e = load_str(text, "gw.toml").expect_err("five errors");
        let got: Vec<_> = e.errors().iter().map(|e| (e.path.as_str(), e.line)).collect();
        assert_eq!(
            got,
            [
                ("server.ring_entries", Some(2)),
                ("listeners[0].bind", Some(5)),
                ("upstreams[0].endpoints", Some(9)),
                ("routes[0].prefix", Some(13)),
                ("routes[0].upstream", Some(14)),
                ("routes[0].methods[0]", Some(15)),
            ]
        );
        let shown = e.to_string();
        assert_eq!(shown.lines().count(), 6, "{shown}");
        assert!(
            shown
                .lines()
                .nth(4)
                .is_some_and(|l| l == "routes[0].upstream: unknown upstream \"missing\" (gw.toml:14)")
        );
    }

    #[test]
    fn full_config_loads_and_resolves() {
        let text = "\
[server]
shards = 2
pin_cpus = false
driver = \"epoll\"
ring_entries = 4096
drain_timeout = \"30s\"
watch_config = false
watch_interval = \"500ms\"

[[listeners]]
name = \"public\"
bind = \"127.0.0.1:8080\"
backlog = 4096

[[listeners]]
name = \"v6\"
bind = \"[::1]:8080\"

[http]
max_header_bytes = \"32KiB\"
max_headers = 64
header_timeout = \"5s\"
idle_timeout = \"2m\"
max_body_bytes = \"1MiB\"
body_timeout = \"30s\"
max_requests_per_connection = 1000

[request_id]
header = \"X-Trace-Id\"
generate = false
max_length = 64
echo = false

[forwarded]
mode = \"forwarded\"
trusted_proxies = [\"10.0.0.0/8\", \"::1\"]

[[upstreams]]
name = \"users\"
endpoints = [\"127.0.0.1:9001\", \"127.0.0.1:9002\"]
connect_timeout = \"1s\"
pool = { max_idle_per_endpoint = 8, idle_timeout = \"30s\", max_requests_per_connection = 100 }

[[routes]]
name = \"users\"
hosts = [\"API.example.com\"]
path = \"/users/{id}\"
methods = [\"GET\"]
headers = [{ name = \"x-tenant\" }]
priority = 5
upstream = \"users\"
timeout = \"5s\"
max_body_bytes = 0
request_headers = { set = { x-env = \"prod\" }, remove = [\"cookie\"] }
response_headers = { add = { x-served-by = \"portcullis\" } }
";
        let cfg = load_str(text, "full.toml").expect("full config is valid");
        assert_eq!(cfg.server.driver, DriverMode::Epoll);
        assert_eq!(cfg.listeners[1].addr, Some("[::1]:8080".parse().expect("addr")));
        assert_eq!(cfg.http.max_header_bytes, Size(32 * 1024));
        assert_eq!(cfg.forwarded.mode, ForwardedMode::Forwarded);
        let want: Vec<std::net::SocketAddr> =
            vec!["127.0.0.1:9001".parse().expect("addr"), "127.0.0.1:9002".parse().expect("addr")];
        assert_eq!(cfg.upstreams[0].addrs, want);
        assert_eq!(cfg.routes[0].hosts, ["api.example.com"]);
        assert_eq!(cfg.routes[0].max_body_bytes, Some(Size(0)));
        assert_eq!(cfg.upstreams[0].pool.max_idle_per_endpoint, 8);
    }

    #[test]
    fn examples_load() {
        for name in ["gateway.toml", "minimal.toml"] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples").join(name);
            let cfg = load_file(&path).unwrap_or_else(|e| panic!("examples/{name} must load:\n{e}"));
            assert!(!cfg.listeners.is_empty() && cfg.listeners.iter().all(|l| l.addr.is_some()));
            assert!(cfg.upstreams.iter().all(|u| !u.addrs.is_empty()));
        }
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/gateway.toml");
        let cfg = load_file(Path::new(path)).expect("gateway example loads");
        assert!(cfg.upstreams.len() >= 2 && cfg.routes.len() >= 4);
    }

    #[test]
    fn load_file_reads_and_names_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("gw.toml");
        std::fs::write(&path, format!("{OK_TAIL}\n[http]\nmax_headers = 0\n")).expect("write");
        let e = load_file(&path).expect_err("invalid");
        assert_eq!(e.0[0].file, path.display().to_string());
        assert_eq!(e.0[0].line, Some(9));
        let missing = dir.path().join("absent.toml");
        let e = load_file(&missing).expect_err("missing file");
        assert_eq!(e.0[0].line, None);
        assert!(e.to_string().starts_with("cannot read config file:"), "{e}");
        assert!(e.to_string().ends_with("absent.toml)"), "{e}");
    }

    /// The names serde accepts after `prefix`, read from the "expected ..." list of its error for
    /// an unknown key or variant `zzz_unknown`.
    fn accepted(prefix: &str, probe: &str) -> Vec<String> {
        let e = errs(&format!("{prefix}{probe}\n"));
        let (_, expected) = e[0].message.split_once("expected").unwrap_or_default();
        let names: Vec<String> = expected.split('`').skip(1).step_by(2).map(str::to_owned).collect();
        assert!(!names.is_empty(), "no names for {prefix:?}: {}", e[0].message);
        names
    }

    #[test]
    fn docs_describe_every_key() {
        let docs = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/config.md"));
        for section in accepted("", "zzz_unknown = 1") {
            assert!(docs.contains(&format!("[{section}]")), "docs/config.md lacks section {section}");
        }
        let tables = [
            "[server]\n",
            "[[listeners]]\n",
            "[[listeners]]\n[listeners.tls]\n",
            "[[listeners]]\n[listeners.tls]\n[[listeners.tls.certificates]]\n",
            "[[listeners]]\n[listeners.http3]\n",
            "[http]\n",
            "[http2]\n",
            "[request_id]\n",
            "[forwarded]\n",
            "[[upstreams]]\n",
            "[[upstreams]]\n[upstreams.pool]\n",
            "[[upstreams]]\n[upstreams.outlier]\n",
            "[[upstreams]]\n[upstreams.circuit]\n",
            "[[upstreams]]\n[upstreams.health_check]\n",
            "[[upstreams]]\n[upstreams.tls]\n",
            "[[upstreams]]\n[upstreams.dns]\n",
            "[[routes]]\n",
            "[[routes]]\n[[routes.headers]]\n",
            "[[routes]]\n[routes.request_headers]\n",
            "[[routes]]\n[routes.retry]\n",
            "[admin]\n",
            "[metrics]\n",
            "[access_log]\n",
            "[tracing]\n",
            "[[routes]]\n[routes.authz]\n",
            "[[routes]]\n[[routes.authz.claims]]\n",
            "[auth]\n",
            "[[auth.jwt]]\n",
            "[[auth.jwt]]\n[[auth.jwt.token_from]]\n",
            "[[auth.jwt]]\n[auth.jwt.jwks_refresh]\n",
            "[[auth.jwt]]\n[[auth.jwt.keys]]\n",
            "[auth.api_keys]\n",
            "[auth]\n[auth.revocation]\n",
            "[cors]\n",
            "[response]\n",
            "[[routes]]\n[routes.authz]\n[routes.authz.client_cert]\n",
            "[auth.api_keys]\n[[auth.api_keys.keys]]\n",
            "[ratelimit]\n",
            "[ratelimit.limits.x]\n",
            "[ratelimit.limits.x.tiers.t]\n",
        ];
        let mut keys = 0;
        for table in tables {
            for key in accepted(table, "zzz_unknown = 1") {
                assert!(
                    docs.contains(&format!("| `{key}` |")),
                    "docs/config.md lacks a row for {table:?} {key}"
                );
                keys += 1;
            }
        }
        assert!(keys > 40, "only {keys} keys found");
        let tls = "[[listeners]]\nbind = \"127.0.0.1:1\"\n[listeners.tls]\ncertificates = []\n";
        for (table, key) in [
            ("[server]\n", "driver"),
            ("[forwarded]\n", "mode"),
            (tls, "min_version"),
            ("[[routes]]\n", "auth"),
            ("[[routes]]\n[routes.authz]\n", "scopes_match"),
            (tls, "client_auth"),
            ("[ratelimit]\n", "fail_mode"),
            ("[[upstreams]]\n", "lb"),
            ("[[upstreams]]\n[upstreams.health_check]\n", "kind"),
            ("[[upstreams]]\n[upstreams.dns]\n", "type"),
            ("[access_log]\n", "query"),
        ] {
            for variant in accepted(table, &format!("{key} = \"zzz_unknown\"")) {
                assert!(
                    docs.contains(&format!("`\"{variant}\"`")),
                    "docs/config.md lacks {key} value {variant}"
                );
            }
        }
    }

    #[test]
    fn docs_example_is_the_example_file() {
        let docs = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/config.md"));
        let example = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/gateway.toml"));
        let shown = docs.rsplit("```toml\n").next().and_then(|b| b.split("```").next()).unwrap_or_default();
        let body = example.split_once("\n\n").map_or(example, |(_, rest)| rest);
        assert_eq!(shown, body, "the complete example in docs/config.md differs from examples/gateway.toml");
    }
}
