//! The `portcullis` binary: a thin CLI that loads the config and composes the core runtime, the
//! HTTP engine and the policy chain. Holds no logic a library should own.

mod admin;
mod demo;
mod doctor;
mod fleet;
mod h3get;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Portcullis: a thread-per-core io_uring API gateway.
#[derive(Parser)]
#[command(name = "portcullis", version, about)]
struct Cli {
    /// Log filter (RUST_LOG syntax), e.g. `info` or `portcullis_http=debug`.
    #[arg(long, global = true, env = "PORTCULLIS_LOG", default_value = "info")]
    log: String,
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the gateway with a config file (SIGHUP or a file change reloads it) or from etcd
    /// (`--source`: every new revision is applied); SIGTERM drains.
    Run {
        /// Path to the TOML config.
        #[arg(long, short, required_unless_present = "source", conflicts_with = "source")]
        config: Option<PathBuf>,
        /// Config store: `etcd://HOST:PORT[,HOST:PORT...]/PREFIX` (the document at
        /// PREFIX/config.toml, the files it names at PREFIX/files/NAME).
        #[arg(long, env = "PORTCULLIS_SOURCE")]
        source: Option<String>,
        /// Where revisions read from `--source` are kept (the last committed one is served
        /// when the store is unreachable at start).
        #[arg(long, env = "PORTCULLIS_STATE_DIR", default_value = "/var/lib/portcullis")]
        state_dir: PathBuf,
        /// With `--source`: the name this gateway reports under PREFIX/status/ (default
        /// HOSTNAME-PID).
        #[arg(long, env = "PORTCULLIS_NODE_NAME")]
        node_name: Option<String>,
    },
    /// Validate FILE exactly as `run` would, then upload it and every file it names to etcd in
    /// one transaction guarded by the revision read (a concurrent push fails: re-read); prints
    /// the new revision. `--rollback` re-publishes the previous version instead.
    Push {
        /// `etcd://HOST:PORT[,HOST:PORT...]/PREFIX`.
        #[arg(long, env = "PORTCULLIS_SOURCE")]
        source: String,
        /// Re-publish the version before the current one.
        #[arg(long, conflicts_with = "file")]
        rollback: bool,
        /// The TOML config to push (file names in it are read relative to the working directory).
        file: Option<PathBuf>,
    },
    /// Fleet commands against a config store.
    Fleet {
        #[command(subcommand)]
        cmd: FleetCmd,
    },
    /// Validate a config file and print every error with its line; exit 1 when invalid.
    Check {
        /// Path to the TOML config.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Check this host for what the gateway needs (io_uring, memlock and nofile limits, somaxconn,
    /// CPUs vs shards, UDP buffers, port range) and print what to change, each with why.
    Doctor {
        /// Config to check against (shards, backlogs).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Run the gateway on 127.0.0.1:8080 with a built-in config in front of a built-in echo
    /// upstream, and print requests to try.
    Demo {
        /// Gateway port.
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// TLS (HTTP/2 and HTTP/1.1) port, with a certificate generated at start; 0 = any free port.
        #[arg(long, default_value_t = 8443)]
        tls_port: u16,
        /// Redis `host:port` for the demo's rate limit (without it: local limits only).
        #[arg(long)]
        redis: Option<String>,
    },
    /// Fetch one URL over HTTP/3 with Portcullis' own client and print the response.
    H3 {
        /// `https://host:port/path`.
        url: String,
        /// PEM file with the CA certificate(s) to trust.
        #[arg(long)]
        cacert: Option<PathBuf>,
        /// Request method.
        #[arg(long, short = 'X', default_value = "GET")]
        method: String,
        /// Request body.
        #[arg(long, short = 'd')]
        data: Option<String>,
    },
}

#[derive(Subcommand)]
enum FleetCmd {
    /// One line per gateway serving from the store: revision, generation, when, last refusal.
    Status {
        /// `etcd://HOST:PORT[,HOST:PORT...]/PREFIX`.
        #[arg(long, env = "PORTCULLIS_SOURCE")]
        source: String,
    },
}

fn init_logging(filter: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log, cli.log_format);
    let result = match cli.cmd {
        Cmd::Check { config } => return serve::check(&config),
        Cmd::Run { config: Some(config), .. } => serve::run_file(&config),
        Cmd::Run { config: None, source, state_dir, node_name } => {
            fleet::run_source(source.as_deref().unwrap_or_default(), &state_dir, node_name.as_deref())
        }
        Cmd::Fleet { cmd: FleetCmd::Status { source } } => fleet::fleet_status(&source),
        Cmd::Push { source, rollback, file } => {
            return fleet::push(&source, file.as_deref(), rollback).unwrap_or_else(|e| {
                eprintln!("portcullis: {e:#}");
                ExitCode::from(1)
            });
        }
        Cmd::Demo { port, tls_port, redis } => demo::run(port, tls_port, redis.as_deref()),
        Cmd::H3 { url, cacert, method, data } => {
            h3get::run(&url, cacert.as_deref(), &method, data.as_deref())
        }
        Cmd::Doctor { config } => return doctor::run(config.as_deref()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("portcullis: {e:#}");
            ExitCode::from(1)
        }
    }
}
