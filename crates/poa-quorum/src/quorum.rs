//! How many of the N independent nodes make a quorum, with the disruption budget.

/// Position of a node in the configured node list.
pub type NodeIndex = usize;

/// A bare majority of `nodes`: `floor(nodes / 2) + 1`.
pub fn majority(nodes: usize) -> usize {
    (nodes / 2).saturating_add(1)
}

/// The number of nodes and how many of them make a quorum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quorum {
    nodes: usize,
    size: usize,
}

impl Quorum {
    /// `q = min(floor(n/2) + 1 + budget, n)`: any two quorums then share at least
    /// `1 + 2·budget` nodes, so up to `2·budget` of the shared nodes may lose their data
    /// without two quorums holding different blocks at one height.
    pub fn new(nodes: usize, disruption_budget: usize) -> Self {
        Self {
            nodes,
            size: majority(nodes).saturating_add(disruption_budget).min(nodes),
        }
    }

    /// The quorum of a membership change's joint phase over the union of an old set of
    /// `old_nodes` and a new set of `new_nodes` that share `shared` nodes, both with disruption
    /// budget `budget`: a count over the union so large that every set of that many union
    /// members holds a quorum of the old set *and* a quorum of the new set, whichever nodes
    /// they are. The new set's own nodes can at most make up `new_nodes - shared` of a count
    /// without touching the old set, so the count needs the old quorum on top of them, and
    /// the other way round (docs/protocol.md, "Membership change").
    pub fn joint(old_nodes: usize, new_nodes: usize, shared: usize, budget: usize) -> Self {
        let shared = shared.min(old_nodes).min(new_nodes);
        let only_old = old_nodes.saturating_sub(shared);
        let only_new = new_nodes.saturating_sub(shared);
        let nodes = shared.saturating_add(only_old).saturating_add(only_new);
        let size = Self::new(old_nodes, budget)
            .size
            .saturating_add(only_new)
            .max(Self::new(new_nodes, budget).size.saturating_add(only_old))
            .min(nodes);
        Self { nodes, size }
    }

    /// How many nodes are configured.
    pub fn nodes(self) -> usize {
        self.nodes
    }

    /// How many nodes make a quorum.
    pub fn size(self) -> usize {
        self.size
    }

    /// Whether `count` nodes are a quorum.
    pub fn reached(self, count: usize) -> bool {
        count >= self.size
    }

    /// Whether a quorum can no longer be reached once `failed` nodes answered negatively.
    pub fn impossible(self, failed: usize) -> bool {
        failed > self.nodes.saturating_sub(self.size)
    }
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests;
