//! `portcullis-bench load`: a thread-per-core HTTP/1.1, HTTP/2 and HTTP/3 load generator. Owns
//! the run: splits the connections over pinned threads (one monoio io_uring runtime each),
//! starts every connection at the same instant, merges the threads' histograms and prints the
//! JSON report. The target and requests are set up in `target`; per-connection behaviour lives
//! in `conn` (HTTP/1.1) and `mux` (HTTP/2 in `h2`, HTTP/3 in `h3`), what they share in `plan`,
//! timing in `schedule` and `pacer`, failure kinds in `errors`, reconnecting in `outcome`.

mod conn;
mod errors;
mod h2;
mod h3;
mod mux;
mod outcome;
mod pacer;
mod plan;
mod response;
mod schedule;
mod stats;
mod target;

use std::{
    cell::RefCell,
    path::PathBuf,
    rc::Rc,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

use crate::{ring, sys};
use plan::Plan;
pub use stats::{Report, RunShape, Stats};
pub use target::Proto;
use target::Url;

/// Settings of the `load` subcommand.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadOpts {
    /// Target URL (`http://host:port/path`; `https://` for TLS).
    pub url: String,
    /// Protocol: h1, h2 (TLS for https://, prior-knowledge h2c for http://) or h3.
    #[arg(long, value_enum, default_value = "h1")]
    pub proto: Proto,
    /// Connections.
    #[arg(short = 'c', long, default_value_t = 32)]
    pub conns: usize,
    /// HTTP/1.1 closed loop: requests in flight per connection (pipelining).
    #[arg(short = 'p', long, default_value_t = 1)]
    pub pipeline: usize,
    /// HTTP/2 and HTTP/3: concurrent streams per connection (each one request at a time).
    #[arg(short = 'm', long, default_value_t = 10)]
    pub streams: usize,
    /// https://: accept any server certificate (self-signed benchmark certificates).
    #[arg(short = 'k', long)]
    pub insecure: bool,
    /// https://: PEM file with the CA certificate(s) to verify the server with.
    #[arg(long)]
    pub cacert: Option<PathBuf>,
    /// Open loop: requests per second over all connections (omit for a closed loop).
    #[arg(short = 'r', long)]
    pub rate: Option<f64>,
    /// Generator threads, one io_uring runtime each.
    #[arg(short = 't', long, default_value_t = 1)]
    pub threads: usize,
    /// Pin thread i to CPU `cpus[i % n]` (comma-separated list).
    #[arg(long, value_delimiter = ',')]
    pub cpus: Vec<usize>,
    /// Warm-up, excluded from every figure (`2s`, `500ms`).
    #[arg(short = 'w', long, default_value = "2s", value_parser = crate::parse_duration)]
    pub warmup: Duration,
    /// Measured window (`10s`).
    #[arg(short = 'd', long, default_value = "10s", value_parser = crate::parse_duration)]
    pub duration: Duration,
    /// Connect and response timeout (`5s`).
    #[arg(long, default_value = "5s", value_parser = crate::parse_duration)]
    pub timeout: Duration,
    /// Extra request header, `Name: value` (repeatable).
    #[arg(short = 'H', long = "header")]
    pub headers: Vec<String>,
    /// Write the JSON report to this file instead of stdout.
    #[arg(short = 'o', long)]
    pub out: Option<PathBuf>,
}

