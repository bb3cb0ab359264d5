//! Protocol-neutral request and response heads shared by every codec and every filter.
//!
//! Owns: the in-memory shape of a request/response head (method, path, headers) and
//! case-insensitive header operations. Must not: parse or serialise any wire format.
//! Header names and values are `Bytes`, so a codec can hand out slices of its read buffer
//! without copying.

use bytes::Bytes;

/// HTTP protocol version of a message as it was received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// HTTP/1.0
    Http10,
    /// HTTP/1.1
    Http11,
    /// HTTP/2
    H2,
    /// HTTP/3
    H3,
}

impl Version {
    /// Label used in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
            Version::H2 => "HTTP/2",
            Version::H3 => "HTTP/3",
        }
    }
}

/// Request method; the common ones are unit variants so matching never allocates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Method {
    /// GET
    Get,
    /// HEAD
    Head,
    /// POST
    Post,
    /// PUT
    Put,
    /// DELETE
    Delete,
    /// CONNECT
    Connect,
    /// OPTIONS
    Options,
    /// TRACE
    Trace,
    /// PATCH
    Patch,
    /// Any other (extension) method token.
    Other(Bytes),
}

impl Method {
    /// Parses a method token; unknown tokens become `Other` (a zero-copy slice of `src`).
    pub fn from_bytes(token: &[u8], src: impl FnOnce() -> Bytes) -> Method {
        match token {
            b"GET" => Method::Get,
            b"HEAD" => Method::Head,
            b"POST" => Method::Post,
            b"PUT" => Method::Put,
            b"DELETE" => Method::Delete,
            b"CONNECT" => Method::Connect,
            b"OPTIONS" => Method::Options,
            b"TRACE" => Method::Trace,
            b"PATCH" => Method::Patch,
            _ => Method::Other(src()),
        }
    }

    /// Parses a method name from configuration (case-sensitive, as on the wire).
    pub fn from_config(name: &str) -> Method {
        Method::from_bytes(name.as_bytes(), || Bytes::copy_from_slice(name.as_bytes()))
    }

    /// The method token as bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Method::Get => b"GET",
            Method::Head => b"HEAD",
            Method::Post => b"POST",
            Method::Put => b"PUT",
            Method::Delete => b"DELETE",
            Method::Connect => b"CONNECT",
            Method::Options => b"OPTIONS",
            Method::Trace => b"TRACE",
            Method::Patch => b"PATCH",
            Method::Other(b) => b,
        }
    }

    /// The method token as text (lossy for non-UTF-8 extension methods).
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(self.as_bytes()).unwrap_or("?")
    }

    /// Idempotent per RFC 9110 section 9.2.2 (safe to retry).
    pub fn is_idempotent(&self) -> bool {
        matches!(
            self,
            Method::Get | Method::Head | Method::Put | Method::Delete | Method::Options | Method::Trace
        )
    }
}

/// One header field. Names keep the case they arrived with; comparisons ignore case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Field name.
    pub name: Bytes,
    /// Field value (no surrounding whitespace).
    pub value: Bytes,
}

/// An ordered header list with case-insensitive lookups. Small lists are faster to scan
/// than to hash, and order (and duplicates) must be preserved when proxying.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers {
    list: Vec<Header>,
}

impl Headers {
    /// An empty list with room for `n` fields.
    pub fn with_capacity(n: usize) -> Headers {
        Headers { list: Vec::with_capacity(n) }
    }

    /// Number of fields (duplicates counted).
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// True when there are no fields.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Removes every field, keeping the allocation.
    pub fn clear(&mut self) {
        self.list.clear();
    }

