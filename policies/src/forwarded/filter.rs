//! `ForwardedFilter`: trusted proxies compiled at build, then per-request strip/derive/append.
//!
//! Owns: the header rewriting for each `forwarded.mode`. Must not: let an untrusted peer's
//! forwarding headers reach the upstream or influence `cx.client_ip`.

use std::fmt::Write as _;
use std::net::IpAddr;

use bytes::{BufMut, Bytes, BytesMut};
use portcullis_core::config::{Cidr, ForwardedConfig, ForwardedMode};
use portcullis_core::pipeline::{Cx, Filter, Flow, Headers, RequestHead};
use portcullis_core::telemetry::StackText;

use super::parse::{self, FORWARDED, XFF};
use crate::error::BuildError;
use crate::header_rules::is_tchar;

const XF_PROTO: &str = "x-forwarded-proto";
const XF_HOST: &str = "x-forwarded-host";
const X_REAL_IP: &str = "x-real-ip";

/// Headers a client could use to lie about where it is; dropped unless the peer is trusted.
const SPOOFABLE: [&str; 5] = [XFF, XF_PROTO, XF_HOST, X_REAL_IP, FORWARDED];

/// Writes forwarding headers and derives the client address (`[forwarded]`).
#[derive(Debug)]
pub struct ForwardedFilter {
    mode: ForwardedMode,
    trusted: Vec<Cidr>,
}

impl ForwardedFilter {
    /// Compiles `[forwarded]`, parsing every trusted proxy entry.
    pub fn build(cfg: &ForwardedConfig) -> Result<ForwardedFilter, BuildError> {
        let trusted = cfg
            .trusted_proxies
            .iter()
            .enumerate()
            .map(|(i, entry)| {
                Cidr::parse(entry).map_err(|reason| BuildError::TrustedProxy {
                    path: format!("forwarded.trusted_proxies[{i}]"),
                    entry: entry.clone(),
                    reason,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ForwardedFilter { mode: cfg.mode, trusted })
    }

    /// True when `ip` is inside a trusted proxy block.
    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|c| c.contains(ip))
    }
}

impl Filter for ForwardedFilter {
    async fn on_request(&self, req: &mut RequestHead, cx: &mut Cx) -> Flow {
        let peer = cx.client_addr.ip().to_canonical();
        let trusted = self.is_trusted(peer);
        if trusted {
            let prefer_forwarded = self.mode == ForwardedMode::Forwarded;
            cx.client_ip = parse::client_behind(&req.headers, prefer_forwarded, |ip| self.is_trusted(ip))
                .unwrap_or(peer);
        } else {
            req.headers.retain(|h| !SPOOFABLE.iter().any(|n| h.name.eq_ignore_ascii_case(n.as_bytes())));
            cx.client_ip = peer;
        }
        match self.mode {
            ForwardedMode::XForwarded => {
                append_xff(&mut req.headers, peer);
                if !(trusted && req.headers.contains(XF_PROTO)) {
                    let proto = if cx.tls { "https" } else { "http" };
                    req.headers
                        .set(Bytes::from_static(b"x-forwarded-proto"), Bytes::from_static(proto.as_bytes()));
                }
                let keep_host = trusted && req.headers.contains(XF_HOST);
                if let (false, Some(authority)) = (keep_host, &req.authority) {
                    req.headers.set(Bytes::from_static(b"x-forwarded-host"), authority.clone());
                }
            }
            ForwardedMode::Forwarded => {
                let element = forwarded_element(peer, cx.tls, req.authority.as_deref());
                append_list(&mut req.headers, FORWARDED, b"forwarded", &element);
            }
            ForwardedMode::None => {}
        }
        Flow::Continue
    }
}

/// Appends `peer` to `X-Forwarded-For`, folding any existing fields into one.
fn append_xff(headers: &mut Headers, peer: IpAddr) {
    // Formatted by hand on the stack: `fmt` plus a buffer allocation cost more than the rest
    // of this filter.
    let mut ip = StackText::<48>::default();
    append_list(headers, XFF, b"x-forwarded-for", ip.ip(peer).as_bytes());
}

/// Sets `name` to the comma-joined existing values followed by `item`, as a single field.
fn append_list(headers: &mut Headers, name: &str, canonical: &'static [u8], item: &[u8]) {
    let len = headers.get_all(name).map(|v| v.len() + 2).sum::<usize>() + item.len();
    let mut out = BytesMut::with_capacity(len);
    for v in headers.get_all(name).filter(|v| !v.is_empty()) {
        out.put_slice(v);
        out.put_slice(b", ");
    }
    out.put_slice(item);
    headers.set(Bytes::from_static(canonical), out.freeze());
}

/// One RFC 7239 element: `for=<node>;proto=<http|https>[;host=<authority>]`.
fn forwarded_element(peer: IpAddr, tls: bool, authority: Option<&[u8]>) -> BytesMut {
    let mut out = BytesMut::with_capacity(64 + authority.map_or(0, <[u8]>::len));
    // Writing into a BytesMut cannot fail.
    let _ = match peer {
        IpAddr::V4(v4) => write!(out, "for={v4}"),
        IpAddr::V6(v6) => write!(out, "for=\"[{v6}]\""),
    };
    out.put_slice(if tls { b";proto=https" } else { b";proto=http" });
    if let Some(host) = authority {
        out.put_slice(b";host=");
        put_token_or_quoted(&mut out, host);
    }
    out
}

/// Writes `v` as an RFC 7230 token when it is one, else as a quoted-string.
fn put_token_or_quoted(out: &mut BytesMut, v: &[u8]) {
    if !v.is_empty() && v.iter().copied().all(is_tchar) {
        out.put_slice(v);
        return;
    }
    out.put_u8(b'"');
    for &b in v {
        if b == b'"' || b == b'\\' {
            out.put_u8(b'\\');
        }
        out.put_u8(b);
    }
    out.put_u8(b'"');
}
