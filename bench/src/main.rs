//! `portcullis-bench`: the benchmark tools' CLI. Owns argument parsing and dispatch to the
//! load generator (`load`), the reference upstream (`upstream`), the idle-connection holder
//! (`idle`), the latency charts (`chart`, `spread`) and the added-time reader (`added`).

mod chart;
mod delay;
mod h1;
mod idle;
mod idle_h2;
mod load;
mod ring;
mod scrape;
mod spread;
mod sys;
mod upstream;
mod upstream_h2;
mod upstream_h3;

use std::{net::SocketAddr, path::PathBuf, time::Duration};

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
    /// A very fast upstream answering every request with a fixed 200: HTTP/1.1 and HTTP/2
    /// cleartext (prior knowledge) on the TCP port, HTTP/3 on the same UDP port with `--h3`.
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
        /// Wait this long before answering (`2ms`; 1 ms timer resolution).
        #[arg(long, default_value = "0s", value_parser = parse_duration)]
        delay: Duration,
        /// With `--delay`: pick each delay uniformly in [delay, delay-max] instead.
        #[arg(long, value_parser = parse_duration)]
        delay_max: Option<Duration>,
        /// Also serve HTTP/3 on the same port number (UDP), with a self-signed certificate for
        /// `localhost` and 127.0.0.1 (load it with `--insecure`).
        #[arg(long)]
        h3: bool,
    },
    /// HTTP/1.1, HTTP/2 or HTTP/3 load: closed loop (max throughput) or open loop (`--rate`,
    /// constant arrival rate, latency from the intended send time); prints a JSON report.
    Load(load::LoadOpts),
    /// Draw an SVG chart of latency percentiles from `load` JSON reports.
    Chart {
        /// Output SVG file.
        #[arg(short = 'o', long)]
        out: PathBuf,
        /// Chart title.
        #[arg(long, default_value = "Latency percentiles")]
        title: String,
        /// Series as `LABEL=report.json` (one per gateway, drawn in this order).
        #[arg(required = true)]
        series: Vec<String>,
    },
    /// Draw an SVG of per-round values by group and series (median, middle half, range) from
    /// `series<TAB>group<TAB>value` lines.
    Spread {
        /// Tab-separated input.
        input: PathBuf,
        /// Output SVG file.
        #[arg(short = 'o', long)]
        out: PathBuf,
        /// Chart title.
        #[arg(long, default_value = "Per-round values")]
        title: String,
        /// Axis label.
        #[arg(long, default_value = "µs")]
        unit: String,
    },
    /// The gateway's own added time between two `/metrics` scrapes (before, after): request
    /// count and p50/p99/p99.9 in µs as one JSON line.
    Added {
        /// Scrape taken before the window.
        before: PathBuf,
        /// Scrape taken after it.
        after: PathBuf,
        /// Histogram to read.
        #[arg(long, default_value = scrape::ADDED)]
        metric: String,
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
        /// HTTP/2 (prior knowledge in cleartext, ALPN h2 with --tls) instead of HTTP/1.1.
        #[arg(long)]
        h2: bool,
        /// TLS (any server certificate is accepted; SNI localhost).
        #[arg(long)]
        tls: bool,
        /// Spread source addresses over this many addresses from 127.1.0.1 up (0: 127.0.0.1).
        #[arg(long, default_value_t = 0)]
        sources: u32,
        /// Raise RLIMIT_NOFILE (soft and hard) to this first (root, beyond the hard limit).
        #[arg(long)]
        nofile: Option<u64>,
    },
}

/// Parses `10s`, `500ms`, `2m` or a plain number of seconds.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s.find(|c: char| c.is_ascii_alphabetic()).map_or((s, "s"), |i| s.split_at(i));
    let v: f64 = num.parse().map_err(|_| format!("bad duration {s:?} (try 10s, 500ms)"))?;
    let secs = match unit {
        "ms" => v / 1000.0,
        "s" => v,
        "m" => v * 60.0,
        _ => return Err(format!("bad duration unit in {s:?} (ms, s or m)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("bad duration {s:?}: {e}"))
}

fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::Load(opts) => load::run(&opts).map(|_| ()),
        Cmd::Chart { out, title, series } => chart::run(&out, &title, &series),
        Cmd::Spread { input, out, title, unit } => spread::run(&input, &out, &title, &unit),
        Cmd::Added { before, after, metric } => scrape::run(&before, &after, &metric),
        Cmd::Upstream { listen, body_size, cpu, ring, backlog, delay, delay_max, h3 } => {
            let delay = delay::Delay { min: delay, max: delay_max.unwrap_or(delay) };
            upstream::run(&upstream::UpstreamOpts { listen, body_size, cpu, ring, backlog, delay, h3 })
        }
        Cmd::Idle { target, conns, hold_secs, threads, path, h2, tls, sources, nofile } => {
            idle::run(&idle::IdleOpts { target, conns, hold_secs, threads, path, h2, tls, sources, nofile })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("3h").is_err());
    }
}
