//! A lean RESP2 client for the background threads: blocking `std::net` socket with timeouts, one
//! command in flight, replies parsed into `Value`.
//!
//! Owns: the Redis wire format and one connection. Must not: be used on a shard (it blocks) or
//! know what the commands mean. Why not the `redis` crate: the sync thread needs five commands on
//! one blocking socket with hard timeouts; this is ~150 lines without an async runtime or its
//! dependency tree on a machine where every build is shared.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};

/// Deepest nesting of arrays accepted in a reply.
const MAX_DEPTH: usize = 4;
/// Largest bulk string or array accepted in a reply.
const MAX_LEN: usize = 64 * 1024 * 1024;

/// One RESP reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Value {
    /// `+OK`
    Simple(String),
    /// `-ERR ...`
    Error(String),
    /// `:42`
    Int(i64),
    /// `$n` (None for the null bulk string).
    Bulk(Option<Vec<u8>>),
    /// `*n` (None for the null array).
    Array(Option<Vec<Value>>),
}

/// The socket under a connection: plain TCP or TLS (rustls) over it.
enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// One blocking connection to Redis.
pub(crate) struct Conn {
    reader: BufReader<Stream>,
    out: Vec<u8>,
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

impl Conn {
    /// Connects to `addr` (`host:port`), trying each resolved address, with `timeout` for the
    /// connect and for every later read and write; over TLS with `tls` (the server's name is the
    /// host of `addr`), the handshake completing within the timeout too.
    pub(crate) fn connect(
        addr: &str,
        timeout: Duration,
        tls: Option<&Arc<ClientConfig>>,
    ) -> io::Result<Conn> {
        let mut last = io::Error::new(io::ErrorKind::NotFound, format!("{addr} resolves to nothing"));
        for sa in addr.to_socket_addrs()? {
            match TcpStream::connect_timeout(&sa, timeout) {
                Ok(stream) => {
                    stream.set_nodelay(true)?;
                    stream.set_read_timeout(Some(timeout))?;
                    stream.set_write_timeout(Some(timeout))?;
                    let stream = match tls {
                        None => Stream::Plain(stream),
                        Some(cfg) => Stream::Tls(Box::new(handshake(addr, stream, cfg)?)),
                    };
                    return Ok(Conn { reader: BufReader::with_capacity(16 * 1024, stream), out: Vec::new() });
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Sends one command and reads its reply (a Redis error reply is `Ok(Value::Error)`).
    pub(crate) fn command<A: AsRef<[u8]>>(&mut self, args: &[A]) -> io::Result<Value> {
        self.out.clear();
        encode(&mut self.out, args);
        self.reader.get_mut().write_all(&self.out)?;
        read_value(&mut self.reader, 0)
    }

    /// Sends every command in one write, then reads their replies in order (one round trip).
    pub(crate) fn pipeline<A: AsRef<[u8]>>(&mut self, cmds: &[&[A]]) -> io::Result<Vec<Value>> {
        self.out.clear();
        for args in cmds {
            encode(&mut self.out, args);
        }
        self.reader.get_mut().write_all(&self.out)?;
        cmds.iter().map(|_| read_value(&mut self.reader, 0)).collect()
    }

    /// Authenticates the connection (`AUTH [user] password`); a refusal is an error that names
    /// the user but never the password.
    pub(crate) fn auth(&mut self, user: Option<&str>, password: &str) -> io::Result<()> {
        let reply = match user {
            Some(u) => self.command(&["AUTH", u, password])?,
            None => self.command(&["AUTH", password])?,
        };
        match reply {
            Value::Simple(_) => Ok(()),
            Value::Error(e) => Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("redis refused AUTH for user {:?}: {e}", user.unwrap_or("default")),
            )),
            other => Err(bad(format!("unexpected AUTH reply {other:?}"))),
        }
    }
}

/// The TLS handshake on `stream` for the host of `addr`.
fn handshake(
    addr: &str,
    mut stream: TcpStream,
    cfg: &Arc<ClientConfig>,
) -> io::Result<StreamOwned<ClientConnection, TcpStream>> {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h).trim_matches(['[', ']']);
    let name = ServerName::try_from(host.to_owned()).map_err(|e| {
        io::Error::new(io::ErrorKind::InvalidInput, format!("{host}: not a TLS server name: {e}"))
    })?;
    let mut conn = ClientConnection::new(cfg.clone(), name).map_err(io::Error::other)?;
    while conn.is_handshaking() {
        conn.complete_io(&mut stream)
            .map_err(|e| io::Error::new(e.kind(), format!("TLS handshake with {addr}: {e}")))?;
    }
    Ok(StreamOwned::new(conn, stream))
}

/// Appends `args` as a RESP array of bulk strings.
pub(crate) fn encode<A: AsRef<[u8]>>(out: &mut Vec<u8>, args: &[A]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        let a = a.as_ref();
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

fn read_line(r: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut line = Vec::with_capacity(32);
    r.read_until(b'\n', &mut line)?;
    if line.is_empty() {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "redis closed the connection"));
    }
    if !line.ends_with(b"\r\n") {
        return Err(bad("reply line without CRLF"));
    }
    line.truncate(line.len() - 2);
    Ok(line)
}

fn parse_int(b: &[u8]) -> io::Result<i64> {
    std::str::from_utf8(b).ok().and_then(|s| s.parse().ok()).ok_or_else(|| bad("invalid integer in reply"))
}

fn length(b: &[u8]) -> io::Result<Option<usize>> {
    let n = parse_int(b)?;
    if n < 0 {
        return Ok(None);
    }
    let n = usize::try_from(n).map_err(|_| bad("length out of range"))?;
    if n > MAX_LEN {
        return Err(bad("reply too large"));
    }
    Ok(Some(n))
}

/// Reads one reply.
pub(crate) fn read_value(r: &mut impl BufRead, depth: usize) -> io::Result<Value> {
    let line = read_line(r)?;
    let (&kind, rest) = line.split_first().ok_or_else(|| bad("empty reply line"))?;
    match kind {
        b'+' => Ok(Value::Simple(String::from_utf8_lossy(rest).into_owned())),
        b'-' => Ok(Value::Error(String::from_utf8_lossy(rest).into_owned())),
        b':' => Ok(Value::Int(parse_int(rest)?)),
        b'$' => match length(rest)? {
            None => Ok(Value::Bulk(None)),
            Some(n) => {
                let mut buf = vec![0; n + 2];
                r.read_exact(&mut buf)?;
                if !buf.ends_with(b"\r\n") {
                    return Err(bad("bulk string without CRLF"));
                }
                buf.truncate(n);
                Ok(Value::Bulk(Some(buf)))
            }
        },
        b'*' => {
            if depth >= MAX_DEPTH {
                return Err(bad("reply nested too deeply"));
            }
            match length(rest)? {
                None => Ok(Value::Array(None)),
                Some(n) => {
                    let mut items = Vec::with_capacity(n.min(4096));
                    for _ in 0..n {
                        items.push(read_value(r, depth + 1)?);
                    }
                    Ok(Value::Array(Some(items)))
                }
            }
        }
        other => Err(bad(format!("unknown reply type {:?}", other as char))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> io::Result<Value> {
        read_value(&mut io::Cursor::new(s.as_bytes().to_vec()), 0)
    }

    #[test]
    fn encodes_commands_as_bulk_arrays() {
        let mut out = Vec::new();
        encode(&mut out, &["GET", "k y"]);
        assert_eq!(out, b"*2\r\n$3\r\nGET\r\n$3\r\nk y\r\n");
    }

    #[test]
    fn parses_every_reply_type() {
        assert_eq!(parse("+PONG\r\n").expect("simple"), Value::Simple("PONG".into()));
        assert_eq!(parse("-NOSCRIPT x\r\n").expect("error"), Value::Error("NOSCRIPT x".into()));
        assert_eq!(parse(":-12\r\n").expect("int"), Value::Int(-12));
        assert_eq!(parse("$-1\r\n").expect("null"), Value::Bulk(None));
        assert_eq!(parse("$4\r\na\r\nb\r\n").expect("bulk"), Value::Bulk(Some(b"a\r\nb".to_vec())));
        assert_eq!(
            parse("*2\r\n*2\r\n:1\r\n:2\r\n$1\r\nx\r\n").expect("nested"),
            Value::Array(Some(vec![
                Value::Array(Some(vec![Value::Int(1), Value::Int(2)])),
                Value::Bulk(Some(b"x".to_vec()))
            ]))
        );
    }

    #[test]
    fn rejects_malformed_replies() {
        for bad in [
            "",
            "?x\r\n",
            ":abc\r\n",
            "$3\r\nabcd\r\n",
            "*1\r\n",
            "+OK\n",
            "*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
