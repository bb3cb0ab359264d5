//! A small blocking client for etcd v3's JSON gateway (`/v3/kv/range`, `/v3/kv/txn`,
//! `/v3/watch`): keys and values travel base64-encoded in JSON; a watch is one long POST whose
//! response body is a stream of newline-separated JSON messages.
//!
//! Owns: talking to etcd over HTTP, trying each configured endpoint in turn. Must not: run on a
//! shard (every call blocks) or know what the keys mean (the source's watcher does).

use std::io::{BufRead, BufReader, Read};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

/// The largest range answer read (a config document and the files it names).
const MAX_RANGE_BYTES: u64 = 64 * 1024 * 1024;

/// A watch stream is closed and renewed after this long, so a connection to a member that
/// vanished without closing it (a partition, a dead host) cannot hold the watch forever.
pub const WATCH_RENEW: Duration = Duration::from_secs(60);

/// Why an etcd call failed.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    /// No endpoint answered (the last transport error).
    #[error("etcd unreachable ({endpoints}): {last}")]
    Unreachable {
        /// The endpoints tried.
        endpoints: String,
        /// The last error seen.
        last: String,
    },
    /// An endpoint answered something this client cannot read.
    #[error("unexpected answer from etcd {endpoint}: {what}")]
    Protocol {
        /// The endpoint.
        endpoint: String,
        /// What was wrong.
        what: String,
    },
}

/// One key and its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kv {
    /// The key (UTF-8; other keys are skipped).
    pub key: String,
    /// The value bytes.
    pub value: Vec<u8>,
    /// The revision that last wrote it.
    pub mod_revision: i64,
}

/// Every key under a prefix as of one revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// The store revision the keys were read at.
    pub revision: i64,
    /// The keys, in key order.
    pub kvs: Vec<Kv>,
}

/// The keys from `start` (included) to `end` (excluded), as etcd ranges them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRange {
    /// First key.
    pub start: Vec<u8>,
    /// First key past the range.
    pub end: Vec<u8>,
}

impl KeyRange {
    /// Every key starting with `prefix`.
    pub fn prefix(prefix: &str) -> KeyRange {
        KeyRange { start: prefix.as_bytes().to_vec(), end: prefix_end(prefix) }
    }
}

/// A client for a set of etcd endpoints (`host:port`), plain HTTP.
#[derive(Debug)]
pub struct Etcd {
    endpoints: Vec<String>,
    current: usize,
    agent: ureq::Agent,
    watch_agent: ureq::Agent,
}

/// The end of the key range of `prefix` (every key starting with `prefix`).
pub fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

