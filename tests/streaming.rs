//! Large bodies both ways, generated on the fly and compared end to end by length and digest,
//! and the gateway's memory staying flat while a very large upload streams through it.

mod common;

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{
    Client, Digest, Framing, Gateway, Pattern, PatternCheck, Reply, Upstream, config, response, upstream_toml,
};

const MIB: u64 = 1024 * 1024;

/// An upstream that answers every request with the length and digest of the body it received.
fn sink() -> Upstream {
    Upstream::start(|req| {
        let body = serde_json::json!({
            "len": req.body_digest.0,
            "hash": req.body_digest.1.to_string(),
            "chunked": req.chunked,
            "pattern_mismatch": req.pattern_mismatch,
        });
        Reply::Raw(response(200, "OK", &[("Content-Type", "application/json")], body.to_string().as_bytes()))
    })
}

fn gateway_for(up: &Upstream) -> Gateway {
    Gateway::start(&config(
        "max_body_bytes = \"2GiB\"\nbody_timeout = \"30s\"",
        &format!("{}\n[[routes]]\nprefix = \"/\"\nupstream = \"app\"\n", upstream_toml("app", up.addr)),
    ))
}

/// Writes `len` bytes of pattern `seed` as a chunked body with varying chunk sizes; returns
/// the digest of the payload.
fn write_chunked(c: &mut Client, len: u64, seed: u64) -> (u64, u64) {
    let mut pattern = Pattern::new(seed);
    let mut digest = Digest::default();
    let sizes = [1usize, 65_536, 7, 300_001, 4096, 12_345, 1_000_000];
    let mut frame = Vec::with_capacity(1_100_000);
    let mut left = len;
    let mut i = 0;
    while left > 0 {
        let n = usize::try_from(left.min(sizes[i % sizes.len()] as u64)).expect("fits");
        frame.clear();
        frame.extend_from_slice(format!("{n:x}\r\n").as_bytes());
        let at = frame.len();
        frame.resize(at + n, 0);
        pattern.fill(&mut frame[at..]);
        digest.update(&frame[at..]);
        frame.extend_from_slice(b"\r\n");
        c.send(&frame);
        left -= n as u64;
        i += 1;
    }
    c.send(b"0\r\n\r\n");
    digest.finish()
}

/// Writes `len` bytes of pattern `seed` raw; returns their digest when `digest` is set.
fn write_raw(out: &mut impl Write, len: u64, seed: u64, digest: bool) -> Option<(u64, u64)> {
    let mut pattern = Pattern::new(seed);
    let mut d = Digest::default();
    let mut buf = vec![0u8; 256 * 1024];
    let mut left = len;
    while left > 0 {
        let n = usize::try_from(left.min(buf.len() as u64)).expect("fits");
        pattern.fill(&mut buf[..n]);
        if digest {
            d.update(&buf[..n]);
        }
        out.write_all(&buf[..n]).expect("write the body");
        left -= n as u64;
    }
    digest.then(|| d.finish())
}

fn assert_sink_saw(resp: &common::Response, sent: (u64, u64), chunked: bool) {
    assert_eq!(resp.status, 200, "{}", resp.text());
    let v = resp.json();
    assert_eq!(v["len"], sent.0, "length at the upstream");
    assert_eq!(v["hash"], sent.1.to_string(), "digest at the upstream");
    assert_eq!(v["chunked"], chunked, "framing toward the upstream");
}

#[test]
fn large_chunked_request_body_reaches_the_upstream_intact() {
    let up = sink();
    let gw = gateway_for(&up);
    let mut c = Client::connect(gw.addr);
    c.send(b"POST /upload HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
    let sent = write_chunked(&mut c, 64 * MIB, 1);
    let resp = c.read_response();
    assert_sink_saw(&resp, sent, true);
    // The connection is reusable after a streamed body.
    c.send(b"POST /again HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
    let sent = write_chunked(&mut c, 3 * MIB + 5, 2);
    assert_sink_saw(&c.read_response(), sent, true);
}

#[test]
fn large_chunked_and_sized_responses_reach_the_client_intact() {
    let len = 64 * MIB + 3;
    let up = Upstream::start(move |req| match req.path() {
        "/chunked" => Reply::Chunked { len, seed: 3, max_chunk: 200_000 },
        _ => Reply::Sized { len, seed: 4 },
    });
    let gw = gateway_for(&up);
    let mut c = Client::connect(gw.addr);

    c.send(b"GET /chunked HTTP/1.1\r\nHost: t\r\n\r\n");
    let mut check = PatternCheck::new(3);
    let resp = c.read_response_with(false, &mut |b| check.update(b)).expect("chunked response");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.framing, Framing::Chunked);
    assert_eq!((check.len(), check.first_mismatch()), (len, None), "chunked body intact");

    c.send(b"GET /sized HTTP/1.1\r\nHost: t\r\n\r\n");
    let mut check = PatternCheck::new(4);
    let resp = c.read_response_with(false, &mut |b| check.update(b)).expect("sized response");
    assert_eq!(resp.framing, Framing::Length(len), "Content-Length passes through");
    assert_eq!((check.len(), check.first_mismatch()), (len, None), "sized body intact");
    assert!(up.accepted() <= 2, "both responses reused the upstream connection or one more");
}

#[test]
fn close_delimited_upstream_response_is_rechunked_for_http11_clients() {
    let mut raw = b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n".to_vec();
    let mut body = vec![0u8; 3 * MIB as usize + 11];
    Pattern::new(5).fill(&mut body);
    raw.extend_from_slice(&body);
    let up = Upstream::start(move |_| Reply::RawThenClose(raw.clone()));
    let gw = gateway_for(&up);
    let mut c = Client::connect(gw.addr);
    let resp = c.get("/until-close");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.framing, Framing::Chunked, "{:?}", resp.headers);
    assert_eq!(resp.body.len(), body.len());
    assert!(resp.body == body, "body intact");
    // The client connection survives the upstream's close.
    assert_eq!(c.get("/until-close").body.len(), body.len());
}

