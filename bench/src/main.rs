//! `portcullis-bench`: the benchmark tools' CLI. Owns argument parsing and dispatch to the
//! reference upstream (`upstream`) and the idle-connection holder (`idle`).

mod h1;
mod idle;
mod ring;
mod sys;
mod upstream;

use std::net::SocketAddr;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// Portcullis benchmark tools.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// A very fast HTTP/1.1 upstream answering every request with a fixed 200.
    Upstream {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9000")]
        listen: SocketAddr,
        /// Response body size in bytes.
        #[arg(long, default_value_t = 13)]
        body_size: usize,
        /// Pin the single thread to this CPU.
        #[arg(long)]
        cpu: Option<usize>,
        /// io_uring setup flags (auto = coop+single_issuer+defer, falling back).
        #[arg(long, value_enum, default_value = "auto")]
        ring: ring::RingMode,
        /// Listen backlog.
        #[arg(long, default_value_t = 4096)]
        backlog: i32,
    },
    /// Open N keep-alive connections, one request each, then hold them idle.
    Idle {
        /// Gateway address.
        #[arg(long, default_value = "127.0.0.1:8080")]
        target: SocketAddr,
        /// Number of connections.
        #[arg(long, default_value_t = 10_000)]
        conns: usize,
        /// Seconds to hold the connections idle.
        #[arg(long, default_value_t = 20)]
        hold_secs: u64,
        /// Threads opening connections in parallel.
        #[arg(long, default_value_t = 4)]
        threads: usize,
        /// Request path.
        #[arg(long, default_value = "/")]
        path: String,
    },
}

fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::Upstream { listen, body_size, cpu, ring, backlog } => {
            upstream::run(&upstream::UpstreamOpts { listen, body_size, cpu, ring, backlog })
        }
        Cmd::Idle { target, conns, hold_secs, threads, path } => {
            idle::run(&idle::IdleOpts { target, conns, hold_secs, threads, path })
        }
    }
}