fn num(v: &Value) -> Option<i64> {
    match v {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

impl Etcd {
    /// A client for `endpoints`; `timeout` bounds every call except a watch's stream.
    pub fn new(endpoints: Vec<String>, timeout: Duration) -> Etcd {
        let agent =
            ureq::Agent::config_builder().timeout_global(Some(timeout)).http_status_as_error(true).build();
        let watch_agent = ureq::Agent::config_builder()
            .timeout_connect(Some(timeout))
            .timeout_send_request(Some(timeout))
            .timeout_recv_response(Some(timeout))
            .timeout_recv_body(Some(WATCH_RENEW))
            .http_status_as_error(true)
            .build();
        Etcd { endpoints, current: 0, agent: agent.into(), watch_agent: watch_agent.into() }
    }

    /// The endpoint the next call tries first.
    pub fn endpoint(&self) -> &str {
        self.endpoints.get(self.current).map_or("", String::as_str)
    }

    /// Moves to the next endpoint (after a failure).
    pub fn rotate(&mut self) {
        self.current = (self.current + 1) % self.endpoints.len().max(1);
    }

    fn unreachable(&self, last: String) -> EtcdError {
        EtcdError::Unreachable { endpoints: self.endpoints.join(","), last }
    }

    /// POSTs `body` to `path` on each endpoint in turn until one answers; the JSON answer.
    fn call(&mut self, path: &str, body: &Value) -> Result<Value, EtcdError> {
        let mut last = String::from("no endpoint");
        for _ in 0..self.endpoints.len() {
            let endpoint = self.endpoint().to_owned();
            let url = format!("http://{endpoint}{path}");
            let answer =
                self.agent.post(&url).header("content-type", "application/json").send(body.to_string());
            match answer {
                Ok(mut resp) => {
                    let text =
                        resp.body_mut().with_config().limit(MAX_RANGE_BYTES).read_to_string().map_err(
                            |e| EtcdError::Protocol { endpoint: endpoint.clone(), what: e.to_string() },
                        )?;
                    return serde_json::from_str(&text)
                        .map_err(|e| EtcdError::Protocol { endpoint, what: format!("not JSON: {e}") });
                }
                Err(e) => {
                    last = format!("{endpoint}: {e}");
                    self.rotate();
                }
            }
        }
        Err(self.unreachable(last))
    }

    /// Every key under `prefix`, at `revision` (the latest when `None`).
    pub fn range(&mut self, prefix: &str, revision: Option<i64>) -> Result<Snapshot, EtcdError> {
        self.range_keys(&KeyRange::prefix(prefix), revision)
    }

    /// Every key in `keys`, at `revision` (the latest when `None`).
    pub fn range_keys(&mut self, keys: &KeyRange, revision: Option<i64>) -> Result<Snapshot, EtcdError> {
        let mut body = json!({"key": B64.encode(&keys.start), "range_end": B64.encode(&keys.end)});
        if let Some(r) = revision {
            body["revision"] = json!(r.to_string());
        }
        let answer = self.call("/v3/kv/range", &body)?;
        let endpoint = self.endpoint().to_owned();
        let bad = |what: &str| EtcdError::Protocol { endpoint: endpoint.clone(), what: what.to_owned() };
        let revision = num(&answer["header"]["revision"]).ok_or_else(|| bad("no header.revision"))?;
        let mut kvs = Vec::new();
        for kv in answer["kvs"].as_array().map_or(&[][..], Vec::as_slice) {
            let key = kv["key"].as_str().and_then(|k| B64.decode(k).ok()).ok_or_else(|| bad("bad key"))?;
            let value = match kv["value"].as_str() {
                Some(v) => B64.decode(v).map_err(|_| bad("bad value"))?,
                None => Vec::new(),
            };
            if let Ok(key) = String::from_utf8(key) {
                kvs.push(Kv { key, value, mod_revision: num(&kv["mod_revision"]).unwrap_or(revision) });
            }
        }
        Ok(Snapshot { revision, kvs })
    }

    /// Writes every `(key, value)` in one transaction and deletes every key of `delete`;
    /// returns the new revision.
    pub fn put_all(&mut self, puts: &[(String, Vec<u8>)], delete: &[String]) -> Result<i64, EtcdError> {
        let mut ops: Vec<Value> = puts
            .iter()
            .map(|(k, v)| json!({"request_put": {"key": B64.encode(k), "value": B64.encode(v)}}))
            .collect();
        ops.extend(delete.iter().map(|k| json!({"request_delete_range": {"key": B64.encode(k)}})));
        let answer = self.call("/v3/kv/txn", &json!({"success": ops}))?;
        num(&answer["header"]["revision"]).ok_or_else(|| EtcdError::Protocol {
            endpoint: self.endpoint().to_owned(),
            what: "no revision".into(),
        })
    }

    /// Writes `puts` and deletes `delete` in one transaction if `key` was last written at
    /// `mod_revision` (0 = absent); returns the new revision, or `None` when `key` changed.
    pub fn put_all_if(
        &mut self,
        (key, mod_revision): (&str, i64),
        puts: &[(String, Vec<u8>)],
        delete: &[String],
    ) -> Result<Option<i64>, EtcdError> {
        let mut ops: Vec<Value> = puts
            .iter()
            .map(|(k, v)| json!({"request_put": {"key": B64.encode(k), "value": B64.encode(v)}}))
            .collect();
        ops.extend(delete.iter().map(|k| json!({"request_delete_range": {"key": B64.encode(k)}})));
        let compare = json!([{
            "key": B64.encode(key), "target": "MOD", "result": "EQUAL", "mod_revision": mod_revision.to_string(),
        }]);
        let answer = self.call("/v3/kv/txn", &json!({"compare": compare, "success": ops}))?;
        if answer["succeeded"] != json!(true) {
            return Ok(None);
        }
        num(&answer["header"]["revision"]).map(Some).ok_or_else(|| EtcdError::Protocol {
            endpoint: self.endpoint().to_owned(),
            what: "no revision".into(),
        })
    }

    /// Grants a lease of `ttl` seconds; returns its id.
    pub fn lease_grant(&mut self, ttl: u64) -> Result<i64, EtcdError> {
        let answer = self.call("/v3/lease/grant", &json!({"TTL": ttl.to_string()}))?;
        num(&answer["ID"]).ok_or_else(|| EtcdError::Protocol {
            endpoint: self.endpoint().to_owned(),
            what: "no lease ID".into(),
        })
    }

    /// Renews lease `id` once; returns its remaining TTL (0 = the lease is gone).
    pub fn lease_keepalive(&mut self, id: i64) -> Result<i64, EtcdError> {
        let answer = self.call("/v3/lease/keepalive", &json!({"ID": id.to_string()}))?;
        Ok(num(&answer["result"]["TTL"]).unwrap_or(0))
    }

    /// Puts `key` = `value`, attached to lease `lease` when given.
    pub fn put(&mut self, key: &str, value: &[u8], lease: Option<i64>) -> Result<(), EtcdError> {
        let mut body = json!({"key": B64.encode(key), "value": B64.encode(value)});
        if let Some(id) = lease {
            body["lease"] = json!(id.to_string());
        }
        self.call("/v3/kv/put", &body).map(drop)
    }

    /// Starts watching every key in `keys` from `start_revision` on the current endpoint
    /// (rotating past endpoints that refuse).
    pub fn watch(&mut self, keys: &KeyRange, start_revision: i64) -> Result<Watch, EtcdError> {
        let body = json!({"create_request": {
            "key": B64.encode(&keys.start),
            "range_end": B64.encode(&keys.end),
            "start_revision": start_revision.to_string(),
        }});
        let mut last = String::from("no endpoint");
        for _ in 0..self.endpoints.len() {
            let endpoint = self.endpoint().to_owned();
            let url = format!("http://{endpoint}/v3/watch");
            match self
                .watch_agent
                .post(&url)
                .header("content-type", "application/json")
                .send(body.to_string())
            {
                Ok(resp) => {
                    let reader: Box<dyn Read + Send> = Box::new(resp.into_body().into_reader());
                    return Ok(Watch { lines: BufReader::new(reader), endpoint });
                }
                Err(e) => {
                    last = format!("{endpoint}: {e}");
                    self.rotate();
                }
            }
        }
        Err(self.unreachable(last))
    }
}

/// A running watch: each call to [`Watch::next_change`] blocks until keys change.
pub struct Watch {
    lines: BufReader<Box<dyn Read + Send>>,
    endpoint: String,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch").field("endpoint", &self.endpoint).finish()
    }
}

impl Watch {
    /// Blocks until a message with events arrives; returns the highest revision they carry.
    /// An error means the stream ended (the endpoint went away, or the watch was cancelled or
    /// compacted): start a new one.
    pub fn next_change(&mut self) -> Result<i64, EtcdError> {
        let endpoint = self.endpoint.clone();
        let gone = |what: String| EtcdError::Unreachable { endpoints: endpoint.clone(), last: what };
        let mut line = String::new();
        loop {
            line.clear();
            let n = self.lines.read_line(&mut line).map_err(|e| gone(e.to_string()))?;
            if n == 0 {
                return Err(gone("the watch stream ended".to_owned()));
            }
            let Ok(msg) = serde_json::from_str::<Value>(line.trim()) else { continue };
            let result = &msg["result"];
            if msg.get("error").is_some() || result["canceled"] == json!(true) {
                let why = result["cancel_reason"].as_str().unwrap_or("cancelled").to_owned();
                return Err(gone(format!(
                    "watch cancelled: {why} (compact revision {})",
                    result["compact_revision"]
                )));
            }
            let events = result["events"].as_array().map_or(&[][..], Vec::as_slice);
            let newest = events.iter().filter_map(|e| num(&e["kv"]["mod_revision"])).max();
            if let Some(rev) = newest {
                return Ok(rev);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_covers_the_prefix() {
        assert_eq!(prefix_end("/p/"), b"/p0".to_vec());
        assert_eq!(prefix_end("a\u{7f}"), vec![b'a', 0x80]);
        assert_eq!(prefix_end(""), vec![0]);
    }

    #[test]
    fn numbers_come_as_strings_or_numbers() {
        assert_eq!(num(&json!("12")), Some(12));
        assert_eq!(num(&json!(7)), Some(7));
        assert_eq!(num(&json!(null)), None);
    }
}