/// Samples the gateway's RSS every 20 ms until stopped; returns the peak in KiB.
fn rss_monitor(pid: u32, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut peak = 0;
        while !stop.load(Ordering::SeqCst) {
            if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/status"))
                && let Some(v) = s
                    .lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse::<u64>().ok())
            {
                peak = peak.max(v);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        peak
    })
}

/// 1 GiB, generated on the fly: about 4 s in the debug build on a 2-core VM.
const BIG_UPLOAD: u64 = 1024 * MIB;

#[test]
fn gigabyte_content_length_upload_streams_with_bounded_memory() {
    let up = sink();
    let gw = gateway_for(&up);
    // Warm up: the same path once with a smaller body, so pools and buffers exist already.
    let mut c = Client::connect(gw.addr);
    c.send(format!("POST /warm HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n", 8 * MIB).as_bytes());
    let sent = write_raw(&mut c.stream().try_clone().expect("clone"), 8 * MIB, 6, true).expect("digest");
    assert_sink_saw(&c.read_response(), sent, false);
    let before = gw.rss_kib();

    let stop = Arc::new(AtomicBool::new(false));
    let monitor = rss_monitor(gw.pid(), stop.clone());
    let progress = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut c = Client::connect(gw.addr);
    // The upstream checks every byte against the pattern (X-Pattern-Seed) instead of hashing:
    // a memcmp per slice keeps the debug build fast.
    c.send(
        format!("POST /big HTTP/1.1\r\nHost: t\r\nX-Pattern-Seed: 7\r\nContent-Length: {BIG_UPLOAD}\r\n\r\n")
            .as_bytes(),
    );
    let mut out = ProgressWriter { inner: c.stream().try_clone().expect("clone"), done: progress.clone() };
    write_raw(&mut out, BIG_UPLOAD, 7, false);
    let resp = c.read_response();
    let took = start.elapsed();
    stop.store(true, Ordering::SeqCst);
    let peak = monitor.join().expect("monitor");
    let after = gw.rss_kib();
    assert_eq!(resp.status, 200, "{}", resp.text());
    let v = resp.json();
    assert_eq!(v["len"], BIG_UPLOAD, "length at the upstream");
    assert_eq!(v["pattern_mismatch"], serde_json::Value::Null, "every byte arrived intact and in order");
    assert_eq!(progress.load(Ordering::SeqCst), BIG_UPLOAD);
    eprintln!(
        "{} MiB upload in {took:?}; gateway RSS before {before} KiB, peak {peak} KiB, after {after} KiB",
        BIG_UPLOAD / MIB
    );
    let limit = 16 * 1024;
    assert!(peak.saturating_sub(before) < limit, "RSS grew from {before} KiB to a peak of {peak} KiB");
    assert!(after.saturating_sub(before) < limit, "RSS grew from {before} KiB to {after} KiB");
}

struct ProgressWriter {
    inner: std::net::TcpStream,
    done: Arc<AtomicU64>,
}

impl Write for ProgressWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.done.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[test]
fn the_integrity_checks_themselves_detect_corruption() {
    let mut body = vec![0u8; 100_000];
    Pattern::new(9).fill(&mut body);
    let whole = {
        let mut d = Digest::default();
        d.update(&body);
        d.finish()
    };
    // Split-independent.
    let mut d = Digest::default();
    for part in body.chunks(777) {
        d.update(part);
    }
    assert_eq!(d.finish(), whole);
    assert_eq!(Pattern::digest(9, body.len() as u64), whole);
    // A flipped byte, a dropped byte and two swapped slices all change the digest or fail the
    // pattern check.
    let mut flipped = body.clone();
    flipped[54_321] ^= 1;
    let mut dropped = body.clone();
    dropped.remove(10);
    let mut swapped = body.clone();
    swapped[..16].rotate_left(8);
    for (what, bad) in [("flipped", &flipped), ("dropped", &dropped), ("swapped", &swapped)] {
        let mut d = Digest::default();
        d.update(bad);
        assert_ne!(d.finish(), whole, "{what}");
        let mut check = PatternCheck::new(9);
        check.update(bad);
        assert!(check.first_mismatch().is_some(), "{what}");
    }
    let mut check = PatternCheck::new(9);
    for part in body.chunks(4093) {
        check.update(part);
    }
    assert_eq!((check.len(), check.first_mismatch()), (body.len() as u64, None));
    let mut check = PatternCheck::new(9);
    check.update(&flipped);
    assert_eq!(check.first_mismatch(), Some(54_321));
}