    /// All fields in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Header> {
        self.list.iter()
    }

    /// First value of `name`.
    pub fn get(&self, name: &str) -> Option<&Bytes> {
        self.list.iter().find(|h| h.name.eq_ignore_ascii_case(name.as_bytes())).map(|h| &h.value)
    }

    /// Every value of `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Bytes> + 'a {
        self.list.iter().filter(move |h| h.name.eq_ignore_ascii_case(name.as_bytes())).map(|h| &h.value)
    }

    /// True when `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Appends a field, keeping any existing ones of the same name.
    pub fn append(&mut self, name: impl Into<Bytes>, value: impl Into<Bytes>) {
        self.list.push(Header { name: name.into(), value: value.into() });
    }

    /// Replaces every field of this name with one field.
    pub fn set(&mut self, name: impl Into<Bytes>, value: impl Into<Bytes>) {
        let name = name.into();
        let value = value.into();
        let mut slot = None;
        let mut i = 0;
        self.list.retain(|h| {
            let same = h.name.eq_ignore_ascii_case(&name);
            let keep = !same || slot.is_none();
            if same && slot.is_none() {
                slot = Some(i);
            }
            if keep {
                i += 1;
            }
            keep
        });
        match slot {
            Some(at) => self.list[at] = Header { name, value },
            None => self.list.push(Header { name, value }),
        }
    }

    /// Removes every field of this name; returns how many were removed.
    pub fn remove(&mut self, name: &str) -> usize {
        let before = self.list.len();
        self.list.retain(|h| !h.name.eq_ignore_ascii_case(name.as_bytes()));
        before - self.list.len()
    }

    /// Keeps only the fields for which `keep` returns true.
    pub fn retain(&mut self, keep: impl FnMut(&Header) -> bool) {
        self.list.retain(keep);
    }
}

/// A request head as the pipeline sees it, whatever the wire protocol.
#[derive(Clone, Debug)]
pub struct RequestHead {
    /// Request method.
    pub method: Method,
    /// Path component, starting with `/` (or `*` for `OPTIONS *`), dot-segments removed.
    pub path: Bytes,
    /// Query string without the leading `?`, if any.
    pub query: Option<Bytes>,
    /// Version the client spoke.
    pub version: Version,
    /// Host (HTTP/1 `Host`, or `:authority`), port included as sent.
    pub authority: Option<Bytes>,
    /// Header fields (for HTTP/1 the `Host` field stays in here too).
    pub headers: Headers,
}

impl RequestHead {
    /// Host without port, for route matching.
    pub fn host(&self) -> Option<&[u8]> {
        let a = self.authority.as_deref()?;
        if a.first() == Some(&b'[') {
            // IPv6 literal: keep the brackets, drop the port.
            return a.iter().position(|&c| c == b']').map(|end| &a[..=end]);
        }
        Some(match a.iter().rposition(|&c| c == b':') {
            Some(colon) => &a[..colon],
            None => a,
        })
    }
}

/// A response head as the pipeline sees it.
#[derive(Clone, Debug)]
pub struct ResponseHead {
    /// Status code.
    pub status: u16,
    /// Reason phrase as the upstream sent it (empty for generated responses).
    pub reason: Bytes,
    /// Header fields.
    pub headers: Headers,
}

impl ResponseHead {
    /// A head with `status` and no fields.
    pub fn new(status: u16) -> ResponseHead {
        ResponseHead { status, reason: Bytes::new(), headers: Headers::with_capacity(8) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_replaces_first_and_drops_duplicates() {
        let mut h = Headers::default();
        h.append("A", "1");
        h.append("b", "2");
        h.append("a", "3");
        h.set("a", "9");
        let v: Vec<_> = h.iter().map(|h| (h.name.clone(), h.value.clone())).collect();
        assert_eq!(v, vec![(Bytes::from("a"), Bytes::from("9")), (Bytes::from("b"), Bytes::from("2"))]);
    }

    #[test]
    fn lookups_ignore_case() {
        let mut h = Headers::default();
        h.append("Content-Length", "5");
        assert_eq!(h.get("content-length").map(|v| &v[..]), Some(&b"5"[..]));
        assert_eq!(h.remove("CONTENT-LENGTH"), 1);
        assert!(h.is_empty());
    }

    #[test]
    fn host_strips_port() {
        let mut r = RequestHead {
            method: Method::Get,
            path: Bytes::from("/"),
            query: None,
            version: Version::Http11,
            authority: Some(Bytes::from("api.example.com:8080")),
            headers: Headers::default(),
        };
        assert_eq!(r.host(), Some(&b"api.example.com"[..]));
        r.authority = Some(Bytes::from("[::1]:80"));
        assert_eq!(r.host(), Some(&b"[::1]"[..]));
    }
}
