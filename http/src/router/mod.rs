//! The route table: compiles `[[routes]]` once per config generation into an immutable,
//! `Send + Sync` lookup structure and answers "which route serves this request head?".
//!
//! Owns: route matching (host, path, method, header conditions) and the choice of a winner.
//! Must not: touch the request, forward anything, or know what a route does once chosen (the
//! caller maps the returned index back to `routes[index]`).
//!
//! # Matching
//! - Host: `req.host()` (port already stripped), compared ASCII-case-insensitively. Route
//!   `hosts` empty (or `"*"`) = any host, including a request without one. `api.example.com` is
//!   exact; `*.example.com` matches `a.example.com` and `a.b.example.com`, not `example.com`.
//! - Path (`req.path`, normalised, starts with `/`): `path` without `{` is exact. `path` with
//!   `{name}` segments is a template; each `{name}` matches exactly one non-empty segment.
//!   `prefix` matches on segment boundaries: `/api` matches `/api`, `/api/`, `/api/x`, not
//!   `/apix`; `/api/` matches `/api/` and `/api/x`, not `/api`; `/` matches every path.
//!   Neither `path` nor `prefix` = any path (also `*` of `OPTIONS *`, which nothing else matches).
//! - Methods: empty = any; otherwise `req.method.as_bytes()` must equal one (case-sensitive).
//! - Headers: every condition must hold; names case-insensitive; with `value` some field of that
//!   name must equal it exactly, without `value` the field must merely be present.
//!
//! # Choosing the winner among all matching routes (first difference decides)
//! 1. Higher `priority`.
//! 2. Path kind: exact > template > prefix > any-path.
//! 3. Within a kind: templates with more literal segments; then more literal bytes (the longer
//!    prefix wins, so `/api/` beats `/api` for `/api/x`).
//! 4. Host: a route matched through an exact host beats one matched through a wildcard, which
//!    beats an any-host route; between wildcards the longer suffix wins (`*.b.example.com`
//!    beats `*.example.com`). A route listing several hosts ranks by the one that matched.
//! 5. More conditions: restricting methods counts one, each header condition counts one.
//! 6. The earlier route in file order.
//!
//! A route whose method or header conditions fail is skipped and the search goes on, so a less
//! specific route may still serve the request.
//!
//! # How
//! Routes are grouped by host pattern (exact-host map, wildcard-suffix map, any-host table).
//! Each group is a segment trie whose nodes hold literal children (a short list or a hash map),
//! an optional `{param}` child, and the routes ending there (exact/template, prefix, and
//! prefix-with-trailing-slash), each list sorted best-first by a precomputed rank. `find` walks
//! the request path once per candidate group, depth-first into literal and param children,
//! keeps only the best rank seen so far and prunes subtrees whose best possible rank cannot beat
//! it. It allocates nothing and its cost depends on the path and host, not on the route count.

mod conds;
mod error;
mod hash;
mod pattern;
mod rank;
mod trie;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use std::collections::HashMap;

use portcullis_core::config::RouteConfig;
use portcullis_core::pipeline::RequestHead;

pub use error::RouterError;

use conds::Conditions;
use hash::FxBuild;
use pattern::{HostPattern, MAX_HOST_LEN, ParsedRoute};
use rank::{HostClass, Rank};
use trie::{Table, TableBuilder};

/// A compiled, immutable route table for one config generation.
pub struct Router {
    /// Method and header conditions, indexed by route.
    conds: Box<[Conditions]>,
    /// Tables of routes naming an exact host, keyed by the lowercased host.
    exact_hosts: HashMap<Box<[u8]>, Table, FxBuild>,
    /// Tables of wildcard routes, keyed by the lowercased suffix with its dot (`.example.com`).
    wildcard_hosts: HashMap<Box<[u8]>, Table, FxBuild>,
    /// Routes matching any host.
    any_host: Table,
    /// Lengths of the keys of `exact_hosts`, to skip hashing hosts that cannot be there.
    exact_lens: LenSet,
    /// Lengths of the keys of `wildcard_hosts`.
    wildcard_lens: LenSet,
}

/// A set of lengths `0..=MAX_HOST_LEN` as a bitmap.
#[derive(Clone, Copy, Default)]
struct LenSet([u64; 4]);

impl LenSet {
    /// The set holding `lens`.
    fn of(lens: impl Iterator<Item = usize>) -> LenSet {
        let mut set = LenSet::default();
        for n in lens {
            if let Some(word) = set.0.get_mut(n / 64) {
                *word |= 1 << (n % 64);
            }
        }
        set
    }

