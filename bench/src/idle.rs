//! The idle-connection holder: opens N keep-alive connections to a gateway, proves each with
//! one request, holds them idle so a harness can read the gateway's memory, then re-checks them.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

use crate::sys;

/// Settings of the `idle` subcommand.
#[derive(Debug, Clone)]
pub struct IdleOpts {
    /// Gateway address.
    pub target: SocketAddr,
    /// Connections to open.
    pub conns: usize,
    /// Seconds to hold them idle.
    pub hold_secs: u64,
    /// Threads opening connections in parallel.
    pub threads: usize,
    /// Request path.
    pub path: String,
}

const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens, holds and re-checks the connections; prints `OPENED`, `HOLDING`, `ALIVE` lines.
pub fn run(opts: &IdleOpts) -> Result<()> {
    let nofile = sys::raise_nofile()?;
    if (nofile as usize) < opts.conns + 64 {
        eprintln!("warning: RLIMIT_NOFILE is {nofile}, below {} connections + slack", opts.conns);
    }
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: portcullis-bench-idle\r\n\r\n",
        opts.path, opts.target
    )
    .into_bytes();
    let threads = opts.threads.clamp(1, 64).min(opts.conns.max(1));
    let started = Instant::now();
    let mut conns: Vec<TcpStream> = Vec::with_capacity(opts.conns);
    let mut errors: Vec<String> = Vec::new();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let share = opts.conns / threads + usize::from(i < opts.conns % threads);
                let request = &request;
                s.spawn(move || open_many(opts.target, share, request))
            })
            .collect();
        for h in handles {
            match h.join() {
                Ok((mut got, err)) => {
                    conns.append(&mut got);
                    errors.extend(err);
                }
                Err(_) => errors.push("an opener thread panicked".to_owned()),
            }
        }
    });
    println!("OPENED {} of {} in {:.2}s", conns.len(), opts.conns, started.elapsed().as_secs_f64());
    for e in errors.iter().take(5) {
        eprintln!("open error: {e}");
    }
    println!("HOLDING {}", conns.len());
    flush_stdout();
    std::thread::sleep(Duration::from_secs(opts.hold_secs));
    let mut buf = Vec::with_capacity(4096);
    let alive = conns.iter_mut().map(|c| exchange(c, &request, &mut buf)).filter(Result::is_ok).count();
    println!("ALIVE {alive} of {}", conns.len());
    flush_stdout();
    if conns.is_empty() && opts.conns > 0 {
        bail!("no connection could be opened to {}", opts.target);
    }
    Ok(())
}

fn flush_stdout() {
    let _ = std::io::stdout().flush();
}

/// Opens `n` connections one after another; stops at the first failure.
fn open_many(target: SocketAddr, n: usize, request: &[u8]) -> (Vec<TcpStream>, Option<String>) {
    let mut conns = Vec::with_capacity(n);
    let mut buf = Vec::with_capacity(4096);
    for _ in 0..n {
        match open_one(target, request, &mut buf) {
            Ok(c) => conns.push(c),
            Err(e) => return (conns, Some(format!("{e:#}"))),
        }
    }
    (conns, None)
}

fn open_one(target: SocketAddr, request: &[u8], buf: &mut Vec<u8>) -> Result<TcpStream> {
    let mut stream = TcpStream::connect_timeout(&target, IO_TIMEOUT).context("connect")?;
    stream.set_read_timeout(Some(IO_TIMEOUT)).context("set_read_timeout")?;
    stream.set_write_timeout(Some(IO_TIMEOUT)).context("set_write_timeout")?;
    stream.set_nodelay(true).context("set_nodelay")?;
    exchange(&mut stream, request, buf)?;
    Ok(stream)
}

/// Sends one request and reads one complete Content-Length-framed response.
fn exchange(stream: &mut TcpStream, request: &[u8], buf: &mut Vec<u8>) -> Result<u16> {
    stream.write_all(request).context("write request")?;
    buf.clear();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).context("read response")?;
        if n == 0 {
            bail!("connection closed before a full response");
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some((status, total)) = response_len(buf)?
            && buf.len() >= total
        {
            if buf.len() > total {
                bail!("unexpected bytes after the response");
            }
            return Ok(status);
        }
        if buf.len() > 1 << 20 {
            bail!("response larger than 1 MiB");
        }
    }
}

/// Status and total length (head + body) of the response at the start of `buf`, if complete.
fn response_len(buf: &[u8]) -> Result<Option<(u16, usize)>> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    let head = match resp.parse(buf).context("malformed response")? {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => return Ok(None),
    };
    let status = resp.code.unwrap_or_default();
    let length = resp
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| std::str::from_utf8(h.value).ok())
        .and_then(|v| v.trim().parse::<usize>().ok());
    match length {
        Some(len) => Ok(Some((status, head + len))),
        None if status == 204 || status == 304 => Ok(Some((status, head))),
        None => bail!("response without Content-Length (status {status}) is not supported"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_framing() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(response_len(ok).ok().flatten(), Some((200, ok.len())));
        assert_eq!(response_len(&ok[..10]).ok().flatten(), None);
        assert!(response_len(b"HTTP/1.1 200 OK\r\n\r\n").is_err());
        assert_eq!(response_len(b"HTTP/1.1 204 No Content\r\n\r\n").ok().flatten(), Some((204, 27)));
    }
}
