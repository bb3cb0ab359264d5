//! Fleet status: each gateway fed by etcd publishes what it serves under
//! `PREFIX/status/NAME`, attached to a lease it keeps alive, so the fleet's state is one range
//! read away and a gateway that dies disappears from it when its lease expires.
//!
//! Owns: the report's JSON shape, the reporter thread (a control thread) and reading the
//! reports back. Must not: decide what the gateway serves.

use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};

use super::{Etcd, EtcdSpec};

/// Lease time to live: a gateway gone for this long leaves the status list.
const LEASE_TTL: u64 = 10;

/// What one gateway reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// The gateway's name (its key under `PREFIX/status/`).
    pub name: String,
    /// Host name.
    pub host: String,
    /// The etcd revision it serves.
    pub revision: i64,
    /// Its config generation.
    pub generation: u64,
    /// When it applied that revision (seconds since the Unix epoch).
    pub applied_unix: u64,
    /// Why the newest revision it saw was refused, if it was.
    pub error: Option<String>,
}

impl Report {
    /// The stored JSON.
    pub fn to_json(&self) -> String {
        json!({
            "name": self.name, "host": self.host, "revision": self.revision,
            "generation": self.generation, "applied_unix": self.applied_unix, "error": self.error,
        })
        .to_string()
    }

    /// Parses a stored report.
    pub fn from_json(bytes: &[u8]) -> Option<Report> {
        let v: Value = serde_json::from_slice(bytes).ok()?;
        Some(Report {
            name: v["name"].as_str()?.to_owned(),
            host: v["host"].as_str().unwrap_or_default().to_owned(),
            revision: v["revision"].as_i64()?,
            generation: v["generation"].as_u64().unwrap_or(0),
            applied_unix: v["applied_unix"].as_u64().unwrap_or(0),
            error: v["error"].as_str().map(str::to_owned),
        })
    }

    /// One line for `portcullis fleet status`.
    pub fn line(&self, now_unix: u64) -> String {
        let ago = now_unix.saturating_sub(self.applied_unix);
        let state = match &self.error {
            None => "ok".to_owned(),
            Some(e) => format!("REFUSED newer revision: {e}"),
        };
        format!(
            "{}  host {}  revision {}  generation {}  applied {ago}s ago  {state}",
            self.name, self.host, self.revision, self.generation
        )
    }
}

/// Sends report updates to the reporter thread.
#[derive(Clone, Debug)]
pub struct Reporter {
    tx: mpsc::Sender<Report>,
}

impl Reporter {
    /// Publishes `report` (replacing the previous one).
    pub fn update(&self, report: Report) {
        let _ = self.tx.send(report);
    }
}

/// Starts the reporter thread publishing `first`, then every update.
pub fn spawn_reporter(spec: &EtcdSpec, first: Report) -> std::io::Result<Reporter> {
    let (tx, rx) = mpsc::channel::<Report>();
    let key = format!("{}{}", spec.status_prefix(), first.name);
    let mut client = Etcd::new(spec.endpoints.clone(), Duration::from_secs(2));
    std::thread::Builder::new().name("etcd-report".into()).spawn(move || {
        let mut report = first;
        let mut lease: Option<i64> = None;
        let mut dirty = true;
        loop {
            if lease.is_none() {
                lease = client.lease_grant(LEASE_TTL).ok();
                dirty = true;
            }
            if let (Some(id), true) = (lease, dirty) {
                match client.put(&key, report.to_json().as_bytes(), Some(id)) {
                    Ok(()) => dirty = false,
                    Err(e) => {
                        tracing::debug!("etcd status report: {e}");
                        lease = None;
                    }
                }
            }
            let wait = if lease.is_some() && !dirty {
                Duration::from_secs(LEASE_TTL / 3)
            } else {
                Duration::from_secs(1)
            };
            match rx.recv_timeout(wait) {
                Ok(next) => {
                    report = next;
                    dirty = true;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Some(id) = lease
                        && client.lease_keepalive(id).map_or(true, |ttl| ttl <= 0)
                    {
                        lease = None;
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
        }
    })?;
    Ok(Reporter { tx })
}

/// Every gateway's report under `spec`'s prefix, by name.
pub fn read_reports(spec: &EtcdSpec) -> Result<Vec<Report>, super::EtcdError> {
    let mut client = Etcd::new(spec.endpoints.clone(), Duration::from_secs(2));
    let snap = client.range(&spec.status_prefix(), None)?;
    Ok(snap.kvs.iter().filter_map(|kv| Report::from_json(&kv.value)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_round_trip_and_print() {
        let r = Report {
            name: "gw-1".into(),
            host: "edge1".into(),
            revision: 42,
            generation: 3,
            applied_unix: 100,
            error: Some("routes[0].upstream: unknown upstream (etcd:/p/config.toml@43:7)".into()),
        };
        assert_eq!(Report::from_json(r.to_json().as_bytes()), Some(r.clone()));
        let line = r.line(105);
        assert!(
            line.starts_with("gw-1  host edge1  revision 42  generation 3  applied 5s ago  REFUSED"),
            "{line}"
        );
        assert!(Report::from_json(b"{}").is_none());
    }
}
