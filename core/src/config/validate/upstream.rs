//! Validation of an upstream's resilience settings: weights, `lb` with `hash_on`, outlier
//! detection and circuit limits.
//!
//! Owns: the rules of those keys, reported with their key paths. Must not: resolve endpoints
//! (the caller did) or touch other sections.

use super::Issues;
use crate::config::model::UpstreamConfig;
use crate::config::model_upstream::{Endpoint, LbPolicy, RetryConfig};
use crate::config::spans::KeyPath;
use crate::config::units::Dur;

/// Checks one `[[upstreams]]` entry at `here`.
pub(super) fn check(u: &UpstreamConfig, here: &KeyPath, out: &mut Issues) {
    for (j, ep) in u.endpoints.iter().enumerate() {
        if let Endpoint::Weighted(w) = ep
            && !(1..=1000).contains(&w.weight)
        {
            out.push(
                here.key("endpoints").index(j).key("weight"),
                format!("weight {} must be from 1 to 1000", w.weight),
            );
        }
    }
    match (&u.hash_on, u.lb) {
        (None, LbPolicy::ConsistentHash) => out.push(
            here.key("lb"),
            "lb = \"consistent_hash\" needs hash_on = \"client_ip\", \"header:<name>\" or \"cookie:<name>\"",
        ),
        (Some(_), lb) if lb != LbPolicy::ConsistentHash => {
            out.push(here.key("hash_on"), "hash_on only applies with lb = \"consistent_hash\"")
        }
        (Some(key), _) => {
            let ok = key == "client_ip"
                || key
                    .strip_prefix("header:")
                    .or_else(|| key.strip_prefix("cookie:"))
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(is_tchar));
            if !ok {
                out.push(
                    here.key("hash_on"),
                    format!("hash_on {key:?} must be \"client_ip\", \"header:<name>\" or \"cookie:<name>\""),
                );
            }
        }
        (None, _) => {}
    }
    let o = &u.outlier;
    let op = here.key("outlier");
    out.nonzero(op.key("base_ejection"), o.base_ejection);
    if o.max_ejection.0 < o.base_ejection.0 {
        out.push(op.key("max_ejection"), "max_ejection must not be shorter than base_ejection");
    }
    if o.max_ejected_percent > 100 {
        out.push(op.key("max_ejected_percent"), "max_ejected_percent must be from 0 to 100");
    }
    if o.panic_threshold_percent > 100 {
        out.push(op.key("panic_threshold_percent"), "panic_threshold_percent must be from 0 to 100");
    }
}

/// Checks a route's `try_timeout` (at `path`) against its total `timeout`.
pub(super) fn check_try_timeout(try_timeout: Option<Dur>, total: Dur, path: &KeyPath, out: &mut Issues) {
    if let Some(t) = try_timeout {
        out.nonzero(path.clone(), t);
        if t.0 > total.0 {
            out.push(path.clone(), "try_timeout must not be longer than the route's timeout");
        }
    }
}

/// Checks a route's `retry` table at `path`.
pub(super) fn check_retry(r: &RetryConfig, path: &KeyPath, out: &mut Issues) {
    if r.max > 10 {
        out.push(path.key("max"), format!("max {} must be from 0 to 10", r.max));
    }
    for (i, s) in r.statuses.iter().enumerate() {
        if !(500..=599).contains(s) {
            out.push(path.key("statuses").index(i), format!("status {s} must be from 500 to 599"));
        }
    }
    if r.budget_percent > 100 {
        out.push(path.key("budget_percent"), "budget_percent must be from 0 to 100");
    }
}

/// An HTTP token character (RFC 9110).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use crate::config::validate::tests::{load, one};

    const U: &str = "[[upstreams]]\nname = \"b\"\n";

    #[test]
    fn weights_parse_next_to_plain_endpoints() {
        let cfg = load(&format!(
            "{U}lb = \"weighted_round_robin\"\nendpoints = [\"127.0.0.1:1\", {{ address = \"127.0.0.1:2\", weight = 3 }}]\n"
        ))
        .expect("valid");
        assert_eq!(cfg.upstreams[1].weights, vec![1, 3]);
    }

    #[test]
    fn bad_values_point_at_their_key() {
        let w = format!("{U}endpoints = [\n  {{ address = \"127.0.0.1:2\", weight = 0 }},\n]\n");
        one(&w, "upstreams[1].endpoints[0].weight", 4, "from 1 to 1000");
        let lb = format!("{U}endpoints = [\"127.0.0.1:1\"]\nlb = \"consistent_hash\"\n");
        one(&lb, "upstreams[1].lb", 4, "needs hash_on");
        let h =
            format!("{U}endpoints = [\"127.0.0.1:1\"]\nlb = \"consistent_hash\"\nhash_on = \"header:\"\n");
        one(&h, "upstreams[1].hash_on", 5, "must be");
        let o = format!("{U}endpoints = [\"127.0.0.1:1\"]\n[upstreams.outlier]\nmax_ejected_percent = 101\n");
        one(&o, "upstreams[1].outlier.max_ejected_percent", 5, "from 0 to 100");
        let r = "[[routes]]\nprefix = \"/\"\nupstream = \"app\"\nretry = { max = 2, statuses = [404] }\n";
        one(r, "routes[0].retry.statuses[0]", 4, "from 500 to 599");
    }
}