    /// True when some key has length `n`.
    #[inline]
    fn contains(self, n: usize) -> bool {
        self.0.get(n / 64).is_some_and(|w| w & (1 << (n % 64)) != 0)
    }
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("routes", &self.conds.len())
            .field("exact_hosts", &self.exact_hosts.len())
            .field("wildcard_hosts", &self.wildcard_hosts.len())
            .finish()
    }
}

impl Router {
    /// Compiles `routes` into a table; fails on the first invalid route.
    pub fn compile(routes: &[RouteConfig]) -> Result<Router, RouterError> {
        let mut conds = Vec::with_capacity(routes.len());
        let mut exact: HashMap<Box<[u8]>, TableBuilder> = HashMap::new();
        let mut wildcard: HashMap<Box<[u8]>, TableBuilder> = HashMap::new();
        let mut any = TableBuilder::new();
        for (index, cfg) in routes.iter().enumerate() {
            let parsed = ParsedRoute::parse(cfg, index)?;
            let base = parsed.rank(cfg.priority, index);
            for host in &parsed.hosts {
                match host {
                    HostPattern::Any => any.insert(&parsed.path, base.with_host(HostClass::Any, 0)),
                    HostPattern::Exact(name) => exact
                        .entry(name.clone())
                        .or_insert_with(TableBuilder::new)
                        .insert(&parsed.path, base.with_host(HostClass::Exact, 0)),
                    HostPattern::Wildcard(suffix) => {
                        let rank = base.with_host(HostClass::Wildcard, saturate(suffix.len()));
                        wildcard
                            .entry(suffix.clone())
                            .or_insert_with(TableBuilder::new)
                            .insert(&parsed.path, rank);
                    }
                }
            }
            conds.push(parsed.conds);
        }
        Ok(Router {
            conds: conds.into_boxed_slice(),
            exact_lens: LenSet::of(exact.keys().map(|k| k.len())),
            wildcard_lens: LenSet::of(wildcard.keys().map(|k| k.len())),
            exact_hosts: exact.into_iter().map(|(k, t)| (k, t.freeze())).collect(),
            wildcard_hosts: wildcard.into_iter().map(|(k, t)| (k, t.freeze())).collect(),
            any_host: any.freeze(),
        })
    }

    /// The index (into the compiled `routes`) of the route serving `req`, if any.
    pub fn find(&self, req: &RequestHead) -> Option<usize> {
        let path = &req.path[..];
        // Segments after the leading `/`; `None` for `*` and other non-origin forms.
        let rest = path.strip_prefix(b"/");
        let mut best: Option<Rank> = None;
        if let Some(host) = req.host() {
            self.find_by_host(host, rest, req, &mut best);
        }
        self.any_host.search(rest, req, &self.conds, &mut best);
        best.map(|r| r.route())
    }

    /// Searches the exact-host table and every wildcard table matching `host`.
    fn find_by_host(&self, host: &[u8], rest: Option<&[u8]>, req: &RequestHead, best: &mut Option<Rank>) {
        if host.len() > MAX_HOST_LEN || (self.exact_hosts.is_empty() && self.wildcard_hosts.is_empty()) {
            return;
        }
        let mut buf = [0u8; MAX_HOST_LEN];
        let lower = &mut buf[..host.len()];
        lower.copy_from_slice(host);
        lower.make_ascii_lowercase();
        let lower = &*lower;
        if self.exact_lens.contains(lower.len())
            && let Some(table) = self.exact_hosts.get(lower)
        {
            table.search(rest, req, &self.conds, best);
        }
        if self.wildcard_hosts.is_empty() {
            return;
        }
        // `*.example.com` is stored as `.example.com`: try every dot that has a label before it.
        for dot in memchr::memchr_iter(b'.', lower) {
            if dot == 0 || !self.wildcard_lens.contains(lower.len() - dot) {
                continue;
            }
            if let Some(table) = self.wildcard_hosts.get(&lower[dot..]) {
                table.search(rest, req, &self.conds, best);
            }
        }
    }

    /// Number of routes compiled into the table.
    pub fn len(&self) -> usize {
        self.conds.len()
    }

    /// True when the table holds no routes (every lookup misses).
    pub fn is_empty(&self) -> bool {
        self.conds.is_empty()
    }
}

/// Converts a length to `u32`, saturating (lengths are bounded at parse time anyway).
fn saturate(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
