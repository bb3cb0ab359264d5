//! Prefix rewriting of the request path.
//!
//! Owns: replacing a route's matched prefix on a segment boundary. Must not: touch the query
//! (it is a separate field), produce an empty path, or introduce a `//`.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::BuildError;

/// A compiled prefix rewrite: both sides stored without trailing slashes (`/` becomes empty).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Rewrite {
    from: Bytes,
    to: Bytes,
}

fn err(path: &impl Fn() -> String, reason: &'static str) -> BuildError {
    BuildError::Rewrite { path: path(), reason }
}

impl Rewrite {
    /// Compiles `prefix` -> `replacement`; `path` names the config key for errors.
    pub(crate) fn compile(
        prefix: &str,
        replacement: &str,
        path: impl Fn() -> String,
    ) -> Result<Rewrite, BuildError> {
        if !prefix.starts_with('/') {
            return Err(err(&path, "the route prefix must start with '/'"));
        }
        if !replacement.starts_with('/') {
            return Err(err(&path, "rewrite_prefix must start with '/'"));
        }
        if !replacement.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b'?' && b != b'#') {
            return Err(err(&path, "rewrite_prefix may only hold visible ASCII without '?' or '#'"));
        }
        let to = replacement.trim_end_matches('/');
        if to.contains("//") {
            return Err(err(&path, "rewrite_prefix must not contain an empty segment ('//')"));
        }
        let from = prefix.trim_end_matches('/');
        Ok(Rewrite {
            from: Bytes::copy_from_slice(from.as_bytes()),
            to: Bytes::copy_from_slice(to.as_bytes()),
        })
    }

    /// The rewritten path, or `None` when `path` does not start with the prefix on a segment
    /// boundary (or the rewrite would change nothing).
    pub(crate) fn apply(&self, path: &Bytes) -> Option<Bytes> {
        let rest = path.strip_prefix(&self.from[..])?;
        if !(rest.is_empty() || rest.starts_with(b"/")) || self.from == self.to {
            return None;
        }
        Some(match (self.to.is_empty(), rest.is_empty()) {
            (true, true) => Bytes::from_static(b"/"),
            // Dropping the prefix is a zero-copy slice of the original path.
            (true, false) => path.slice(self.from.len()..),
            (false, true) => self.to.clone(),
            (false, false) => {
                let mut out = BytesMut::with_capacity(self.to.len() + rest.len());
                out.put_slice(&self.to);
                out.put_slice(rest);
                out.freeze()
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rw(prefix: &str, to: &str) -> Rewrite {
        Rewrite::compile(prefix, to, || "routes[0].rewrite_prefix".to_owned()).expect("valid rewrite")
    }

    fn apply(r: &Rewrite, path: &str) -> Option<String> {
        r.apply(&Bytes::copy_from_slice(path.as_bytes())).map(|b| String::from_utf8_lossy(&b).into_owned())
    }

    #[test]
    fn replaces_prefix() {
        let r = rw("/api", "/v1");
        assert_eq!(apply(&r, "/api/users").as_deref(), Some("/v1/users"));
        assert_eq!(apply(&r, "/api").as_deref(), Some("/v1"));
        assert_eq!(apply(&r, "/api/").as_deref(), Some("/v1/"));
    }

    #[test]
    fn rewrite_to_root() {
        let r = rw("/api", "/");
        assert_eq!(apply(&r, "/api/users").as_deref(), Some("/users"));
        assert_eq!(apply(&r, "/api").as_deref(), Some("/"));
        assert_eq!(apply(&r, "/api/").as_deref(), Some("/"));
    }

    #[test]
    fn trailing_slashes_on_either_side_never_double() {
        let r = rw("/api/", "/v1/");
        assert_eq!(apply(&r, "/api/users").as_deref(), Some("/v1/users"));
        assert_eq!(apply(&r, "/api").as_deref(), Some("/v1"));
        let r = rw("/api", "/v1/");
        assert_eq!(apply(&r, "/api/users").as_deref(), Some("/v1/users"));
    }

    #[test]
    fn root_prefix() {
        let r = rw("/", "/v1");
        assert_eq!(apply(&r, "/users").as_deref(), Some("/v1/users"));
        assert_eq!(apply(&r, "/").as_deref(), Some("/v1/"));
        assert_eq!(apply(&r, "*"), None, "OPTIONS * is left alone");
    }

    #[test]
    fn deeper_rewrite() {
        let r = rw("/api/v1", "/internal/users-service");
        assert_eq!(apply(&r, "/api/v1/x/y").as_deref(), Some("/internal/users-service/x/y"));
    }

    #[test]
    fn only_on_segment_boundaries() {
        let r = rw("/api", "/v1");
        assert_eq!(apply(&r, "/apix"), None);
        assert_eq!(apply(&r, "/other/api"), None);
        assert_eq!(apply(&r, "/API/x"), None, "paths are case-sensitive");
    }

    #[test]
    fn identity_rewrite_is_a_no_op() {
        assert_eq!(apply(&rw("/api", "/api/"), "/api/x"), None);
    }

    #[test]
    fn compile_errors() {
        let p = || "p".to_owned();
        assert!(Rewrite::compile("/api", "v1", p).is_err());
        assert!(Rewrite::compile("api", "/v1", p).is_err());
        assert!(Rewrite::compile("/api", "/v1?x=1", p).is_err());
        assert!(Rewrite::compile("/api", "/a//b", p).is_err());
        assert!(Rewrite::compile("/api", "/a b", p).is_err());
        assert!(Rewrite::compile("/api", "//", p).is_ok(), "all slashes means root");
    }

    mod properties {
        use proptest::prelude::*;

        use super::{Bytes, Rewrite};

        fn segs() -> impl Strategy<Value = String> {
            prop::collection::vec("[a-z0-9._-]{1,6}", 0..4)
                .prop_map(|s| s.iter().map(|x| format!("/{x}")).collect())
        }

        proptest! {
            #[test]
            fn never_empty_never_double_slash(
                prefix in segs(), to in segs(), rest in segs(),
                prefix_slash in any::<bool>(), to_slash in any::<bool>(), rest_slash in any::<bool>(),
            ) {
                let prefix_cfg = if prefix.is_empty() || prefix_slash { format!("{prefix}/") } else { prefix.clone() };
                let to_cfg = if to.is_empty() || to_slash { format!("{to}/") } else { to.clone() };
                let mut path = format!("{prefix}{rest}");
                if path.is_empty() || rest_slash {
                    path.push('/');
                }
                let r = Rewrite::compile(&prefix_cfg, &to_cfg, || "p".to_owned()).expect("valid");
                let out = r.apply(&Bytes::from(path.clone())).unwrap_or_else(|| Bytes::from(path.clone()));
                let out = String::from_utf8_lossy(&out).into_owned();
                prop_assert!(out.starts_with('/'), "{out:?}");
                prop_assert!(!out.contains("//"), "{prefix_cfg} -> {to_cfg} on {path} gave {out:?}");
                let tail = path[prefix.len()..].trim_start_matches('/');
                prop_assert!(out.ends_with(tail), "the part after the prefix is kept");
                prop_assert!(out.starts_with(&to), "{out:?} starts with {to:?}");
            }
        }
    }
}
