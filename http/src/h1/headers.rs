//! Header semantics shared by requests and responses: `Connection` tokens, hop-by-hop removal
//! (RFC 9110 section 7.6.1), and strict `Content-Length` parsing.
//!
//! Owns: these header rules. Must not: do I/O or know about routes.

use portcullis_core::pipeline::Headers;

/// What the `Connection` header(s) said.
#[derive(Debug, Default)]
pub struct ConnectionInfo {
    /// `close` was listed.
    pub close: bool,
    /// `keep-alive` was listed.
    pub keep_alive: bool,
    /// `upgrade` was listed.
    pub upgrade: bool,
    /// Other listed field names, which are hop-by-hop for this message (rare; allocated only
    /// when present).
    pub extra: Vec<Vec<u8>>,
}

impl ConnectionInfo {
    /// Reads every `Connection` field.
    pub fn from_headers(headers: &Headers) -> ConnectionInfo {
        let mut info = ConnectionInfo::default();
        for v in headers.get_all("connection") {
            for token in v.split(|&c| c == b',').map(|t| t.trim_ascii()).filter(|t| !t.is_empty()) {
                if token.eq_ignore_ascii_case(b"close") {
                    info.close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    info.keep_alive = true;
                } else if token.eq_ignore_ascii_case(b"upgrade") {
                    info.upgrade = true;
                } else {
                    info.extra.push(token.to_ascii_lowercase());
                }
            }
        }
        info
    }
}

/// Fields that only describe one hop and are never forwarded.
const HOP_BY_HOP: [&str; 7] =
    ["connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"];

/// Removes hop-by-hop fields, including any named in `Connection`. Returns whether a removed
/// `TE` field listed `trailers` (the client accepts trailers in the response).
pub fn strip_hop_by_hop(headers: &mut Headers, conn: &ConnectionInfo) -> bool {
    let mut te_trailers = false;
    headers.retain(|h| {
        let hop = HOP_BY_HOP.iter().any(|n| h.name.eq_ignore_ascii_case(n.as_bytes()));
        if hop && h.name.eq_ignore_ascii_case(b"te") {
            te_trailers |= lists_trailers(&h.value);
        }
        !hop && !conn.extra.iter().any(|n| h.name.eq_ignore_ascii_case(n))
    });
    te_trailers
}

/// Whether a `TE` value lists the `trailers` token.
pub fn lists_trailers(te: &[u8]) -> bool {
    te.split(|&c| c == b',').any(|t| t.trim_ascii().eq_ignore_ascii_case(b"trailers"))
}

/// Parses every `Content-Length` value (fields and comma lists) strictly: all must be the same
/// decimal number. Conflicting or malformed values are a smuggling attempt.
pub fn content_length(headers: &Headers) -> Result<Option<u64>, &'static str> {
    let mut found: Option<u64> = None;
    for v in headers.get_all("content-length") {
        for part in v.split(|&c| c == b',') {
            let part = part.trim_ascii();
            if part.is_empty() || part.len() > 19 || !part.iter().all(u8::is_ascii_digit) {
                return Err("invalid Content-Length");
            }
            let n = part.iter().fold(0u64, |acc, &d| acc * 10 + u64::from(d - b'0'));
            match found {
                Some(prev) if prev != n => return Err("conflicting Content-Length values"),
                _ => found = Some(n),
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hs(list: &[(&'static str, &'static str)]) -> Headers {
        let mut h = Headers::default();
        for (n, v) in list {
            h.append(*n, *v);
        }
        h
    }

    #[test]
    fn content_length_rules() {
        assert_eq!(content_length(&hs(&[("Content-Length", "42")])), Ok(Some(42)));
        assert_eq!(content_length(&hs(&[("content-length", "7"), ("Content-Length", "7")])), Ok(Some(7)));
        assert_eq!(content_length(&hs(&[("content-length", "7, 7")])), Ok(Some(7)));
        assert!(content_length(&hs(&[("content-length", "7"), ("content-length", "8")])).is_err());
        assert!(content_length(&hs(&[("content-length", "-1")])).is_err());
        assert!(content_length(&hs(&[("content-length", "+5")])).is_err());
        assert!(content_length(&hs(&[("content-length", "")])).is_err());
        assert!(content_length(&hs(&[("content-length", "99999999999999999999")])).is_err());
        assert_eq!(content_length(&hs(&[])), Ok(None));
    }

    #[test]
    fn hop_by_hop_and_connection_tokens_are_removed() {
        let mut h = hs(&[
            ("Connection", "close, X-Secret"),
            ("X-Secret", "1"),
            ("Keep-Alive", "timeout=5"),
            ("TE", "trailers"),
            ("Upgrade", "websocket"),
            ("X-Kept", "yes"),
        ]);
        let info = ConnectionInfo::from_headers(&h);
        assert!(info.close);
        assert!(strip_hop_by_hop(&mut h, &info), "TE: trailers is reported");
        let names: Vec<_> = h.iter().map(|f| f.name.clone()).collect();
        assert_eq!(names, vec![bytes::Bytes::from("X-Kept")]);
        assert!(lists_trailers(b"gzip, Trailers") && !lists_trailers(b"gzip"));
    }
}
