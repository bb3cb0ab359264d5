//! Building one access log line from a finished request's context.
//!
//! Owns: the mapping of `Cx` to [`AccessRecord`] fields and the query policy. Must not: queue
//! or write the line (the access log does), or log anything that could be a credential: only
//! ids, addresses, names, sizes and times (headers and bodies are never read here).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use portcullis_core::config::QueryLogMode;
use portcullis_core::pipeline::Cx;
use portcullis_core::telemetry::{AccessRecord, StackText};

/// The path to log: `cx.path` itself, or (when the query is kept or redacted) the path plus
/// the query built in `buf`. Text that is not UTF-8 is made lossy by the JSON writer.
pub(crate) fn path_for_log<'a>(cx: &'a Cx, mode: QueryLogMode, buf: &'a mut Vec<u8>) -> &'a [u8] {
    let Some(q) = cx.query.as_ref().filter(|_| mode != QueryLogMode::Strip) else { return &cx.path };
    buf.clear();
    buf.extend_from_slice(&cx.path);
    buf.push(b'?');
    match mode {
        QueryLogMode::Keep => buf.extend_from_slice(q),
        _ => {
            for (i, pair) in q.split(|&b| b == b'&').enumerate() {
                if i > 0 {
                    buf.push(b'&');
                }
                match pair.iter().position(|&b| b == b'=') {
                    Some(eq) => {
                        buf.extend_from_slice(&pair[..eq]);
                        buf.extend_from_slice(b"=REDACTED");
                    }
                    None => buf.extend_from_slice(pair),
                }
            }
        }
    }
    buf
}

/// The text of the client IP and upstream address of the last line on this shard. Consecutive
/// requests mostly share them (keep-alive connections, few upstream endpoints), so each is
/// formatted when it changes instead of for every line.
#[derive(Debug, Default)]
pub(crate) struct AddrText {
    client: Option<IpAddr>,
    client_text: StackText<48>,
    upstream: Option<SocketAddr>,
    upstream_text: StackText<56>,
}

impl AddrText {
    /// The texts of `client` and `upstream`, formatted only if they differ from the last ones.
    fn texts(&mut self, client: IpAddr, upstream: Option<SocketAddr>) -> (&str, Option<&str>) {
        if self.client != Some(client) {
            self.client_text.ip(client);
            self.client = Some(client);
        }
        if let Some(up) = upstream.filter(|&u| self.upstream != Some(u)) {
            self.upstream_text.socket(up);
            self.upstream = Some(up);
        }
        (self.client_text.as_str(), upstream.map(|_| self.upstream_text.as_str()))
    }
}

fn us(d: Duration) -> u64 {
    d.as_micros() as u64
}

/// Appends the JSON line of a finished request to `out`.
pub(crate) fn write_line(
    cx: &Cx,
    route: Option<&str>,
    path: &[u8],
    (total, added): (Duration, Option<Duration>),
    time: &str,
    addrs: &mut AddrText,
    out: &mut Vec<u8>,
) {
    let trace = cx.trace.map(|t| t.trace_id_hex());
    let (client_ip, upstream) = addrs.texts(cx.client_ip, cx.upstream_addr);
    AccessRecord {
        time,
        request_id: &cx.request_id,
        trace_id: trace.as_ref().and_then(|t| std::str::from_utf8(t).ok()),
        client_ip,
        method: cx.method.as_str(),
        route,
        path,
        status: cx.status,
        bytes_in: cx.bytes_in,
        bytes_out: cx.bytes_out,
        duration_us: us(total),
        upstream_us: cx.upstream_time.map(us),
        added_us: added.map(us),
        upstream,
        consumer: cx.consumer.as_deref(),
        protocol: cx.version.as_str(),
        tls: cx.tls_version,
        error: cx.error_code,
    }
    .write_to(out);
}
