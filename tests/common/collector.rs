//! A real HTTP collector endpoint for OTLP/HTTP export tests: a std thread accepting POSTs on an
//! ephemeral port, answering 200 and keeping every request body (parsed as JSON).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One received POST.
#[derive(Clone, Debug)]
pub struct Post {
    /// Request target.
    pub path: String,
    /// `Content-Type` header value.
    pub content_type: String,
    /// Body parsed as JSON.
    pub body: serde_json::Value,
}

/// The collector; stops accepting when dropped (the thread ends with the test process).
pub struct Collector {
    /// Its address.
    pub addr: SocketAddr,
    posts: Arc<Mutex<Vec<Post>>>,
}

impl Collector {
    /// Starts listening on 127.0.0.1 (ephemeral port).
    pub fn start() -> Collector {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind collector");
        let addr = listener.local_addr().expect("collector address");
        let posts = Arc::new(Mutex::new(Vec::new()));
        let store = posts.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
                let mut reader = BufReader::new(conn.try_clone().expect("clone"));
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let path = line.split(' ').nth(1).unwrap_or_default().to_owned();
                let (mut len, mut content_type) = (0usize, String::new());
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                        break;
                    }
                    let (name, value) = h.split_once(':').unwrap_or((&h, ""));
                    match name.trim().to_ascii_lowercase().as_str() {
                        "content-length" => len = value.trim().parse().unwrap_or(0),
                        "content-type" => content_type = value.trim().to_owned(),
                        _ => {}
                    }
                }
                let mut body = vec![0u8; len];
                if reader.read_exact(&mut body).is_err() {
                    continue;
                }
                let body = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
                store.lock().expect("posts").push(Post { path, content_type, body });
                let _ =
                    conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}");
            }
        });
        Collector { addr, posts }
    }

    /// Every POST so far.
    pub fn posts(&self) -> Vec<Post> {
        self.posts.lock().expect("posts").clone()
    }

    /// Every span received so far (OTLP JSON `resourceSpans[].scopeSpans[].spans[]`).
    pub fn spans(&self) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        for p in self.posts() {
            for rs in p.body["resourceSpans"].as_array().into_iter().flatten() {
                for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                    out.extend(ss["spans"].as_array().into_iter().flatten().cloned());
                }
            }
        }
        out
    }

    /// Waits until at least `n` spans arrived (or panics after `timeout`).
    pub fn wait_spans(&self, n: usize, timeout: Duration) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let spans = self.spans();
            if spans.len() >= n {
                return spans;
            }
            assert!(Instant::now() < deadline, "{} spans arrived, want {n}", spans.len());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
