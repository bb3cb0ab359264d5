//! The per-host-group segment trie: building it from path patterns and searching it.
//!
//! Owns: the node layout (an arena of nodes indexed by `u32`), insertion, freezing, and the
//! allocation-free depth-first search that keeps the best rank. Must not: parse config, look at
//! hosts, or decide the ranking order (that is `Rank`'s `Ord`).

use std::collections::HashMap;

use portcullis_core::pipeline::RequestHead;

use super::conds::Conditions;
use super::hash::FxBuild;
use super::pattern::{PathPattern, Segment};
use super::rank::Rank;

/// Fan-out above which literal children are hashed instead of scanned.
const SMALL_FANOUT: usize = 8;

/// Literal children of a node.
enum Children {
    /// A few children, scanned in order.
    Small(Box<[(Box<[u8]>, u32)]>),
    /// Many children, hashed.
    Large(HashMap<Box<[u8]>, u32, FxBuild>),
}

impl Children {
    /// The child for segment `seg`.
    #[inline]
    fn get(&self, seg: &[u8]) -> Option<u32> {
        match self {
            Children::Small(list) => list.iter().find(|(k, _)| **k == *seg).map(|&(_, id)| id),
            Children::Large(map) => map.get(seg).copied(),
        }
    }
}

/// A trie node: the routes ending at this depth and the ways to go deeper.
struct Node {
    /// Literal children keyed by segment.
    children: Children,
    /// The `{param}` child.
    param: Option<u32>,
    /// Exact and template routes whose segments end here (best first).
    full: Box<[Rank]>,
    /// Prefix routes without a trailing slash ending here (best first).
    prefix: Box<[Rank]>,
    /// Prefix routes with a trailing slash ending here: need one more segment (best first).
    prefix_slash: Box<[Rank]>,
    /// Best rank stored in this node or below; `None` when the subtree holds no route.
    best_below: Option<Rank>,
}

/// A frozen trie for one host group.
pub(crate) struct Table {
    /// Node arena; node 0 is the root, children always have larger ids than their parent.
    nodes: Box<[Node]>,
    /// Routes without a path condition (best first).
    any_path: Box<[Rank]>,
    /// Best rank anywhere in the table.
    best: Option<Rank>,
}

impl Table {
    /// Updates `best` with the best route of this table matching `req`, if it beats `best`.
    /// `rest` is the path after its leading `/`, or `None` for a path not starting with `/`.
    #[inline]
    pub fn search(
        &self,
        rest: Option<&[u8]>,
        req: &RequestHead,
        conds: &[Conditions],
        best: &mut Option<Rank>,
    ) {
        if !beats(self.best, *best) {
            return;
        }
        if let Some(rest) = rest {
            self.walk(0, Some(rest), req, conds, best);
        }
        consider(&self.any_path, req, conds, best);
    }

    /// Depth-first search from node `id`; `rest` = remaining segments (`None` once consumed).
    fn walk(
        &self,
        id: u32,
        rest: Option<&[u8]>,
        req: &RequestHead,
        conds: &[Conditions],
        best: &mut Option<Rank>,
    ) {
        let Some(node) = self.nodes.get(id as usize) else { return };
        if !beats(node.best_below, *best) {
            return;
        }
        let Some(rest) = rest else {
            consider(&node.full, req, conds, best);
            consider(&node.prefix, req, conds, best);
            return;
        };
        let (seg, next) = match memchr::memchr(b'/', rest) {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        };
        // Deeper matches are more specific, so look there first: it lets the rank prune more.
        if let Some(child) = node.children.get(seg) {
            self.walk(child, next, req, conds, best);
        }
        if let (Some(child), false) = (node.param, seg.is_empty()) {
            self.walk(child, next, req, conds, best);
        }
        consider(&node.prefix_slash, req, conds, best);
        consider(&node.prefix, req, conds, best);
    }
}

/// True when a subtree whose best rank is `bound` could still beat `best`.
#[inline]
fn beats(bound: Option<Rank>, best: Option<Rank>) -> bool {
    match (bound, best) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(b), Some(cur)) => b > cur,
    }
}

/// Takes the first route of `list` (sorted best first) that beats `best` and whose conditions hold.
#[inline]
fn consider(list: &[Rank], req: &RequestHead, conds: &[Conditions], best: &mut Option<Rank>) {
    for &rank in list {
        if best.is_some_and(|b| rank <= b) {
            return;
        }
        if conds.get(rank.route()).is_some_and(|c| c.matches(req)) {
            *best = Some(rank);
            return;
        }
    }
}

