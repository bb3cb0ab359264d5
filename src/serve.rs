//! Composition: the core supervisor running the HTTP engine with the policy chain.

use std::path::Path;
use std::process::ExitCode;
use std::rc::Rc;

use anyhow::Context;
use portcullis_core::config::{self, Config};
use portcullis_core::runtime::{StartError, Supervisor, notify};
use portcullis_core::telemetry::Telemetry;
use portcullis_http::{BuildChain, Compiled, serve_shard_with};
use portcullis_policies::{Chain, ChainEnv, RateLimitService};
use portcullis_quic::endpoint::SharedQuic;

/// Builds everything a shard builds from `cfg` (the filter chain: JWT keys and secrets, API key
/// files, revocation settings) once here and drops it, so a config that would fail on a shard
/// fails first on the control thread, with its key path. `auth` is the process's auth service
/// (a fresh one for `check`).
pub fn build_chain_once(cfg: &Config, auth: &portcullis_policies::AuthService) -> Result<(), String> {
    let env = ChainEnv { auth: auth.clone(), ..ChainEnv::new() };
    Chain::build(cfg, &env).map(drop).map_err(|e| e.to_string())
}

/// What `run` builds for a generation, without the process-wide services: the compiled routes,
/// certificates and upstream TLS contexts, and one filter chain.
pub fn build_all(
    cfg: &std::sync::Arc<Config>,
    auth: &portcullis_policies::AuthService,
) -> Result<Compiled, String> {
    let compiled = portcullis_http::compile(cfg)?;
    build_chain_once(cfg, auth)?;
    Ok(compiled)
}

/// `portcullis check`: builds everything `run` builds (see [`build_all`]), prints every error
/// (file:line) and exits 1 when invalid.
pub fn check(path: &Path) -> ExitCode {
    match config::load_file(path).map(std::sync::Arc::new) {
        Ok(cfg) => {
            // Compiling loads certificates; building the chain loads keys, secrets and key files.
            if let Err(e) = build_all(&cfg, &portcullis_policies::AuthService::new()) {
                let text = std::fs::read_to_string(path).unwrap_or_default();
                let errors = config::locate(&text, &path.display().to_string(), [e]);
                for e in &errors.0 {
                    eprintln!("error: {e}");
                }
                eprintln!("{}: {} error(s)", path.display(), errors.len());
                return ExitCode::from(1);
            }
            println!(
                "{}: ok ({} listeners, {} upstreams, {} routes)",
                path.display(),
                cfg.listeners.len(),
                cfg.upstreams.len(),
                cfg.routes.len()
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("error: {e}");
            }
            eprintln!("{}: {} error(s)", path.display(), errors.0.len());
            ExitCode::from(1)
        }
    }
}

/// `portcullis run`: load, start, serve until SIGTERM/SIGINT.
pub fn run_file(path: &Path) -> anyhow::Result<()> {
    let cfg = match config::load_file(path) {
        Ok(cfg) => cfg,
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("error: {e}");
            }
            anyhow::bail!("{}: invalid config ({} error(s))", path.display(), errors.0.len());
        }
    };
    let (sup, telemetry) = match start(Some(path), cfg) {
        Ok(started) => started,
        Err(e) => {
            if let Some(StartError::Config(errors)) = e.downcast_ref::<StartError>() {
                for e in &errors.0 {
                    eprintln!("error: {e}");
                }
                anyhow::bail!("{}: invalid config ({} error(s))", path.display(), errors.len());
            }
            return Err(e);
        }
    };
    sup.run().context("control loop failed")?;
    telemetry.log.flush(std::time::Duration::from_secs(2));
    Ok(())
}

/// Starts the telemetry, the admin API (when `[admin]` is set) and the shards; prints
/// `admin <addr>` (when enabled) and then one `listening <name> <addr>` line per listener on
/// stdout, and tells systemd `READY=1`.
pub fn start(path: Option<&Path>, cfg: Config) -> anyhow::Result<(Supervisor<Compiled>, Telemetry)> {
    let names: Vec<String> = cfg.listeners.iter().map(|l| l.name.clone()).collect();
    let telemetry = Telemetry::start(cfg.access_log.queue).context("cannot start the access log writer")?;
    let admin = match cfg.admin.as_ref().and_then(|a| a.addr) {
        Some(addr) => {
            Some(crate::admin::bind(addr).with_context(|| format!("cannot bind the admin API on {addr}"))?)
        }
        None => None,
    };
    let ratelimit =
        RateLimitService::start(&cfg.ratelimit).context("cannot start the rate-limit sync thread")?;
    let env = ChainEnv {
        telemetry: Some(telemetry.clone()),
        shard: 0,
        ratelimit,
        auth: portcullis_policies::AuthService::new(),
    };
    let http3: Vec<bool> =
        cfg.listeners.iter().map(|l| l.http3.as_ref().is_some_and(|h| h.enabled)).collect();
    // Per HTTP/3 listener: keys and the steering table every shard's QUIC endpoint shares.
    let shards = portcullis_core::runtime::shard_count(&cfg.server);
    let quic: Vec<Option<SharedQuic>> = cfg
        .listeners
        .iter()
        .map(|l| match l.http3.as_ref().filter(|h| h.enabled) {
            Some(_) => SharedQuic::new(shards).map(Some),
            None => Ok(None),
        })
        .collect::<Result<_, _>>()
        .context("cannot create the QUIC keys")?;
    // Health checks and endpoint discovery: one thread for the process, shared by every generation.
    let upstreams = portcullis_http::upstream::UpstreamService::start(Some(telemetry.metrics.clone()))
        .context("cannot start the upstream service thread")?;
    // Every generation is built whole here before any shard sees it (certificates, routes, one
    // filter chain), so a config the shards would refuse is refused with its key path first.
    let auth = env.auth.clone();
    let compile = Box::new(move |cfg: &std::sync::Arc<Config>| {
        let compiled = portcullis_http::compile_with(cfg, &upstreams)?;
        build_chain_once(cfg, &auth)?;
        Ok(compiled)
    });
    let sup = Supervisor::start(path.map(Path::to_path_buf), cfg, compile, move |ctx| {
        let env = ChainEnv { shard: ctx.id, ..env.clone() };
        let build: Rc<BuildChain<Chain>> =
            Rc::new(move |cfg: &Config| Chain::build(cfg, &env).map_err(|e| e.to_string()));
        let quic = quic.clone();
        serve_shard_with(ctx, build, move |state, udp| {
            if udp.iter().any(Option::is_some) {
                let drain = portcullis_quic::shard::start(state, udp, &quic);
                state.on_drain.borrow_mut().push(Box::new(move || drain.fire()));
            }
        })
    })
    .context("cannot start the gateway")?;
    if let Some(listener) = admin {
        let addr = listener.local_addr()?;
        crate::admin::spawn(listener, sup.handle(), telemetry.clone())
            .context("cannot start the admin API")?;
        println!("admin {addr}");
    }
    for ((name, addr), l) in names.iter().zip(&sup.bound).zip(&http3) {
        println!("listening {name} {addr}");
        if *l {
            tracing::info!(listener = %name, %addr, "HTTP/3 (QUIC) on the same port, UDP");
        }
    }
    tracing::info!(
        shards = sup.shard_count(),
        driver = %sup.driver.describe(),
        generation = sup.generation(),
        "portcullis ready"
    );
    notify::notify_or_log("READY=1");
    Ok((sup, telemetry))
}
