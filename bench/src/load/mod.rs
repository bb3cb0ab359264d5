//! `portcullis-bench load`: a thread-per-core HTTP/1.1 load generator. Owns the run: parses the
//! target URL, splits the connections over pinned threads (one monoio io_uring runtime each),
//! starts every connection at the same instant, merges the threads' histograms and prints the
//! JSON report. Per-connection behaviour lives in `conn`, timing in `schedule` and `pacer`.

mod conn;
mod pacer;
mod response;
mod schedule;
mod stats;

use std::{
    cell::RefCell,
    net::{SocketAddr, ToSocketAddrs},
    rc::Rc,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

use crate::{ring, sys};
use conn::Plan;
pub use stats::{Report, RunShape, Stats};

/// Settings of the `load` subcommand.
#[derive(Debug, Clone)]
pub struct LoadOpts {
    /// `http://host:port/path`.
    pub url: String,
    /// Connections.
    pub conns: usize,
    /// Closed loop: requests in flight per connection.
    pub pipeline: usize,
    /// Open loop: requests per second over all connections (`None` = closed loop).
    pub rate: Option<f64>,
    /// Generator threads.
    pub threads: usize,
    /// CPUs to pin the threads to (thread i on `cpus[i % len]`); empty = no pinning.
    pub cpus: Vec<usize>,
    /// Warm-up excluded from the figures.
    pub warmup: Duration,
    /// Measured window.
    pub duration: Duration,
    /// Connect and response timeout.
    pub timeout: Duration,
    /// Extra request header lines (`Name: value`).
    pub headers: Vec<String>,
    /// Write the JSON here instead of stdout.
    pub out: Option<std::path::PathBuf>,
}

/// Host header value, socket address and path of an `http://` URL.
fn parse_url(url: &str) -> Result<(String, SocketAddr, String)> {
    let Some(rest) = url.strip_prefix("http://") else {
        bail!("only http:// URLs are supported (got {url})");
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        bail!("no host in {url}");
    }
    let with_port = if authority.rsplit(':').next().is_some_and(|p| p.parse::<u16>().is_ok())
        && !authority.ends_with(']')
    {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let addr = with_port
        .to_socket_addrs()
        .with_context(|| format!("resolving {authority}"))?
        .next()
        .with_context(|| format!("{authority} resolves to no address"))?;
    Ok((authority.to_owned(), addr, path.to_owned()))
}

/// Encodes the one request every connection sends.
fn encode_request(host: &str, path: &str, headers: &[String]) -> Result<Vec<u8>> {
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n");
    for h in headers {
        if !h.contains(':') || h.contains('\r') || h.contains('\n') {
            bail!("header {h:?} is not `Name: value`");
        }
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    Ok(req.into_bytes())
}

/// Runs the load and prints the report; returns it as well (for tests and the harness).
pub fn run(opts: &LoadOpts) -> Result<Report> {
    if opts.conns == 0 {
        bail!("--conns must be at least 1");
    }
    if opts.rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
        bail!("--rate must be a positive number of requests per second");
    }
    let (host, addr, path) = parse_url(&opts.url)?;
    let request = encode_request(&host, &path, &opts.headers)?;
    let nofile = sys::raise_nofile()?;
    if (nofile as usize) < opts.conns + 64 {
        eprintln!("warning: RLIMIT_NOFILE is {nofile}, below {} connections + slack", opts.conns);
    }
    let threads = opts.threads.clamp(1, opts.conns);
    let pipeline = if opts.rate.is_some() { 1 } else { opts.pipeline.max(1) };
    // Every connection connects first, then all start sending at `begin`.
    let begin = Instant::now() + Duration::from_millis(300);
    let measure_from = begin + opts.warmup;
    let plan = Plan {
        addr,
        request,
        pipeline,
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
                s.spawn(move || thread_main(plan, t, threads, cpu))
            })
            .collect();
        for h in handles {
            let stats = h.join().map_err(|_| anyhow::anyhow!("a generator thread panicked"))??;
            total.merge(&stats)?;
        }
        Ok(())
    })?;
    let shape = RunShape {
        url: format!("http://{host}{path}"),
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
fn thread_main(plan: &Plan, t: usize, threads: usize, cpu: Option<usize>) -> Result<Stats> {
    if let Some(cpu) = cpu {
        sys::pin(cpu)?;
    }
    let (mut rt, _flags) = ring::build(ring::RingMode::Auto)?;
    let plan = Rc::new(Plan { request: plan.request.clone(), ..*plan });
    let stats = Rc::new(RefCell::new(Stats::new()?));
    rt.block_on({
        let stats = stats.clone();
        async move {
            let watch = (t == 0).then(|| monoio::spawn(watch_cpu(plan.clone(), stats.clone())));
            let tasks: Vec<_> = (t..plan.conns)
                .step_by(threads)
                .map(|i| monoio::spawn(conn::drive(plan.clone(), i, stats.clone())))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_with_and_without_port_and_path() {
        let (host, addr, path) = parse_url("http://127.0.0.1:9000/a/b?c=1").expect("url");
        assert_eq!((host.as_str(), addr.port(), path.as_str()), ("127.0.0.1:9000", 9000, "/a/b?c=1"));
        let (_, addr, path) = parse_url("http://127.0.0.1").expect("url");
        assert_eq!((addr.port(), path.as_str()), (80, "/"));
        assert!(parse_url("https://127.0.0.1/").is_err());
        assert!(parse_url("http:///x").is_err());
    }

    #[test]
    fn request_is_encoded_once_with_extra_headers() {
        let req = encode_request("h:1", "/p", &["X-A: 1".into()]).expect("request");
        assert_eq!(req, b"GET /p HTTP/1.1\r\nHost: h:1\r\nX-A: 1\r\n\r\n");
        assert!(encode_request("h", "/", &["bad".into()]).is_err());
        assert!(encode_request("h", "/", &["X: a\r\nY: b".into()]).is_err());
    }
}