/// A node while the table is being built.
#[derive(Default)]
struct NodeBuilder {
    children: HashMap<Box<[u8]>, u32>,
    param: Option<u32>,
    full: Vec<Rank>,
    prefix: Vec<Rank>,
    prefix_slash: Vec<Rank>,
}

/// A table under construction.
pub(crate) struct TableBuilder {
    nodes: Vec<NodeBuilder>,
    any_path: Vec<Rank>,
}

impl TableBuilder {
    /// An empty table (just a root).
    pub fn new() -> TableBuilder {
        TableBuilder { nodes: vec![NodeBuilder::default()], any_path: Vec::new() }
    }

    /// Adds a route with path condition `path` and rank `rank`.
    pub fn insert(&mut self, path: &PathPattern, rank: Rank) {
        match path {
            PathPattern::Any => self.any_path.push(rank),
            PathPattern::Full { segments } => {
                let id = self.descend(segments);
                self.nodes[id].full.push(rank);
            }
            PathPattern::Prefix { segments, slash } => {
                let id = self.descend(segments);
                let node = &mut self.nodes[id];
                if *slash { node.prefix_slash.push(rank) } else { node.prefix.push(rank) }
            }
        }
    }

    /// Walks (creating as needed) the nodes for `segments`; returns the last node's id.
    fn descend(&mut self, segments: &[Segment]) -> usize {
        let mut id = 0usize;
        for seg in segments {
            let next_id = self.nodes.len();
            let existing = match seg {
                Segment::Literal(lit) => self.nodes[id].children.get(lit).copied(),
                Segment::Param => self.nodes[id].param,
            };
            id = match existing {
                Some(child) => child as usize,
                None => {
                    // Segment counts are bounded by MAX_SEGMENTS per route, so ids fit u32
                    // for any config that fits in memory; saturating keeps this panic-free.
                    let child = u32::try_from(next_id).unwrap_or(u32::MAX);
                    match seg {
                        Segment::Literal(lit) => {
                            self.nodes[id].children.insert(lit.clone(), child);
                        }
                        Segment::Param => self.nodes[id].param = Some(child),
                    }
                    self.nodes.push(NodeBuilder::default());
                    next_id
                }
            };
        }
        id
    }

    /// Sorts every route list best first and computes the pruning bounds.
    pub fn freeze(self) -> Table {
        let mut best_below: Vec<Option<Rank>> = vec![None; self.nodes.len()];
        let mut nodes: Vec<Node> = Vec::with_capacity(self.nodes.len());
        for b in self.nodes {
            let node = Node {
                full: sorted(b.full),
                prefix: sorted(b.prefix),
                prefix_slash: sorted(b.prefix_slash),
                param: b.param,
                children: freeze_children(b.children),
                best_below: None,
            };
            nodes.push(node);
        }
        // Children have larger ids than their parents: one pass from the back settles bounds.
        for id in (0..nodes.len()).rev() {
            let node = &nodes[id];
            let mut bound = [node.full.first(), node.prefix.first(), node.prefix_slash.first()]
                .into_iter()
                .flatten()
                .copied()
                .max();
            let child_ids = node.param.into_iter().chain(match &node.children {
                Children::Small(list) => list.iter().map(|&(_, c)| c).collect::<Vec<_>>(),
                Children::Large(map) => map.values().copied().collect(),
            });
            for c in child_ids {
                bound = bound.max(best_below.get(c as usize).copied().flatten());
            }
            best_below[id] = bound;
        }
        for (node, bound) in nodes.iter_mut().zip(best_below) {
            node.best_below = bound;
        }
        let any_path = sorted(self.any_path);
        let best = nodes.first().and_then(|n| n.best_below).max(any_path.first().copied());
        Table { nodes: nodes.into_boxed_slice(), any_path, best }
    }
}

/// Sorts best first and drops duplicates (a route listing the same host twice).
fn sorted(mut list: Vec<Rank>) -> Box<[Rank]> {
    list.sort_unstable_by(|a, b| b.cmp(a));
    list.dedup();
    list.into_boxed_slice()
}

/// Chooses the lookup structure for a node's literal children.
fn freeze_children(map: HashMap<Box<[u8]>, u32>) -> Children {
    if map.len() <= SMALL_FANOUT {
        let mut list: Vec<_> = map.into_iter().collect();
        list.sort_unstable_by_key(|&(_, id)| id);
        Children::Small(list.into_boxed_slice())
    } else {
        Children::Large(map.into_iter().collect())
    }
}
