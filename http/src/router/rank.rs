//! The precomputed rank of a route as reached through one host pattern.
//!
//! Owns: the total order that picks the winner among matching routes (see the rules in
//! `mod.rs`). Must not: know how routes are matched or stored.

use std::cmp::Reverse;

/// What kind of path condition a route has; later variants are more specific.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum PathKind {
    /// Neither `path` nor `prefix`.
    AnyPath,
    /// `prefix`.
    Prefix,
    /// `path` with `{name}` segments.
    Template,
    /// `path` without `{`.
    Exact,
}

/// How the route's host condition matched; later variants are more specific.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum HostClass {
    /// No host condition.
    Any,
    /// `*.suffix`.
    Wildcard,
    /// An exact host name.
    Exact,
}

/// A route's rank; the derived order compares fields top to bottom, greater wins.
/// Ranks are unique per route and host class because `order` holds the route index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Rank {
    /// Configured priority.
    pub priority: i32,
    /// Path kind.
    pub kind: PathKind,
    /// Literal segments of a template (0 for other kinds).
    pub literal_segments: u32,
    /// Literal bytes of the path pattern (prefix length, exact length, template literals).
    pub literal_bytes: u32,
    /// Host class this rank was reached through.
    pub host: HostClass,
    /// Length of the wildcard suffix (0 unless `host` is `Wildcard`).
    pub host_bytes: u32,
    /// 1 if methods are restricted, plus the number of header conditions.
    pub conditions: u32,
    /// File order: the earlier route wins.
    pub order: Reverse<usize>,
}

impl Rank {
    /// The same rank reached through a host of class `host` (wildcard suffix length `bytes`).
    pub fn with_host(self, host: HostClass, bytes: u32) -> Rank {
        Rank { host, host_bytes: bytes, ..self }
    }

    /// Index of the route in the compiled list.
    pub fn route(self) -> usize {
        self.order.0
    }
}
