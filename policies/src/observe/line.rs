//! Building one access log line from a finished request's context.
//!
//! Owns: the mapping of `Cx` to [`AccessRecord`] fields and the query policy. Must not: queue
//! or write the line (the access log does), or log anything that could be a credential: only
//! ids, addresses, names, sizes and times (headers and bodies are never read here).

use std::borrow::Cow;
use std::time::Duration;

use portcullis_core::config::QueryLogMode;
use portcullis_core::pipeline::Cx;
use portcullis_core::telemetry::{AccessRecord, StackText};

/// Text of a byte field (ids and names are ASCII; anything else is shown lossily).
fn text(b: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(b)
}

/// Writes `cx.path` plus the query per `mode` into `out` (cleared first).
pub(crate) fn path_for_log(cx: &Cx, mode: QueryLogMode, out: &mut String) {
    out.clear();
    out.push_str(&text(&cx.path));
    let Some(q) = cx.query.as_ref().filter(|_| mode != QueryLogMode::Strip) else { return };
    out.push('?');
    match mode {
        QueryLogMode::Keep => out.push_str(&text(q)),
        _ => {
            for (i, pair) in q.split(|&b| b == b'&').enumerate() {
                if i > 0 {
                    out.push('&');
                }
                match pair.iter().position(|&b| b == b'=') {
                    Some(eq) => {
                        out.push_str(&text(&pair[..eq]));
                        out.push_str("=REDACTED");
                    }
                    None => out.push_str(&text(pair)),
                }
            }
        }
    }
}

fn us(d: Duration) -> u64 {
    d.as_micros() as u64
}

/// Appends the JSON line of a finished request to `out`.
pub(crate) fn write_line(
    cx: &Cx,
    route: Option<&str>,
    path: &str,
    total: Duration,
    time: &str,
    out: &mut Vec<u8>,
) {
    let trace = cx.trace.map(|t| t.trace_id_hex());
    let request_id = text(&cx.request_id);
    let consumer = cx.consumer.as_deref().map(text);
    let (mut client, mut upstream) = (StackText::<48>::default(), StackText::<56>::default());
    AccessRecord {
        time,
        request_id: &request_id,
        trace_id: trace.as_ref().and_then(|t| std::str::from_utf8(t).ok()),
        client_ip: client.ip(cx.client_ip),
        method: cx.method.as_str(),
        route,
        path,
        status: cx.status,
        bytes_in: cx.bytes_in,
        bytes_out: cx.bytes_out,
        duration_us: us(total),
        upstream_us: cx.upstream_time.map(us),
        upstream: cx.upstream_addr.map(|a| upstream.socket(a)),
        consumer: consumer.as_deref(),
        protocol: cx.version.as_str(),
        tls: cx.tls_version,
        error: cx.error_code,
    }
    .write_to(out);
}
