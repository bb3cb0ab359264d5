//! Key paths (`routes[3].upstream`) and their mapping to source lines of a TOML document.
//!
//! Owns: the `KeyPath` type validation reports errors against, and the spanned-document walk that
//! turns a path into a 1-based line (or a byte offset back into a path). Must not: know any config
//! section or decide what is valid.

use std::fmt;
use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// One step of a key path: a table key or an array index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Seg {
    /// A table key.
    Key(String),
    /// An array index.
    Index(usize),
}

/// A dotted path into the config document, e.g. `routes[3].request_headers.set.x-env`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct KeyPath(Vec<Seg>);

impl KeyPath {
    /// The document root (renders as an empty string).
    pub(crate) fn root() -> KeyPath {
        KeyPath(Vec::new())
    }

    /// This path extended by a table key.
    pub(crate) fn key(&self, key: &str) -> KeyPath {
        let mut segs = self.0.clone();
        segs.push(Seg::Key(key.to_owned()));
        KeyPath(segs)
    }

    /// This path extended by an array index.
    pub(crate) fn index(&self, index: usize) -> KeyPath {
        let mut segs = self.0.clone();
        segs.push(Seg::Index(index));
        KeyPath(segs)
    }

    /// The path's segments, outermost first.
    pub(crate) fn segs(&self) -> &[Seg] {
        &self.0
    }
}

/// True when a key can be written without quotes in a path.
fn is_bare_key(key: &str) -> bool {
    !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    if is_bare_key(k) { f.write_str(k)? } else { write!(f, "{k:?}")? }
                }
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// The 1-based line holding byte `offset` of `text` (offsets past the end count as the last line).
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end].iter().filter(|&&b| b == b'\n').count() + 1
}

/// A parsed document with spans, used to place errors on lines.
pub(crate) struct SpannedDoc<'t> {
    text: &'t str,
    root: Spanned<DeValue<'t>>,
}

impl<'t> SpannedDoc<'t> {
    /// Wraps a parsed (possibly partially recovered) document.
    pub(crate) fn new(text: &'t str, table: Spanned<DeTable<'t>>) -> SpannedDoc<'t> {
        let span = table.span();
        SpannedDoc { text, root: Spanned::new(span, DeValue::Table(table.into_inner())) }
    }

    /// The line of the deepest node along `path` that exists in the document: a key that is
    /// absent (a missing required field, a defaulted section) points at its enclosing table.
    pub(crate) fn line_of_path(&self, path: &KeyPath) -> usize {
        let mut node = &self.root;
        for seg in path.segs() {
            let next = match (seg, node.get_ref()) {
                (Seg::Key(k), DeValue::Table(t)) => t.get(k.as_str()),
                (Seg::Index(i), DeValue::Array(a)) => a.get(*i),
                _ => None,
            };
            match next {
                Some(n) => node = n,
                None => break,
            }
        }
        line_of(self.text, node.span().start)
    }

    /// The path of the smallest key or value whose span covers `span` (deepest on ties).
    pub(crate) fn path_at(&self, span: Range<usize>) -> KeyPath {
        let mut best = Best { len: usize::MAX, depth: 0, path: KeyPath::root() };
        walk(&self.root, &KeyPath::root(), &span, &mut best);
        best.path
    }
}

/// The best candidate found so far by [`walk`].
struct Best {
    len: usize,
    depth: usize,
    path: KeyPath,
}

impl Best {
    /// Records `path` when `node` covers `target` more tightly (or as tightly but deeper).
    fn offer(&mut self, node: &Range<usize>, target: &Range<usize>, path: &KeyPath) {
        let covers = node.start <= target.start && target.end <= node.end && !node.is_empty();
        let len = node.end - node.start;
        let depth = path.segs().len();
        if covers && (len < self.len || (len == self.len && depth > self.depth)) {
            *self = Best { len, depth, path: path.clone() };
        }
    }
}

/// Visits every child of `node`, offering its key span and value span.
fn walk(node: &Spanned<DeValue<'_>>, path: &KeyPath, target: &Range<usize>, best: &mut Best) {
    match node.get_ref() {
        DeValue::Table(t) => {
            for (k, v) in t.iter() {
                let child = path.key(k.get_ref());
                best.offer(&k.span(), target, &child);
                best.offer(&v.span(), target, &child);
                walk(v, &child, target, best);
            }
        }
        DeValue::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                let child = path.index(i);
                best.offer(&v.span(), target, &child);
                walk(v, &child, target, best);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
[server]
shards = 2

[[routes]]
upstream = \"a\"

[[routes]]
upstream = \"b\"
hosts = [
  \"x\",
  \"y\",
]
request_headers = { set = { \"x.y\" = \"1\" } }
";

    fn doc() -> SpannedDoc<'static> {
        let table = DeTable::parse(DOC).expect("test document parses");
        SpannedDoc::new(DOC, table)
    }

    fn p(segs: &[Seg]) -> KeyPath {
        KeyPath(segs.to_vec())
    }

    fn k(s: &str) -> Seg {
        Seg::Key(s.to_owned())
    }

    #[test]
    fn renders_paths() {
        let path = KeyPath::root().key("routes").index(3).key("request_headers").key("set").key("x.y");
        assert_eq!(path.to_string(), "routes[3].request_headers.set.\"x.y\"");
        assert_eq!(KeyPath::root().to_string(), "");
        assert_eq!(
            KeyPath::root().key("upstreams").index(0).key("endpoints").index(1).to_string(),
            "upstreams[0].endpoints[1]"
        );
    }

    #[test]
    fn lines_of_existing_and_missing_keys() {
        let d = doc();
        assert_eq!(d.line_of_path(&p(&[k("server"), k("shards")])), 2);
        assert_eq!(d.line_of_path(&p(&[k("routes"), Seg::Index(1), k("upstream")])), 8);
        assert_eq!(d.line_of_path(&p(&[k("routes"), Seg::Index(1), k("hosts"), Seg::Index(1)])), 11);
        // Absent key: the enclosing `[[routes]]` header.
        assert_eq!(d.line_of_path(&p(&[k("routes"), Seg::Index(1), k("name")])), 7);
        // Absent array element and absent section.
        assert_eq!(d.line_of_path(&p(&[k("routes"), Seg::Index(9)])), 4);
        assert_eq!(d.line_of_path(&p(&[k("listeners")])), 1);
        assert_eq!(d.line_of_path(&p(&[k("server"), k("ring_entries")])), 1);
    }

    #[test]
    fn path_of_a_span() {
        let d = doc();
        let at = |needle: &str| {
            let start = DOC.find(needle).expect("needle in doc");
            d.path_at(start..start + needle.len())
        };
        assert_eq!(at("\"b\"").to_string(), "routes[1].upstream");
        assert_eq!(at("\"y\"").to_string(), "routes[1].hosts[1]");
        assert_eq!(at("shards").to_string(), "server.shards");
        assert_eq!(at("\"1\"").to_string(), "routes[1].request_headers.set.\"x.y\"");
    }

    #[test]
    fn line_of_clamps() {
        assert_eq!(line_of("a\nb\n", 0), 1);
        assert_eq!(line_of("a\nb\n", 2), 2);
        assert_eq!(line_of("a\nb\n", 99), 3);
    }
}
