//! A real `redis-server` for the tests: started on a free port with persistence off, ready once
//! it answers PING, killed when dropped; it can be killed and restarted on the same port to test
//! outages. `.ci/test` installs the `redis-server` Debian package when it is missing.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long redis-server may take to answer its first PING.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// A running (or stopped) redis-server on a fixed port.
pub struct Redis {
    /// Where it listens.
    pub addr: SocketAddr,
    child: Option<Child>,
}

/// True when it answers `PING` with `+PONG`.
pub fn ping(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

/// Sends one command and returns the first line of the reply (enough for integer and status
/// replies, e.g. `:1` for a `ZADD` that added a member).
pub fn command(addr: SocketAddr, args: &[&str]) -> String {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect to redis");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    s.write_all(req.as_bytes()).expect("write to redis");
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        s.read_exact(&mut b).expect("redis reply");
        line.push(b[0]);
    }
    String::from_utf8_lossy(&line[..line.len() - 2]).into_owned()
}

impl Redis {
    /// Starts redis-server on a free port and waits until it answers PING.
    pub fn start() -> Redis {
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
        let mut r = Redis { addr: SocketAddr::from(([127, 0, 0, 1], port)), child: None };
        r.restart();
        r
    }

    /// (Re)starts the server on its port and waits for PING.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "redis-server is already running");
        let child = Command::new("redis-server")
            .args(["--port", &self.addr.port().to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start redis-server ({e}); install it: apt-get install redis-server (.ci/test does)"));
        self.child = Some(child);
        let deadline = Instant::now() + READY_TIMEOUT;
        while !ping(self.addr) {
            assert!(Instant::now() < deadline, "redis-server on {} never answered PING", self.addr);
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Kills the server (SIGKILL) and waits until it is gone.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}
