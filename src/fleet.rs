//! The gateway fed by a config store: `run --source etcd://...` (start from etcd or the state
//! directory, then follow every revision), `push` (validate like `run`, upload in one guarded
//! transaction, roll back) and `fleet status`.
//!
//! Owns: composing the core's etcd source, state directory, watcher and reporter with the
//! serving gateway and the CLI. Must not: speak etcd's protocol itself (the core's client does).

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use portcullis_core::config::{self, Config};
use portcullis_core::runtime::source::{
    Etcd, EtcdSpec, Report, Revision, StateDir, read_reports, spawn_reporter, spawn_watcher,
};
use portcullis_policies::AuthService;

/// `portcullis run --source etcd://HOST:PORT[,...]/PREFIX`: serves the newest revision stored
/// under PREFIX (or, when etcd is unreachable or that revision is refused, the last committed
/// one in `state_dir`), then follows every new revision with the two-phase apply.
pub fn run_source(source: &str, state_dir: &Path, name: Option<&str>) -> anyhow::Result<()> {
    let spec = EtcdSpec::parse(source).map_err(anyhow::Error::msg)?;
    let state = StateDir::open(state_dir)
        .with_context(|| format!("cannot open the state directory {}", state_dir.display()))?;
    let mut client = Etcd::new(spec.endpoints.clone(), std::time::Duration::from_secs(2));
    let auth = AuthService::new();
    let load = |rev: &Revision| -> Result<Config, config::ConfigErrors> {
        let cfg = config::load_str_with(&rev.text, &rev.name, rev.rebase(&spec.files_prefix()))?;
        crate::serve::build_all(&std::sync::Arc::new(cfg.clone()), &auth)
            .map_err(|e| config::locate(&rev.text, &rev.name, [e]))?;
        Ok(cfg)
    };
    let mut seen = None;
    let mut from_etcd = None;
    let mut refused = None;
    match client.range_keys(&spec.config_range(), None) {
        Ok(snap) => {
            let at = spec.config_revision(&snap, None);
            seen = Some((at, spec.config_kvs(&snap)));
            match Revision::from_snapshot(&spec, &state, &snap, at) {
                Ok(rev) => match load(&rev) {
                    Ok(cfg) => from_etcd = Some((rev, cfg)),
                    Err(errors) => {
                        for e in &errors.0 {
                            tracing::error!("etcd revision {at} refused: {e}");
                        }
                        let first = errors.0.first().map(ToString::to_string).unwrap_or_default();
                        refused = Some(format!("revision {at}: {first}"));
                        state.discard(rev.rev);
                    }
                },
                Err(e) => {
                    tracing::error!("etcd revision {at} refused: {e}");
                    refused = Some(format!("revision {at}: {e}"));
                }
            }
        }
        Err(e) => tracing::warn!("{e}; starting from the state directory"),
    }
    let (rev, cfg, origin) = match from_etcd {
        Some((rev, cfg)) => (rev, cfg, "etcd"),
        None => {
            let Some(last) = state.current() else {
                anyhow::bail!(
                    "no usable config: etcd gave none and the state directory {} holds no committed revision",
                    state_dir.display()
                );
            };
            let rev = Revision::from_state(&spec, &state, last).map_err(anyhow::Error::msg)?;
            let cfg = load(&rev)
                .map_err(|errors| anyhow::anyhow!("revision {last} in the state directory: {errors}"))?;
            (rev, cfg, "the state directory")
        }
    };
    let (sup, telemetry) = crate::serve::start(None, cfg)?;
    sup.status().describe_running(Some(std::sync::Arc::from(rev.text.as_str())), rev.name.as_str().into());
    state.commit(rev.rev).context("cannot record the revision in the state directory")?;
    tracing::info!(
        revision = rev.rev,
        "serving etcd revision {} from {origin} ({})",
        rev.rev,
        rev.dir.display()
    );
    let host =
        std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_owned()).unwrap_or_default();
    let report = Report {
        name: name.map_or_else(|| format!("{host}-{}", std::process::id()), str::to_owned),
        host,
        revision: rev.rev,
        generation: sup.generation(),
        applied_unix: portcullis_core::runtime::unix_now(),
        error: refused,
    };
    let reporter = spawn_reporter(&spec, report.clone()).context("cannot start the etcd status reporter")?;
    spawn_watcher(spec, state, client, seen, sup.command_sender(), (report, Some(reporter)))
        .context("cannot start the etcd watcher")?;
    sup.run().context("control loop failed")?;
    telemetry.log.flush(std::time::Duration::from_secs(2));
    Ok(())
}

