//! Config sources besides a file: etcd (v3) as a fleet's config store. The config document and
//! every file it names live under one key prefix (`PREFIX/config.toml`, `PREFIX/files/NAME`);
//! a gateway reads them whole at one revision, writes them to its state directory, points the
//! config's file names at those copies, and applies the result with the supervisor's two-phase
//! apply; then it watches the prefix and does the same for every new revision.
//!
//! Owns: the key layout, turning one store revision into a loadable config, and the watcher
//! thread (a control thread: never a shard). Must not: validate or apply a config itself (the
//! supervisor does, through [`SourceTarget`](super::SourceTarget)).

pub mod etcd;
mod report;
pub mod state;
mod watch;

use std::path::{Path, PathBuf};

use crate::config::{Config, visit_input_files};

pub use etcd::{Etcd, EtcdError, KeyRange, Kv, Snapshot};
pub use report::{Report, Reporter, read_reports, spawn_reporter};
pub use state::StateDir;
pub use watch::spawn_watcher;

/// Where a gateway's config lives in etcd: `etcd://HOST:PORT[,HOST:PORT...]/PREFIX`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcdSpec {
    /// Client endpoints, `host:port`, tried in order.
    pub endpoints: Vec<String>,
    /// The key prefix (starts with `/`, no trailing `/`).
    pub prefix: String,
}

impl EtcdSpec {
    /// Parses `etcd://HOST:PORT[,HOST:PORT...]/PREFIX`.
    pub fn parse(text: &str) -> Result<EtcdSpec, String> {
        let rest = text
            .strip_prefix("etcd://")
            .ok_or_else(|| format!("{text:?}: a source is etcd://HOST:PORT[,HOST:PORT...]/PREFIX"))?;
        let (hosts, prefix) =
            rest.split_once('/').ok_or_else(|| format!("{text:?}: no /PREFIX after the hosts"))?;
        let endpoints: Vec<String> = hosts.split(',').map(str::trim).map(str::to_owned).collect();
        if endpoints.iter().any(|e| e.is_empty() || !e.contains(':')) {
            return Err(format!("{text:?}: every etcd endpoint is HOST:PORT"));
        }
        let prefix = format!("/{}", prefix.trim_matches('/'));
        if prefix == "/" {
            return Err(format!("{text:?}: the PREFIX must not be empty"));
        }
        Ok(EtcdSpec { endpoints, prefix })
    }

    /// The key of the config document.
    pub fn config_key(&self) -> String {
        format!("{}/config.toml", self.prefix)
    }

    /// The prefix of the files the document names (`PREFIX/files/` + the name as written).
    pub fn files_prefix(&self) -> String {
        format!("{}/files/", self.prefix)
    }

    /// The range a gateway reads and watches: `PREFIX/config.toml` and every key under
    /// `PREFIX/files/` (and what sorts between them), not `PREFIX/status/`: the gateways'
    /// reports must not wake every gateway.
    pub fn config_range(&self) -> KeyRange {
        KeyRange { start: self.config_key().into_bytes(), end: etcd::prefix_end(&self.files_prefix()) }
    }

    /// The prefix under which gateways report what they serve (`PREFIX/status/`).
    pub fn status_prefix(&self) -> String {
        format!("{}/status/", self.prefix)
    }

    /// The revision that names the config in `snap`: the newest write to the document or its
    /// files (writes under `PREFIX/status/` do not count), or `snap`'s own revision when that is
    /// not newer than `last` (a change that only deleted keys).
    pub fn config_revision(&self, snap: &Snapshot, last: Option<i64>) -> i64 {
        let status = self.status_prefix();
        let newest =
            snap.kvs.iter().filter(|kv| !kv.key.starts_with(&status)).map(|kv| kv.mod_revision).max();
        match newest {
            Some(r) if last.is_none_or(|l| r > l) => r,
            _ => snap.revision,
        }
    }

    /// The keys of `snap` that make up the config (the document and its files, not the
    /// gateways' status reports).
    pub fn config_kvs(&self, snap: &Snapshot) -> Vec<Kv> {
        let status = self.status_prefix();
        snap.kvs.iter().filter(|kv| !kv.key.starts_with(&status)).cloned().collect()
    }
}

/// One store revision written to the state directory, ready to load.
#[derive(Clone, Debug)]
pub struct Revision {
    /// The store revision.
    pub rev: i64,
    /// Its directory in the state directory.
    pub dir: PathBuf,
    /// The config document.
    pub text: String,
    /// How errors name it: `etcd:PREFIX/config.toml@REV`.
    pub name: String,
}

impl Revision {
    /// Writes `snap` (the keys under `spec`'s prefix) to `state` as revision `rev` (see
    /// [`EtcdSpec::config_revision`]).
    pub fn from_snapshot(
        spec: &EtcdSpec,
        state: &StateDir,
        snap: &Snapshot,
        rev: i64,
    ) -> Result<Revision, String> {
        let key = spec.config_key();
        let config = snap
            .kvs
            .iter()
            .find(|kv| kv.key == key)
            .ok_or_else(|| format!("no {key} in etcd at revision {rev}"))?;
        let files_prefix = spec.files_prefix();
        let files: Vec<(String, Vec<u8>)> = snap
            .kvs
            .iter()
            .filter_map(|kv| Some((kv.key.strip_prefix(&files_prefix)?.to_owned(), kv.value.clone())))
            .collect();
        let text = String::from_utf8(config.value.clone())
            .map_err(|_| format!("{key} at revision {rev} is not UTF-8"))?;
        let dir = state
            .write_revision(rev, text.as_bytes(), &files)
            .map_err(|e| format!("cannot write revision {rev} to the state directory: {e}"))?;
        Ok(Revision { rev, dir, text, name: format!("etcd:{key}@{rev}") })
    }

