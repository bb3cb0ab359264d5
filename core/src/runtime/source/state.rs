//! The state directory of a gateway fed by a config store: one directory per revision it read
//! (`revisions/<rev>/config.toml` and `revisions/<rev>/files/...`, written whole, then renamed
//! into place), and `current`, the revision last committed on every shard. A gateway that
//! restarts while the store is unreachable serves `current`.
//!
//! Owns: the layout of that directory and its atomic updates. Must not: validate a config or
//! talk to the store.

use std::io;
use std::path::{Component, Path, PathBuf};

/// Revisions kept besides `current` (older ones are removed after a commit).
const KEEP: usize = 3;

/// A state directory.
#[derive(Clone, Debug)]
pub struct StateDir {
    root: PathBuf,
}

/// The file name, relative to a revision's `files/`, that stores the file a config names `name`
/// (leading `/` dropped); `None` for a name that would escape it (`..`).
pub fn stored_name(name: &str) -> Option<PathBuf> {
    let rel = Path::new(name.trim_start_matches('/'));
    let ok = rel.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    (ok && !rel.as_os_str().is_empty()).then(|| rel.to_path_buf())
}

impl StateDir {
    /// Opens (creating it when absent) the state directory at `root`.
    pub fn open(root: &Path) -> io::Result<StateDir> {
        std::fs::create_dir_all(root.join("revisions"))?;
        Ok(StateDir { root: root.to_path_buf() })
    }

    /// The directory of revision `rev`.
    pub fn revision_dir(&self, rev: i64) -> PathBuf {
        self.root.join("revisions").join(rev.to_string())
    }

    /// Writes revision `rev`: the config text and each `(name, bytes)` file under `files/`
    /// (names as [`stored_name`] maps them; others are refused). An existing complete copy is
    /// kept. Returns the revision's directory.
    pub fn write_revision(
        &self,
        rev: i64,
        config: &[u8],
        files: &[(String, Vec<u8>)],
    ) -> io::Result<PathBuf> {
        let dir = self.revision_dir(rev);
        if dir.join("config.toml").is_file() {
            return Ok(dir);
        }
        let tmp = self.root.join("revisions").join(format!(".{rev}.tmp"));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(tmp.join("files"))?;
        for (name, bytes) in files {
            let rel = stored_name(name).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("file name {name:?} leaves the files directory"),
                )
            })?;
            let path = tmp.join("files").join(rel);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(path, bytes)?;
        }
        std::fs::write(tmp.join("config.toml"), config)?;
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::rename(&tmp, &dir)?;
        Ok(dir)
    }

    /// The revision last committed, if any (and its directory is complete).
    pub fn current(&self) -> Option<i64> {
        let text = std::fs::read_to_string(self.root.join("current")).ok()?;
        let rev: i64 = text.trim().parse().ok()?;
        self.revision_dir(rev).join("config.toml").is_file().then_some(rev)
    }

    /// Records `rev` as committed (write then rename) and removes revisions older than the
    /// [`KEEP`] newest others.
    pub fn commit(&self, rev: i64) -> io::Result<()> {
        let tmp = self.root.join(".current.tmp");
        std::fs::write(&tmp, format!("{rev}\n"))?;
        std::fs::rename(&tmp, self.root.join("current"))?;
        let mut revs: Vec<i64> = std::fs::read_dir(self.root.join("revisions"))?
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .filter(|r| *r != rev)
            .collect();
        revs.sort_unstable_by(|a, b| b.cmp(a));
        for old in revs.into_iter().skip(KEEP) {
            let _ = std::fs::remove_dir_all(self.revision_dir(old));
        }
        Ok(())
    }

    /// Removes revision `rev` (a refused one), unless it is the committed one.
    pub fn discard(&self, rev: i64) {
        if self.current() != Some(rev) {
            let _ = std::fs::remove_dir_all(self.revision_dir(rev));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revisions_are_written_whole_committed_and_pruned() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let state = StateDir::open(tmp.path()).expect("open");
        assert_eq!(state.current(), None);
        for rev in 1..=6 {
            let dir = state
                .write_revision(
                    rev,
                    b"x = 1",
                    &[("certs/a.pem".into(), vec![rev as u8]), ("/abs.key".into(), vec![])],
                )
                .expect("write");
            assert_eq!(std::fs::read(dir.join("files/certs/a.pem")).expect("file"), [rev as u8]);
            assert!(dir.join("files/abs.key").is_file());
            state.commit(rev).expect("commit");
        }
        assert_eq!(state.current(), Some(6));
        assert!(!state.revision_dir(1).exists() && state.revision_dir(3).exists());
        let e = state.write_revision(7, b"", &[("../escape".into(), vec![])]).expect_err("refused");
        assert!(e.to_string().contains("leaves"), "{e}");
        state.discard(6);
        assert_eq!(state.current(), Some(6), "the committed revision is never discarded");
    }
}
