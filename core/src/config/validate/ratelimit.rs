//! Validation of `[ratelimit]`, its named limits and tiers, and the `rate_limits` of each route.
//!
//! Owns: the rate-limit rules (non-zero rates and periods, bursts of at least one, known scopes,
//! known tiers, route references to defined limits). Must not: build limiters or touch Redis.

use std::collections::HashSet;

use super::{Issues, is_token};
use crate::config::model::RouteConfig;
use crate::config::model_ratelimit::{LimitConfig, RateLimitConfig};
use crate::config::spans::KeyPath;

/// The scopes a limit key may combine (besides `header:<name>`).
pub const SCOPES: [&str; 3] = ["client_ip", "consumer", "route"];

/// Largest `burst * emission interval` in nanoseconds (keeps GCRA arithmetic far from overflow).
const MAX_TOLERANCE_NS: u128 = 1 << 62;

/// Checks `[ratelimit]` and every route's `rate_limits`.
pub(super) fn check(
    rl: &RateLimitConfig,
    routes: &[RouteConfig],
    path: &KeyPath,
    routes_path: &KeyPath,
    out: &mut Issues,
) {
    let keys = super::redis::RedisKeys {
        server: ("redis", rl.redis.as_deref()),
        cluster: ("redis_cluster", &rl.redis_cluster),
        username: ("redis_username", rl.redis_username.as_deref()),
        password_env: ("redis_password_env", rl.redis_password_env.as_deref()),
        password_file: ("redis_password_file", rl.redis_password_file.as_deref()),
        tls_ca_file: ("redis_tls_ca_file", rl.redis_tls_ca_file.as_deref()),
    };
    super::redis::check(&keys, false, path, out);
    out.nonzero(path.key("sync_interval"), rl.sync_interval);
    out.nonzero(path.key("redis_timeout"), rl.redis_timeout);
    if rl.gateways == 0 {
        out.push(path.key("gateways"), "gateways must be at least 1");
    }
    if rl.key_prefix.is_empty()
        || !rl.key_prefix.bytes().all(|b| b.is_ascii_graphic() && b != b'{' && b != b'}')
    {
        out.push(path.key("key_prefix"), "key_prefix must be non-empty visible ASCII without `{` or `}`");
    }
    if rl.max_keys == 0 {
        out.push(path.key("max_keys"), "max_keys must be at least 1");
    }
    let mut tiers = HashSet::new();
    for (i, t) in rl.tiers.iter().enumerate() {
        if t.trim().is_empty() {
            out.push(path.key("tiers").index(i), "tier name must not be empty");
        } else if !tiers.insert(t.as_str()) {
            out.push(path.key("tiers").index(i), format!("duplicate tier {t:?}"));
        }
    }
    for (name, limit) in &rl.limits {
        let here = path.key("limits").key(name);
        if !is_name(name) {
            out.push(here.clone(), format!("limit name {name:?} must be letters, digits, `_`, `-` or `.`"));
        }
        one_limit(limit, &tiers, &here, out);
    }
    for (i, r) in routes.iter().enumerate() {
        let mut seen = HashSet::new();
        for (j, name) in r.rate_limits.iter().enumerate() {
            let at = routes_path.index(i).key("rate_limits").index(j);
            if !rl.limits.contains_key(name) {
                let known: Vec<&str> = rl.limits.keys().map(String::as_str).collect();
                out.push(
                    at,
                    format!("unknown rate limit {name:?} (defined: {known:?} in [ratelimit.limits])"),
                );
            } else if !seen.insert(name) {
                out.push(at, format!("rate limit {name:?} is listed twice"));
            }
        }
    }
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// One `[ratelimit.limits.<name>]`.
fn one_limit(l: &LimitConfig, tiers: &HashSet<&str>, here: &KeyPath, out: &mut Issues) {
    if l.key.is_empty() {
        out.push(
            here.key("key"),
            "key must name at least one scope: client_ip, consumer, route or header:<name>",
        );
    }
    let mut seen = HashSet::new();
    for (i, scope) in l.key.iter().enumerate() {
        let valid = SCOPES.contains(&scope.as_str()) || scope.strip_prefix("header:").is_some_and(is_token);
        if !valid {
            out.push(
                here.key("key").index(i),
                format!("unknown key scope {scope:?}: use client_ip, consumer, route or header:<name>"),
            );
        } else if !seen.insert(scope.to_ascii_lowercase()) {
            out.push(here.key("key").index(i), format!("key scope {scope:?} is listed twice"));
        }
    }
    out.nonzero(here.key("per"), l.per);
    rate_and_burst(l.rate, l.burst, l.per.0.as_nanos(), here, out);
    for (tier, t) in &l.tiers {
        let at = here.key("tiers").key(tier);
        if !tiers.is_empty() && !tiers.contains(tier.as_str()) {
            let mut known: Vec<&str> = tiers.iter().copied().collect();
            known.sort_unstable();
            out.push(at.clone(), format!("unknown tier {tier:?} (ratelimit.tiers = {known:?})"));
        }
        rate_and_burst(t.rate, t.burst, l.per.0.as_nanos(), &at, out);
    }
}

fn rate_and_burst(rate: u64, burst: Option<u64>, per_ns: u128, here: &KeyPath, out: &mut Issues) {
    if rate == 0 {
        out.push(here.key("rate"), "rate must be at least 1 (remove the limit to allow everything)");
        return;
    }
    if per_ns == 0 {
        return;
    }
    let interval = per_ns / u128::from(rate);
    if interval == 0 {
        out.push(here.key("rate"), format!("rate {rate} is more than one request per nanosecond"));
        return;
    }
    match burst {
        Some(0) => out.push(here.key("burst"), "burst must be at least 1"),
        b => {
            let b = u128::from(b.unwrap_or(rate));
            if b * interval > MAX_TOLERANCE_NS {
                out.push(here.key("burst"), format!("burst {b} is too large for this rate"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::load_str;

    const BASE: &str = "\
[[listeners]]
bind = \"127.0.0.1:0\"

[[upstreams]]
name = \"app\"
endpoints = [\"127.0.0.1:9000\"]
";

    /// (path, line, message) of every error for `BASE` + `tail`.
    fn errors(tail: &str) -> Vec<(String, Option<usize>, String)> {
        let text = format!("{BASE}{tail}");
        load_str(&text, "t.toml")
            .expect_err("config must be refused")
            .0
            .into_iter()
            .map(|e| (e.path, e.line, e.message))
            .collect()
    }

    #[test]
    fn a_valid_limit_set_loads() {
        let text = format!(
            "{BASE}
[[routes]]
prefix = \"/\"
upstream = \"app\"
rate_limits = [\"ip\", \"user\"]

[ratelimit]
redis = \"localhost:6379\"
tiers = [\"gold\"]

[ratelimit.limits.ip]
key = [\"client_ip\"]
rate = 10

[ratelimit.limits.user]
key = [\"consumer\", \"route\", \"header:X-Api-Key\"]
rate = 5
per = \"1m\"
burst = 1
tiers = {{ gold = {{ rate = 50 }} }}
"
        );
        let cfg = load_str(&text, "t.toml").expect("valid");
        assert_eq!(cfg.ratelimit.limits["ip"].burst_or_rate(), 10);
        assert_eq!(cfg.routes[0].rate_limits, ["ip", "user"]);
    }

    #[test]
    fn every_error_has_its_path_and_line() {
        let e = errors(
            "
[[routes]]
prefix = \"/\"
upstream = \"app\"
rate_limits = [\"ip\", \"nope\", \"ip\"]

[ratelimit]
redis = \"no-port\"
sync_interval = \"0ms\"
gateways = 0
tiers = [\"free\"]

[ratelimit.limits.ip]
key = [\"client_ip\", \"cookie\"]
rate = 0

[ratelimit.limits.other]
key = [\"route\"]
rate = 5
burst = 0
tiers = { gold = { rate = 1 } }
",
        );
        let find = |path: &str| {
            e.iter().find(|x| x.0 == path).unwrap_or_else(|| panic!("no error at {path}: {e:#?}")).clone()
        };
        assert_eq!(find("routes[0].rate_limits[1]").1, Some(11));
        assert!(find("routes[0].rate_limits[1]").2.contains("unknown rate limit \"nope\""));
        assert!(find("routes[0].rate_limits[2]").2.contains("listed twice"));
        assert_eq!(find("ratelimit.redis").1, Some(14));
        assert_eq!(find("ratelimit.sync_interval").1, Some(15));
        assert_eq!(find("ratelimit.gateways").1, Some(16));
        let scope = find("ratelimit.limits.ip.key[1]");
        assert_eq!(scope.1, Some(20));
        assert!(scope.2.contains("unknown key scope \"cookie\""), "{}", scope.2);
        let rate = find("ratelimit.limits.ip.rate");
        assert_eq!(rate.1, Some(21));
        assert!(rate.2.contains("at least 1"));
        assert_eq!(find("ratelimit.limits.other.burst").1, Some(26));
        let tier = find("ratelimit.limits.other.tiers.gold");
        assert_eq!(tier.1, Some(27));
        assert!(tier.2.contains("unknown tier \"gold\""), "{}", tier.2);
        assert_eq!(e.len(), 9, "{e:#?}");
    }

    #[test]
    fn redis_targets_and_credentials() {
        let e = errors(
            "
[ratelimit]
redis = \"user:pw@127.0.0.1:6379\"
redis_cluster = [\"127.0.0.1:7000\", \"no-port\"]
redis_username = \"gw\"
redis_password_env = \"PW\"
redis_password_file = \"/run/pw\"
",
        );
        let find = |path: &str| {
            e.iter().find(|x| x.0 == path).unwrap_or_else(|| panic!("no error at {path}: {e:#?}"))
        };
        assert!(find("ratelimit.redis").2.contains("credentials never go inline"), "{e:#?}");
        assert!(find("ratelimit.redis_cluster[1]").2.contains("host:port"));
        assert!(find("ratelimit.redis_cluster").2.contains("not both"));
        assert!(find("ratelimit.redis_password_file").2.contains("not both"));
        let e = errors("\n[ratelimit]\nredis_username = \"gw\"\nredis_tls_ca_file = \"/ca.pem\"\n");
        assert!(
            e.iter().any(|x| x.0 == "ratelimit.redis_username" && x.2.contains("needs a password")),
            "{e:#?}"
        );
        assert!(
            e.iter().any(|x| x.0 == "ratelimit" && x.2.contains("neither redis nor redis_cluster")),
            "{e:#?}"
        );
        let ok = format!(
            "{BASE}\n[ratelimit]\nredis_cluster = [\"10.0.0.1:7000\"]\nredis_password_env = \"PW\"\n"
        );
        let cfg = load_str(&ok, "t.toml").expect("valid");
        assert!(cfg.ratelimit.has_redis());
    }

    #[test]
    fn scope_and_rate_bounds() {
        let e = errors(
            "
[ratelimit.limits.fast]
key = []
rate = 2000000000
per = \"1s\"

[ratelimit.limits.\"bad name\"]
key = [\"route\", \"route\", \"header:\"]
rate = 1
",
        );
        let paths: Vec<&str> = e.iter().map(|x| x.0.as_str()).collect();
        assert!(paths.contains(&"ratelimit.limits.fast.key"), "{paths:?}");
        assert!(paths.contains(&"ratelimit.limits.fast.rate"), "{paths:?}");
        assert!(paths.iter().any(|p| p.contains("bad name") && p.ends_with("key[1]")), "{paths:?}");
        assert!(paths.iter().any(|p| p.contains("bad name") && p.ends_with("key[2]")), "{paths:?}");
        assert!(e.iter().any(|x| x.2.contains("limit name \"bad name\"")), "{e:#?}");
    }
}
