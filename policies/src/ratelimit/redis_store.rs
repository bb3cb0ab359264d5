//! The Redis side of reconciliation: turns one round's keys into `EVALSHA` calls of the
//! reconciliation script, one call per cluster slot (both keys of a limit key share a hash tag,
//! so a call never spans slots), pipelined per node by the client, and reads the replies.
//!
//! Owns: Redis key naming, the script and its SHA, grouping by slot and the `NOSCRIPT` fallback.
//! Must not: decide health or shares (the sync thread does) or touch shard state.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io;
use std::sync::Arc;

use crate::redis::{Client, Cmd, Value, key_slot};

/// The reconciliation script (one EVALSHA per slot group).
const SCRIPT: &str = include_str!("script.lua");
/// Most keys per script call (bounds one call's time and reply size).
const MAX_KEYS_PER_CALL: usize = 500;

/// One key of a round, as the script needs it.
pub(crate) struct KeyIn<'a> {
    pub limit: &'a Arc<str>,
    pub key: &'a [u8],
    pub interval: u64,
    pub tolerance: u64,
    pub used: u64,
    pub demand: u64,
}

/// What the script answers per key: the global TAT ahead of Redis' now (us) and this gateway's
/// share of the demand (ppm).
pub(crate) type KeyOut = (i64, i64);

/// The Redis backend of the sync thread.
pub(crate) struct RedisStore {
    client: Client,
    sha: String,
    prefix: String,
    gateway: String,
    window_us: u64,
}

/// The hex SHA1 Redis names the script by (`EVALSHA`).
fn script_sha() -> String {
    let d = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, SCRIPT.as_bytes());
    d.as_ref().iter().fold(String::with_capacity(40), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

impl RedisStore {
    /// A store over `client`; `gateway` names this process in the demand hashes.
    pub(crate) fn new(client: Client, prefix: String, gateway: String, window_us: u64) -> RedisStore {
        RedisStore { client, sha: script_sha(), prefix, gateway, window_us }
    }

    /// The deployment, for logs.
    pub(crate) fn describe(&self) -> String {
        self.client.target().describe()
    }

    /// Checks every master answers.
    pub(crate) fn probe(&mut self) -> io::Result<()> {
        self.client.ping_all()
    }

    /// `<prefix>:{<limit>:<hex key>}<suffix>`: the braces are the cluster hash tag.
    fn redis_key(&self, limit: &str, key: &[u8], suffix: &str) -> String {
        let mut k = String::with_capacity(self.prefix.len() + limit.len() + key.len() * 2 + 8);
        let _ = write!(k, "{}:{{{}:", self.prefix, limit);
        for b in key {
            let _ = write!(k, "{b:02x}");
        }
        k.push('}');
        k.push_str(suffix);
        k
    }

    /// Runs the script for every key; one result per key (None when its call failed) and the
    /// first failure, if any.
    pub(crate) fn reconcile(&mut self, keys: &[KeyIn<'_>]) -> (Vec<Option<KeyOut>>, Option<String>) {
        // Slot -> indices of its keys (one slot for a single server: key 0's).
        let cluster = self.client.target().cluster;
        let mut groups: BTreeMap<u16, Vec<usize>> = BTreeMap::new();
        for (i, k) in keys.iter().enumerate() {
            let slot = if cluster { key_slot(self.redis_key(k.limit, k.key, "").as_bytes()) } else { 0 };
            groups.entry(slot).or_default().push(i);
        }
        let mut calls: Vec<(u16, &[usize])> = Vec::new();
        for (slot, idx) in &groups {
            for chunk in idx.chunks(MAX_KEYS_PER_CALL) {
                calls.push((*slot, chunk));
            }
        }
        let cmds: Vec<Cmd> = calls.iter().map(|(slot, idx)| self.call(*slot, idx, keys, false)).collect();
        let mut replies = self.client.run(&cmds);
        // A node that has not seen the script yet: EVAL (which caches it) for those calls only.
        let retry: Vec<usize> = (0..replies.len())
            .filter(|&i| matches!(&replies[i], Ok(Value::Error(e)) if e.starts_with("NOSCRIPT")))
            .collect();
        if !retry.is_empty() {
            let again: Vec<Cmd> =
                retry.iter().map(|&i| self.call(calls[i].0, calls[i].1, keys, true)).collect();
            for (i, r) in retry.into_iter().zip(self.client.run(&again)) {
                replies[i] = r;
            }
        }
        let mut out = vec![None; keys.len()];
        let mut first_error = None;
        for ((_, idx), reply) in calls.iter().zip(replies) {
            let rows = match reply {
                Ok(Value::Array(Some(rows))) if rows.len() == idx.len() => rows,
                Ok(other) => {
                    first_error.get_or_insert_with(|| format!("unexpected script reply {other:?}"));
                    continue;
                }
                Err(e) => {
                    first_error.get_or_insert_with(|| e.to_string());
                    continue;
                }
            };
            for (&i, row) in idx.iter().zip(rows) {
                if let Value::Array(Some(v)) = row
                    && let [Value::Int(lag), Value::Int(share)] = v.as_slice()
                {
                    out[i] = Some((*lag, *share));
                }
            }
        }
        (out, first_error)
    }

    fn call(&self, slot: u16, idx: &[usize], keys: &[KeyIn<'_>], eval: bool) -> Cmd {
        let mut args: Vec<Vec<u8>> = Vec::with_capacity(5 + idx.len() * 6);
        if eval {
            args.push(b"EVAL".to_vec());
            args.push(SCRIPT.as_bytes().to_vec());
        } else {
            args.push(b"EVALSHA".to_vec());
            args.push(self.sha.clone().into_bytes());
        }
        args.push((idx.len() * 2).to_string().into_bytes());
        for &i in idx {
            args.push(self.redis_key(keys[i].limit, keys[i].key, ":tat").into_bytes());
            args.push(self.redis_key(keys[i].limit, keys[i].key, ":gw").into_bytes());
        }
        args.push(self.gateway.clone().into_bytes());
        args.push(self.window_us.to_string().into_bytes());
        for &i in idx {
            let k = &keys[i];
            for n in [k.interval, k.tolerance, k.used, k.demand] {
                args.push(n.to_string().into_bytes());
            }
        }
        Cmd { slot, args }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn script_sha_is_the_sha1_redis_computes() {
        // `redis-cli SCRIPT LOAD "return 1"` answers e0e1f9fabfc9d4800c877a703b823ac0578ff8db.
        let d = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, b"return 1");
        let hex: String = d.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
        assert_eq!(super::script_sha().len(), 40);
    }
}
