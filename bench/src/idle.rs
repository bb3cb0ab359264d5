//! The idle-connection holder: opens N keep-alive connections to a gateway (HTTP/1.1 or HTTP/2,
//! cleartext or TLS), proves each with one request, holds them idle so a harness can read the
//! gateway's memory, then re-checks them. Source addresses can be spread over 127.0.0.0/8 so one
//! holder can open more connections than one source address has ephemeral ports.
//!
//! Owns: opening, holding and re-checking the idle connections. Must not: measure the gateway
//! (the harness reads its RSS).

use std::{
    io::{Read, Write},
    net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream},
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use socket2::{Domain, Socket, Type};

use crate::idle_h2;
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
    /// HTTP/2 (prior knowledge in cleartext, ALPN `h2` over TLS) instead of HTTP/1.1.
    pub h2: bool,
    /// TLS (any server certificate accepted).
    pub tls: bool,
    /// Spread the connections' source addresses over this many addresses from 127.1.0.1 up
    /// (0: the kernel picks, 127.0.0.1).
    pub sources: u32,
    /// Raise RLIMIT_NOFILE (soft and hard) to this first (needs root above the hard limit).
    pub nofile: Option<u64>,
}

const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A held connection: plain TCP or TLS over it.
trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// How each connection speaks.
struct Proto {
    request: Vec<u8>,
    h2: bool,
    tls: Option<Arc<rustls::ClientConfig>>,
    authority: String,
    path: String,
}

/// Opens, holds and re-checks the connections; prints `OPENED`, `HOLDING`, `ALIVE` lines.
pub fn run(opts: &IdleOpts) -> Result<()> {
    if let Some(n) = opts.nofile {
        sys::set_nofile(n)?;
    }
    let nofile = sys::raise_nofile()?;
    if (nofile as usize) < opts.conns + 64 {
        eprintln!("warning: RLIMIT_NOFILE is {nofile}, below {} connections + slack", opts.conns);
    }
    let authority =
        if opts.tls { format!("localhost:{}", opts.target.port()) } else { opts.target.to_string() };
    let proto = Proto {
        request: format!(
            "GET {} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: portcullis-bench-idle\r\n\r\n",
            opts.path
        )
        .into_bytes(),
        h2: opts.h2,
        tls: opts.tls.then(|| client_tls(opts.h2)),
        authority,
        path: opts.path.clone(),
    };
    let threads = opts.threads.clamp(1, 64).min(opts.conns.max(1));
    let started = Instant::now();
    let mut conns: Vec<Box<dyn Stream>> = Vec::with_capacity(opts.conns);
    let mut errors: Vec<String> = Vec::new();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let share = opts.conns / threads + usize::from(i < opts.conns % threads);
                let proto = &proto;
                s.spawn(move || open_many(opts, proto, i, threads, share))
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
    let alive =
        conns.iter_mut().map(|c| exchange(c.as_mut(), &proto, 3, &mut buf)).filter(Result::is_ok).count();
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

/// TLS client settings: any server certificate, ALPN for the protocol.
fn client_tls(h2: bool) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(portcullis_http::upstream::NoVerify(provider)))
        .with_no_client_auth();
    config.alpn_protocols = vec![if h2 { b"h2".to_vec() } else { b"http/1.1".to_vec() }];
    // One session cache per holder would resume handshakes; each connection should pay a full one.
    config.resumption = rustls::client::Resumption::disabled();
    Arc::new(config)
}

/// Opens `n` connections one after another (thread `t` of `threads`); stops at the first failure.
fn open_many(
    opts: &IdleOpts,
    proto: &Proto,
    t: usize,
    threads: usize,
    n: usize,
) -> (Vec<Box<dyn Stream>>, Option<String>) {
    let mut conns = Vec::with_capacity(n);
    let mut buf = Vec::with_capacity(4096);
    for k in 0..n {
        let source = source_addr(opts.sources, k * threads + t);
        match open_one(opts.target, source, proto, &mut buf) {
            Ok(c) => conns.push(c),
            Err(e) => return (conns, Some(format!("{e:#}"))),
        }
    }
    (conns, None)
}

/// The source address of connection `i`: 127.1.0.1 and up, over `sources` addresses.
fn source_addr(sources: u32, i: usize) -> Option<SocketAddr> {
    if sources == 0 {
        return None;
    }
    let j = (i as u32 % sources) + 1;
    let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 1, 0, 0)) + j);
    Some(SocketAddr::V4(SocketAddrV4::new(ip, 0)))
}

fn connect(target: SocketAddr, source: Option<SocketAddr>) -> Result<TcpStream> {
    let Some(source) = source else {
        return TcpStream::connect_timeout(&target, IO_TIMEOUT).context("connect");
    };
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).context("socket")?;
    // The port is chosen at connect, per destination, not reserved at bind.
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let on: libc::c_int = 1;
        // SAFETY: a valid socket, option and an int-sized option value that outlives the call.
        unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_BIND_ADDRESS_NO_PORT,
                (&raw const on).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
    }
    socket.bind(&source.into()).with_context(|| format!("bind {source}"))?;
    socket.connect_timeout(&target.into(), IO_TIMEOUT).with_context(|| format!("connect from {source}"))?;
    Ok(socket.into())
}

fn open_one(
    target: SocketAddr,
    source: Option<SocketAddr>,
    proto: &Proto,
    buf: &mut Vec<u8>,
) -> Result<Box<dyn Stream>> {
    let stream = connect(target, source)?;
    stream.set_read_timeout(Some(IO_TIMEOUT)).context("set_read_timeout")?;
    stream.set_write_timeout(Some(IO_TIMEOUT)).context("set_write_timeout")?;
    stream.set_nodelay(true).context("set_nodelay")?;
    let mut stream: Box<dyn Stream> = match &proto.tls {
        None => Box::new(stream),
        Some(config) => {
            let name = rustls::pki_types::ServerName::try_from("localhost").context("server name")?;
            let conn = rustls::ClientConnection::new(config.clone(), name).context("TLS client")?;
            Box::new(rustls::StreamOwned::new(conn, stream))
        }
    };
    if proto.h2 {
        stream.write_all(&idle_h2::client_start()).context("write HTTP/2 preface")?;
    }
    exchange(stream.as_mut(), proto, 1, buf)?;
    Ok(stream)
}

/// One request and its whole response (`stream_id` for HTTP/2).
fn exchange(stream: &mut dyn Stream, proto: &Proto, stream_id: u32, buf: &mut Vec<u8>) -> Result<()> {
    if proto.h2 {
        let scheme = if proto.tls.is_some() { "https" } else { "http" };
        idle_h2::get(stream, stream_id, scheme, &proto.authority, &proto.path)
    } else {
        h1_exchange(stream, &proto.request, buf).map(|_| ())
    }
}

/// Sends one request and reads one complete Content-Length-framed response.
fn h1_exchange(stream: &mut dyn Stream, request: &[u8], buf: &mut Vec<u8>) -> Result<u16> {
    stream.write_all(request).context("write request")?;
    stream.flush().context("flush request")?;
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

    #[test]
    fn sources_spread_over_127_1() {
        assert_eq!(source_addr(0, 5), None);
        assert_eq!(source_addr(4, 0), Some("127.1.0.1:0".parse().expect("addr")));
        assert_eq!(source_addr(4, 5), Some("127.1.0.2:0".parse().expect("addr")));
        assert_eq!(source_addr(300, 299), Some("127.1.1.44:0".parse().expect("addr")));
    }
}