    /// Reads revision `rev` back from `state`.
    pub fn from_state(spec: &EtcdSpec, state: &StateDir, rev: i64) -> Result<Revision, String> {
        let dir = state.revision_dir(rev);
        let text = std::fs::read_to_string(dir.join("config.toml"))
            .map_err(|e| format!("cannot read {}: {e}", dir.join("config.toml").display()))?;
        Ok(Revision { rev, dir, text, name: format!("etcd:{}@{rev}", spec.config_key()) })
    }

    /// Points every file the config names at this revision's copy; a name that the revision
    /// does not hold is an error on its key (run before validation, see
    /// [`load_str_with`](crate::config::load_str_with)).
    pub fn rebase(&self, files_prefix: &str) -> impl FnMut(&mut Config) -> Vec<(String, String)> + use<> {
        let files = self.dir.join("files");
        let files_prefix = files_prefix.to_owned();
        move |cfg: &mut Config| rebase_files(cfg, &files, &files_prefix)
    }
}

fn rebase_files(cfg: &mut Config, files: &Path, files_prefix: &str) -> Vec<(String, String)> {
    let mut errors = Vec::new();
    visit_input_files(cfg, &mut |path, value| match state::stored_name(value)
        .map(|rel| files.join(rel))
        .filter(|p| p.is_file())
    {
        Some(copy) => *value = copy.display().to_string(),
        None => errors.push((
            path.to_owned(),
            format!("{value} is not stored in this revision (put it under {files_prefix}{value})"),
        )),
    });
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse() {
        let s = EtcdSpec::parse("etcd://127.0.0.1:2379,10.0.0.2:2379/portcullis/prod/").expect("valid");
        assert_eq!(s.endpoints, ["127.0.0.1:2379", "10.0.0.2:2379"]);
        assert_eq!(
            (s.config_key().as_str(), s.files_prefix().as_str()),
            ("/portcullis/prod/config.toml", "/portcullis/prod/files/")
        );
        let r = s.config_range();
        let inside = |k: &str| r.start.as_slice() <= k.as_bytes() && k.as_bytes() < r.end.as_slice();
        assert!(inside("/portcullis/prod/config.toml") && inside("/portcullis/prod/files/certs/a.pem"));
        assert!(!inside(&format!("{}gw-1", s.status_prefix())) && !inside("/portcullis/prod2/config.toml"));
        for bad in ["http://x:1/p", "etcd://x:1", "etcd://x:1/", "etcd://x/p", "etcd://,x:1/p"] {
            assert!(EtcdSpec::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_snapshot_becomes_a_loadable_revision() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let state = StateDir::open(tmp.path()).expect("state");
        let spec = EtcdSpec::parse("etcd://h:1/gw").expect("spec");
        let text = "[[listeners]]\nbind = \"127.0.0.1:0\"\n[[upstreams]]\nname = \"a\"\nendpoints = [\"127.0.0.1:9\"]\n\
                    [auth.api_keys]\nkeys_file = \"keys/k.toml\"\n";
        let kv = |k: &str, v: &str| Kv { key: k.to_owned(), value: v.as_bytes().to_vec(), mod_revision: 8 };
        let snap = Snapshot {
            revision: 9,
            kvs: vec![
                kv("/gw/config.toml", text),
                kv("/gw/files/keys/k.toml", "[[keys]]\n"),
                kv("/gw/status/x", ""),
            ],
        };
        assert_eq!(spec.config_revision(&snap, None), 8, "the newest write, not the read revision");
        assert_eq!(spec.config_revision(&snap, Some(8)), 9, "a deletion: the read revision");
        let rev = Revision::from_snapshot(&spec, &state, &snap, 9).expect("written");
        let cfg = crate::config::load_str_with(&rev.text, &rev.name, rev.rebase(&spec.files_prefix()))
            .expect("loads");
        let keys_file = cfg.auth.api_keys.and_then(|a| a.keys_file).expect("keys_file");
        assert_eq!(std::fs::read_to_string(&keys_file).expect("copy"), "[[keys]]\n");
        assert!(keys_file.starts_with(&rev.dir.display().to_string()));

        let without = Snapshot { revision: 10, kvs: vec![kv("/gw/config.toml", text)] };
        let rev = Revision::from_snapshot(&spec, &state, &without, 10).expect("written");
        let e = crate::config::load_str_with(&rev.text, &rev.name, rev.rebase(&spec.files_prefix()))
            .expect_err("refused");
        assert_eq!(
            e.errors()[0].to_string(),
            "auth.api_keys.keys_file: keys/k.toml is not stored in this revision (put it under /gw/files/keys/k.toml) (etcd:/gw/config.toml@10:7)"
        );
        let none = Snapshot { revision: 11, kvs: vec![] };
        assert!(Revision::from_snapshot(&spec, &state, &none, 11).is_err());
    }
}
