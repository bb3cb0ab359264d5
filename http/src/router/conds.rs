//! Method and header conditions of a route, checked against a request head.
//!
//! Owns: evaluating `methods` and `headers` conditions without allocating. Must not: know about
//! hosts, paths or ranking.

use portcullis_core::pipeline::RequestHead;

/// One header condition: `name` (lowercased) present, with `value` exactly when given.
#[derive(Clone, Debug)]
pub(crate) struct HeaderCond {
    /// Field name, lowercased (lookups ignore case anyway).
    pub name: Box<str>,
    /// Required exact value of some field of that name; `None` = presence only.
    pub value: Option<Box<[u8]>>,
}

/// The method and header conditions of one route.
#[derive(Clone, Debug)]
pub(crate) struct Conditions {
    /// Allowed method tokens; empty = any.
    methods: Box<[Box<[u8]>]>,
    /// Header conditions, all of which must hold.
    headers: Box<[HeaderCond]>,
}

impl Conditions {
    /// Conditions from validated parts.
    pub fn new(methods: Vec<Box<[u8]>>, headers: Vec<HeaderCond>) -> Conditions {
        Conditions { methods: methods.into_boxed_slice(), headers: headers.into_boxed_slice() }
    }

    /// Number of conditions for ranking: 1 if methods are restricted, plus one per header.
    pub fn count(&self) -> u32 {
        u32::from(!self.methods.is_empty()) + super::saturate(self.headers.len())
    }

    /// True when `req` satisfies every condition.
    #[inline]
    pub fn matches(&self, req: &RequestHead) -> bool {
        if !self.methods.is_empty() {
            let method = req.method.as_bytes();
            if !self.methods.iter().any(|m| **m == *method) {
                return false;
            }
        }
        self.headers.iter().all(|h| match &h.value {
            None => req.headers.contains(&h.name),
            Some(want) => req.headers.get_all(&h.name).any(|v| v[..] == want[..]),
        })
    }
}
