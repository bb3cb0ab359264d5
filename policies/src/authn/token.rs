//! Finding a credential in a request (header with optional scheme, cookie, query parameter) and
//! removing it before the request is forwarded.
//!
//! Owns: `CompiledSource` and its lookup/strip. Must not: judge the credential.

use bytes::{Bytes, BytesMut};
use portcullis_core::config::TokenSource;
use portcullis_core::pipeline::RequestHead;

/// A compiled `TokenSource`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CompiledSource {
    /// A header, with an optional scheme (`Bearer`).
    Header {
        /// Lowercase name.
        name: String,
        /// Scheme before the credential, if any.
        scheme: Option<String>,
    },
    /// A cookie.
    Cookie(String),
    /// A query parameter.
    Query(String),
}

impl CompiledSource {
    /// Compiles a validated source.
    pub fn new(s: &TokenSource) -> CompiledSource {
        if let Some(c) = &s.cookie {
            CompiledSource::Cookie(c.clone())
        } else if let Some(q) = &s.query {
            CompiledSource::Query(q.clone())
        } else {
            CompiledSource::Header {
                name: s.header.clone().unwrap_or_else(|| "authorization".to_owned()).to_ascii_lowercase(),
                scheme: s.scheme.clone(),
            }
        }
    }

    /// The credential in `req`, if this source carries one (a zero-copy slice of the request).
    pub fn find(&self, req: &RequestHead) -> Option<Bytes> {
        match self {
            CompiledSource::Header { name, scheme } => {
                let v = req.headers.get(name)?;
                let cred = match scheme {
                    Some(s) => {
                        let n = s.len();
                        if v.len() <= n + 1 || !v[..n].eq_ignore_ascii_case(s.as_bytes()) || v[n] != b' ' {
                            return None;
                        }
                        v.slice(n + 1..)
                    }
                    None => v.clone(),
                };
                trim(cred)
            }
            CompiledSource::Cookie(name) => req.headers.get_all("cookie").find_map(|v| {
                pairs(v, b';')
                    .find(|(k, _)| *k == name.as_bytes())
                    .and_then(|(_, val)| trim(v.slice_ref(val)))
            }),
            CompiledSource::Query(name) => {
                let q = req.query.as_ref()?;
                pairs(q, b'&')
                    .find(|(k, _)| *k == name.as_bytes())
                    .and_then(|(_, val)| trim(q.slice_ref(val)))
            }
        }
    }

    /// Removes the credential from `req` (the header, the cookie, or the query parameter).
    pub fn strip(&self, req: &mut RequestHead) {
        match self {
            CompiledSource::Header { name, .. } => {
                req.headers.remove(name);
            }
            CompiledSource::Cookie(name) => {
                let mut rebuilt: Vec<Bytes> = Vec::new();
                let mut touched = false;
                for v in req.headers.get_all("cookie") {
                    let kept: Vec<&[u8]> = v
                        .split(|&b| b == b';')
                        .filter(|part| {
                            let keep = pair(part).0 != name.as_bytes();
                            touched |= !keep;
                            keep
                        })
                        .collect();
                    let joined = join(&kept, b";");
                    if !joined.iter().all(u8::is_ascii_whitespace) {
                        rebuilt.push(Bytes::from(trim_bytes(&joined).to_vec()));
                    }
                }
                if touched {
                    req.headers.remove("cookie");
                    for v in rebuilt {
                        req.headers.append("cookie", v);
                    }
                }
            }
            CompiledSource::Query(name) => {
                if let Some(q) = &req.query {
                    let kept: Vec<&[u8]> =
                        q.split(|&b| b == b'&').filter(|p| pair(p).0 != name.as_bytes()).collect();
                    req.query = if kept.is_empty() { None } else { Some(Bytes::from(join(&kept, b"&"))) };
                }
            }
        }
    }
}

fn join(parts: &[&[u8]], sep: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(sep);
        }
        out.extend_from_slice(p);
    }
    out.to_vec()
}

fn trim_bytes(v: &[u8]) -> &[u8] {
    let start = v.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(v.len());
    let end = v.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(start, |e| e + 1);
    &v[start..end]
}

fn trim(v: Bytes) -> Option<Bytes> {
    let t = trim_bytes(&v);
    if t.is_empty() { None } else { Some(v.slice_ref(t)) }
}

/// `name=value` split of one part (whitespace around the name trimmed).
fn pair(part: &[u8]) -> (&[u8], &[u8]) {
    match part.iter().position(|&b| b == b'=') {
        Some(eq) => (trim_bytes(&part[..eq]), trim_bytes(&part[eq + 1..])),
        None => (trim_bytes(part), &[]),
    }
}

fn pairs(v: &[u8], sep: u8) -> impl Iterator<Item = (&[u8], &[u8])> {
    v.split(move |&b| b == sep).map(pair)
}
