//! Validation of `[admin]`, `[access_log]` and `[tracing]`.
//!
//! Owns: the rules of the observability sections, reported as (key path, message) like every
//! other rule, and filling `AdminConfig::addr`. Must not: open the admin socket or the log file.

use std::net::SocketAddr;
use std::time::Duration;

use super::Issues;
use crate::config::model::Config;
use crate::config::spans::KeyPath;

/// Checks the observability sections of `config`.
pub(crate) fn check(config: &mut Config, root: &KeyPath, out: &mut Issues) {
    if let Some(admin) = &mut config.admin {
        let path = root.key("admin");
        match admin.bind.parse::<SocketAddr>() {
            Ok(addr) => {
                admin.addr = Some(addr);
                if config.listeners.iter().any(|l| l.addr == Some(addr) && addr.port() != 0) {
                    out.push(path.key("bind"), format!("address {addr} is already used by a listener"));
                }
            }
            Err(_) => {
                admin.addr = None;
                out.push(
                    path.key("bind"),
                    format!("bind {:?} is not an IP address and port like \"127.0.0.1:9901\"", admin.bind),
                );
            }
        }
        if let Some(token) = &admin.token
            && (token.len() < 16 || !token.bytes().all(|b| (0x21..=0x7e).contains(&b)))
        {
            out.push(path.key("token"), "token must be at least 16 visible ASCII characters (no spaces)");
        }
        if let Some(addr) = admin.addr
            && !addr.ip().to_canonical().is_loopback()
            && admin.token.is_none()
        {
            out.push(
                path.key("bind"),
                format!(
                    "bind {addr} is not a loopback address and [admin] has no token: anyone who can \
                     reach it could read the config, post a new one or drain the gateway; set \
                     admin.token or bind to 127.0.0.1 or [::1]"
                ),
            );
        }
        let timeout = admin.request_timeout.0;
        if timeout < Duration::from_millis(100) || timeout > Duration::from_secs(600) {
            out.push(
                path.key("request_timeout"),
                format!("request_timeout {timeout:?} must be from 100ms to 10m"),
            );
        }
    }
    let log = &config.access_log;
    let path = root.key("access_log");
    if log.path.trim().is_empty() {
        out.push(path.key("path"), "path must be \"stdout\" or a file path");
    }
    if !(16..=1 << 22).contains(&log.queue) {
        out.push(path.key("queue"), format!("queue {} must be from 16 to 4194304 lines", log.queue));
    }
    let ratio = config.tracing.sample_ratio;
    if !(0.0..=1.0).contains(&ratio) {
        out.push(
            root.key("tracing").key("sample_ratio"),
            format!("sample_ratio {ratio} must be from 0.0 to 1.0"),
        );
    }
    if let Some(url) = &config.tracing.otlp_endpoint
        && let Err(e) = crate::telemetry::parse_http_endpoint(url)
    {
        out.push(root.key("tracing").key("otlp_endpoint"), format!("otlp_endpoint {url:?} {e}"));
    }
}

#[cfg(test)]
mod tests {
    use crate::config::validate::tests::{load, one};
    use crate::config::{QueryLogMode, load_str};

    #[test]
    fn admin_bind_and_token() {
        one("[admin]\nbind = \"localhost:1\"\n", "admin.bind", 2, "not an IP address");
        one("[admin]\ntoken = \"short\"\n", "admin.token", 2, "at least 16");
        one("[admin]\ntoken = \"has a space in it!!\"\n", "admin.token", 2, "visible ASCII");
        let cfg = load("[admin]\ntoken = \"0123456789abcdef\"\n").expect("valid");
        let admin = cfg.admin.expect("admin");
        assert_eq!(admin.addr, Some("127.0.0.1:9901".parse().expect("addr")));
        assert!(load("").expect("valid").admin.is_none(), "no [admin] = no admin API");
        one("[admin]\nrequest_timeout = \"10ms\"\n", "admin.request_timeout", 2, "from 100ms");
        let t = load("[admin]\nrequest_timeout = \"2s\"\n").expect("valid").admin.expect("admin");
        assert_eq!(t.request_timeout.0, std::time::Duration::from_secs(2));
    }

    #[test]
    fn admin_outside_loopback_needs_a_token() {
        for bind in ["0.0.0.0:9901", "[::]:9901", "192.0.2.7:9901", "[::ffff:10.0.0.1]:9901"] {
            one(&format!("\n[admin]\nbind = \"{bind}\"\n"), "admin.bind", 3, "not a loopback address");
        }
        for bind in ["127.0.0.1:9901", "127.0.0.2:0", "[::1]:9901", "[::ffff:127.0.0.1]:9901"] {
            assert!(load(&format!("[admin]\nbind = \"{bind}\"\n")).is_ok(), "{bind} is loopback");
        }
        let open = "[admin]\nbind = \"0.0.0.0:9901\"\ntoken = \"0123456789abcdef\"\n";
        assert!(load(open).is_ok(), "with a token any address is allowed");
    }

    #[test]
    fn admin_must_not_share_a_listener_address() {
        let text = "[[listeners]]\nbind = \"127.0.0.1:8080\"\n[admin]\nbind = \"127.0.0.1:8080\"\n";
        let errs = load_str(text, "t.toml").expect_err("clash").0;
        assert_eq!((errs[0].path.as_str(), errs[0].line), ("admin.bind", Some(4)));
    }

    #[test]
    fn access_log_and_tracing() {
        one("[access_log]\nqueue = 1\n", "access_log.queue", 2, "from 16");
        one("[access_log]\npath = \"\"\n", "access_log.path", 2, "stdout");
        one("[tracing]\nsample_ratio = 1.5\n", "tracing.sample_ratio", 2, "from 0.0 to 1.0");
        one("[tracing]\notlp_endpoint = \"https://c:4318\"\n", "tracing.otlp_endpoint", 2, "http://");
        assert!(load("[tracing]\notlp_endpoint = \"http://127.0.0.1:4318\"\n").is_ok());
        let cfg = load("[access_log]\nenabled = true\nquery = \"redact\"\n").expect("valid");
        assert!(cfg.access_log.enabled);
        assert_eq!(cfg.access_log.query, QueryLogMode::Redact);
        assert!(cfg.metrics.enabled && cfg.tracing.enabled, "on by default");
    }
}
