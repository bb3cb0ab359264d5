//! Request path normalisation: removal of dot segments (RFC 3986 section 5.2.4) so that
//! `/public/../admin` cannot slip past a prefix route.
//!
//! Owns: this one transformation. Must not: decode percent-escapes (the path is forwarded as
//! the client encoded it).

use bytes::Bytes;

/// Returns the path without `.` and `..` segments; `None` when `..` would climb above the root.
/// Paths without dot segments are returned as is (no allocation).
pub fn normalize(path: Bytes) -> Option<Bytes> {
    if path.as_ref() == b"*" {
        return Some(path);
    }
    let has_dots = path.split(|&c| c == b'/').any(|seg| seg == b"." || seg == b"..");
    if !has_dots {
        return Some(path);
    }
    let mut out: Vec<&[u8]> = Vec::new();
    let segments: Vec<&[u8]> = path.split(|&c| c == b'/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    let mut trailing_slash = false;
    for (i, seg) in segments.iter().enumerate() {
        match *seg {
            b"." => trailing_slash = i == last,
            b".." => {
                out.pop()?;
                trailing_slash = i == last;
            }
            s => {
                out.push(s);
                trailing_slash = false;
            }
        }
    }
    let mut p = Vec::with_capacity(path.len());
    for s in &out {
        p.push(b'/');
        p.extend_from_slice(s);
    }
    if p.is_empty() || trailing_slash {
        p.push(b'/');
    }
    Some(Bytes::from(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &'static str) -> Option<String> {
        normalize(Bytes::from(s)).map(|b| String::from_utf8_lossy(&b).into_owned())
    }

    #[test]
    fn removes_dot_segments() {
        assert_eq!(n("/a/b/c").as_deref(), Some("/a/b/c"));
        assert_eq!(n("/public/../admin").as_deref(), Some("/admin"));
        assert_eq!(n("/a/./b").as_deref(), Some("/a/b"));
        assert_eq!(n("/a/b/..").as_deref(), Some("/a/"));
        assert_eq!(n("/a/.").as_deref(), Some("/a/"));
        assert_eq!(n("/..").as_deref(), None);
        assert_eq!(n("/a/../..").as_deref(), None);
        assert_eq!(n("/a/..b/.c").as_deref(), Some("/a/..b/.c"));
        assert_eq!(n("/").as_deref(), Some("/"));
    }
}
