//! `[response] strip_headers`: internal response headers (`Server`, `X-Powered-By`,
//! `X-Internal-*`) removed before any response reaches the client.
//!
//! Owns: the compiled name and prefix list. Must not: edit anything but response headers.

use portcullis_core::pipeline::Headers;

/// The compiled list: lowercase names, each exact or (trailing `*`) a prefix.
#[derive(Debug, Default)]
pub struct StripRules {
    rules: Vec<(Box<[u8]>, bool)>,
}

impl StripRules {
    /// Compiles validated names.
    pub fn build(names: &[String]) -> StripRules {
        let rules = names
            .iter()
            .map(|n| {
                let n = n.to_ascii_lowercase();
                match n.strip_suffix('*') {
                    Some(prefix) => (Box::from(prefix.as_bytes()), true),
                    None => (Box::from(n.as_bytes()), false),
                }
            })
            .collect();
        StripRules { rules }
    }

    fn matches(&self, name: &[u8]) -> bool {
        self.rules.iter().any(|(r, prefix)| {
            if *prefix {
                name.len() >= r.len() && name[..r.len()].eq_ignore_ascii_case(r)
            } else {
                name.eq_ignore_ascii_case(r)
            }
        })
    }

    /// Removes every matching header.
    pub fn apply(&self, headers: &mut Headers) {
        if !self.rules.is_empty() {
            headers.retain(|h| !self.matches(&h.name));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_names_and_prefixes_are_removed_case_insensitively() {
        let rules = StripRules::build(&["Server".into(), "x-powered-by".into(), "X-Internal-*".into()]);
        let mut h = Headers::default();
        for (n, v) in [
            ("server", "nginx"),
            ("X-Powered-By", "php"),
            ("x-internal-trace", "1"),
            ("X-INTERNAL-", "2"),
            ("x-internals", "keep"),
            ("content-type", "text/plain"),
            ("servers", "keep"),
        ] {
            h.append(n, v);
        }
        rules.apply(&mut h);
        let left: Vec<&[u8]> = h.iter().map(|h| &h.name[..]).collect();
        assert_eq!(left, vec![b"x-internals".as_slice(), b"content-type", b"servers"]);
    }
}