/// Runs the load and prints the report; returns it as well (for tests and the harness).
pub fn run(opts: &LoadOpts) -> Result<Report> {
    if opts.conns == 0 {
        bail!("--conns must be at least 1");
    }
    if opts.rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
        bail!("--rate must be a positive number of requests per second");
    }
    let url = Url::parse(&opts.url)?;
    match (opts.proto, url.tls) {
        (Proto::H1, true) => bail!("--proto h1 speaks cleartext only: use an http:// URL"),
        (Proto::H3, false) => bail!("--proto h3 needs an https:// URL (QUIC is always encrypted)"),
        _ => {}
    }
    let request = target::encode_request(&url.authority, &url.path, &opts.headers)?;
    let template = target::template(&url, &opts.headers)?;
    let (tls, quic) = match (url.tls, opts.proto) {
        (false, _) => (None, None),
        (true, Proto::H3) => {
            let tls = target::client_tls(opts.insecure, opts.cacert.as_deref(), true)?;
            (None, Some(portcullis_quic::client::H3Client::config_from(tls)?))
        }
        (true, _) => {
            let mut tls = target::client_tls(opts.insecure, opts.cacert.as_deref(), false)?;
            tls.alpn_protocols = vec![b"h2".to_vec()];
            (Some(Arc::new(tls)), None)
        }
    };
    let nofile = sys::raise_nofile()?;
    if (nofile as usize) < opts.conns + 64 {
        eprintln!("warning: RLIMIT_NOFILE is {nofile}, below {} connections + slack", opts.conns);
    }
    let threads = opts.threads.clamp(1, opts.conns);
    let pipeline = if opts.rate.is_some() || opts.proto != Proto::H1 { 1 } else { opts.pipeline.max(1) };
    let streams = if opts.proto == Proto::H1 { 1 } else { opts.streams.max(1) };
    // Every connection connects first, then all start sending at `begin`.
    let begin = Instant::now() + Duration::from_millis(300);
    let measure_from = begin + opts.warmup;
    let plan = Plan {
        addr: url.addr,
        request,
        template,
        pipeline,
        streams,
        tls,
        quic,
        server_name: url.host.clone(),
        timeout: opts.timeout,
        rate: opts.rate,
        conns: opts.conns,
        begin,
        measure_from,
        end: measure_from + opts.duration,
    };
    let mut total = Stats::new()?;
    std::thread::scope(|s| -> Result<()> {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let plan = &plan;
                let cpu = (!opts.cpus.is_empty()).then(|| opts.cpus[t % opts.cpus.len()]);
                s.spawn(move || thread_main(plan, opts.proto, t, threads, cpu))
            })
            .collect();
        for h in handles {
            let stats = h.join().map_err(|_| anyhow::anyhow!("a generator thread panicked"))??;
            total.merge(&stats)?;
        }
        Ok(())
    })?;
    let shape = RunShape {
        url: url.display(),
        protocol: url.label(opts.proto),
        streams,
        rate: opts.rate,
        connections: opts.conns,
        pipeline,
        threads,
        warmup: opts.warmup,
        duration: opts.duration,
    };
    let report = Report::new(&shape, &total);
    let json = serde_json::to_string_pretty(&report)?;
    match &opts.out {
        Some(path) => {
            std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))?
        }
        None => {
            use std::io::Write as _;
            let mut stdout = std::io::stdout().lock();
            writeln!(stdout, "{json}")
                .and_then(|()| stdout.flush())
                .context("writing the report to stdout")?;
        }
    }
    eprintln!("{}", report.summary());
    Ok(report)
}

/// One generator thread: its own ring, connection slots `t, t + threads, ...`.
fn thread_main(plan: &Plan, proto: Proto, t: usize, threads: usize, cpu: Option<usize>) -> Result<Stats> {
    if let Some(cpu) = cpu {
        sys::pin(cpu)?;
    }
    let (mut rt, _flags) = ring::build(ring::RingMode::Auto)?;
    let plan = Rc::new(plan.clone());
    let stats = Rc::new(RefCell::new(Stats::new()?));
    rt.block_on({
        let stats = stats.clone();
        async move {
            let watch = (t == 0).then(|| monoio::spawn(watch_cpu(plan.clone(), stats.clone())));
            let tasks: Vec<_> = (t..plan.conns)
                .step_by(threads)
                .map(|i| {
                    let (plan, stats) = (plan.clone(), stats.clone());
                    match proto {
                        Proto::H1 => monoio::spawn(conn::drive(plan, i, stats)),
                        Proto::H2 => monoio::spawn(mux::drive::<h2::H2Conn>(plan, i, stats)),
                        Proto::H3 => monoio::spawn(mux::drive::<h3::H3Conn>(plan, i, stats)),
                    }
                })
                .collect();
            for task in tasks {
                task.await;
            }
            if let Some(watch) = watch {
                watch.await;
            }
        }
    });
    Rc::try_unwrap(stats)
        .map(RefCell::into_inner)
        .map_err(|_| anyhow::anyhow!("connection tasks outlived the runtime"))
}

/// CPU time (user + system) of the whole process so far.
fn process_cpu() -> Duration {
    // SAFETY: an all-zero rusage is a valid value for the kernel to overwrite.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable rusage for the duration of the call.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, (t.tv_usec as u32).saturating_mul(1000));
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Samples the process's CPU time at the start and end of the measured window.
async fn watch_cpu(plan: Rc<Plan>, stats: Rc<RefCell<Stats>>) {
    monoio::time::sleep_until(plan.measure_from.into()).await;
    let start = process_cpu();
    monoio::time::sleep_until(plan.end.into()).await;
    stats.borrow_mut().generator_cpu = process_cpu().saturating_sub(start);
}