/// `portcullis push --source etcd://... FILE`: validates and builds `file` exactly as `run`
/// would, then writes it and every file it names in one etcd transaction guarded by the
/// document's revision (a concurrent push makes this one fail: re-read and push again); keys
/// under `PREFIX/files/` the document no longer names are deleted. With `rollback` (and no
/// file), re-publishes the version before the current one.
pub fn push(source: &str, file: Option<&Path>, rollback: bool) -> anyhow::Result<ExitCode> {
    let spec = EtcdSpec::parse(source).map_err(anyhow::Error::msg)?;
    let mut client = Etcd::new(spec.endpoints.clone(), std::time::Duration::from_secs(5));
    let now = client.range_keys(&spec.config_range(), None)?;
    let key = spec.config_key();
    let current = now.kvs.iter().find(|kv| kv.key == key).map_or(0, |kv| kv.mod_revision);
    let wanted: Vec<(String, Vec<u8>)> = match (file, rollback) {
        (Some(path), false) => {
            let cfg = match config::load_file(path) {
                Ok(cfg) => cfg,
                Err(errors) => return Ok(refuse(path, &errors)),
            };
            if let Err(e) = crate::serve::build_all(&std::sync::Arc::new(cfg.clone()), &AuthService::new()) {
                let text = std::fs::read_to_string(path).unwrap_or_default();
                return Ok(refuse(path, &config::locate(&text, &path.display().to_string(), [e])));
            }
            let mut out = vec![(key.clone(), std::fs::read(path)?)];
            for (_, name) in config::input_files(&cfg) {
                let bytes = std::fs::read(&name).with_context(|| format!("cannot read {name}"))?;
                out.push((format!("{}{name}", spec.files_prefix()), bytes));
            }
            out
        }
        (None, true) => {
            anyhow::ensure!(current > 1, "nothing to roll back to: {key} has no earlier version");
            let before = client.range_keys(&spec.config_range(), Some(current - 1))?;
            anyhow::ensure!(
                before.kvs.iter().any(|kv| kv.key == key),
                "{key} had no version before revision {current}"
            );
            before.kvs.into_iter().map(|kv| (kv.key, kv.value)).collect()
        }
        _ => anyhow::bail!("give a FILE to push, or --rollback"),
    };
    let stale: Vec<String> =
        now.kvs.iter().map(|kv| kv.key.clone()).filter(|k| !wanted.iter().any(|(w, _)| w == k)).collect();
    match client.put_all_if((&key, current), &wanted, &stale)? {
        Some(rev) => {
            println!("pushed {} key(s) as revision {rev} (was {current})", wanted.len());
            Ok(ExitCode::SUCCESS)
        }
        None => {
            eprintln!(
                "error: {key} changed since it was read (revision {current}): someone else pushed; re-read and push again"
            );
            Ok(ExitCode::from(1))
        }
    }
}

/// Prints a refused file's errors like `check`; the exit code.
fn refuse(path: &Path, errors: &config::ConfigErrors) -> ExitCode {
    for e in &errors.0 {
        eprintln!("error: {e}");
    }
    eprintln!("{}: {} error(s); nothing pushed", path.display(), errors.len());
    ExitCode::from(1)
}

/// `portcullis fleet status --source etcd://...`: one line per gateway reporting under the prefix.
pub fn fleet_status(source: &str) -> anyhow::Result<()> {
    let spec = EtcdSpec::parse(source).map_err(anyhow::Error::msg)?;
    let reports = read_reports(&spec)?;
    let now = portcullis_core::runtime::unix_now();
    for r in &reports {
        println!("{}", r.line(now));
    }
    println!("{} gateway(s) report under {}", reports.len(), spec.status_prefix());
    Ok(())
}
