//! Votes at one height: the blocks read there, grouped by block id over distinct nodes, and the
//! plan that brings a block below quorum to a quorum (repair).

use std::collections::{BTreeMap, BTreeSet};

use poa_ports::{BlockId, Epoch};

use crate::quorum::{NodeIndex, Quorum};
use crate::write::WriteReply;

/// One block read at a height, with the distinct nodes holding it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The block id.
    pub id: BlockId,
    /// The id of the block it extends.
    pub parent: BlockId,
    /// Distinct nodes holding it (a node holding it twice counts once).
    pub nodes: BTreeSet<NodeIndex>,
    /// The highest writer epoch among its entries.
    pub max_epoch: Epoch,
}

/// Votes at one height, grouped by block id over distinct nodes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeightVotes {
    candidates: BTreeMap<BlockId, Candidate>,
}

impl HeightVotes {
    /// Records that `node` holds block `id` (extending `parent`) written under `epoch`.
    pub fn add(&mut self, node: NodeIndex, id: BlockId, parent: BlockId, epoch: Epoch) {
        let candidate = self.candidates.entry(id).or_insert_with(|| Candidate {
            id,
            parent,
            nodes: BTreeSet::new(),
            max_epoch: epoch,
        });
        candidate.nodes.insert(node);
        candidate.max_epoch = candidate.max_epoch.max(epoch);
    }

    /// Every candidate, by block id.
    pub fn candidates(&self) -> impl Iterator<Item = &Candidate> {
        self.candidates.values()
    }

    /// The candidate with this id, if read.
    pub fn candidate(&self, id: BlockId) -> Option<&Candidate> {
        self.candidates.get(&id)
    }

    /// Whether no block was read at this height.
    pub fn is_empty(&self) -> bool {
        self.candidates.is_empty()
    }

    /// Nodes that hold some block at this height other than `id`.
    pub fn nodes_holding_other_than(&self, id: BlockId) -> BTreeSet<NodeIndex> {
        self.candidates
            .values()
            .filter(|candidate| candidate.id != id)
            .flat_map(|candidate| candidate.nodes.iter().copied())
            .collect()
    }

    /// The candidate on a quorum of distinct nodes, if any: a committed block. Two candidates
    /// can never both be on a quorum (each node keeps one block per height and quorums
    /// overlap); should a damaged log show two, the one with the highest epoch, then the
    /// smallest id, is named, the same on every process.
    pub fn committed(&self, quorum: Quorum) -> Option<&Candidate> {
        self.candidates
            .values()
            .filter(|candidate| quorum.reached(candidate.nodes.len()))
            .max_by_key(|candidate| precedence(candidate))
    }

    /// Among the candidates `eligible` accepts, the highest epoch, ties to the smallest id: the
    /// same choice on every process.
    pub fn highest_epoch(&self, eligible: impl Fn(&Candidate) -> bool) -> Option<&Candidate> {
        self.candidates
            .values()
            .filter(|candidate| eligible(candidate))
            .max_by_key(|candidate| precedence(candidate))
    }
}

/// The order among candidates that are not on a quorum: highest epoch, then smallest id.
fn precedence(candidate: &Candidate) -> (Epoch, std::cmp::Reverse<BlockId>) {
    (candidate.max_epoch, std::cmp::Reverse(candidate.id))
}

/// How to bring a block below quorum to a quorum.
///
/// A plan that replaces blocks is carried out in two steps: the block is first written to every
/// free node (`targets`), and the other blocks are replaced only once every free node stores
/// it ([`may_replace_after`]). The complete read proved that no block at the height is on a
/// bare majority, but a publish still in flight can count the acknowledgement of a node whose
/// copy a replacement then removes, and complete its quorum on a node that was free at the
/// read. Once every free node holds the winner, no node is left where a late write can land,
/// so no block can gain a node it did not hold at the read, and none held a majority.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepairPlan {
    /// Nodes known to hold the block already.
    pub pre_existing: usize,
    /// Nodes to write to: every node not known to hold the block or anything else at the
    /// height.
    pub targets: Vec<NodeIndex>,
    /// Nodes that hold another block at the height, with that block, which the write replaces:
    /// only where no block at the height can be committed (see [`plan_repair`]).
    pub replacing: Vec<(NodeIndex, BlockId)>,
    /// How many of the targets must store it for a quorum.
    pub needed: usize,
}

impl RepairPlan {
    /// Whether the plan replaces another block on some node.
    pub fn replaces(&self) -> bool {
        !self.replacing.is_empty()
    }

    /// Every node the repair writes to: the free ones, then the ones whose block it replaces.
    pub fn all_targets(&self) -> impl Iterator<Item = NodeIndex> + '_ {
        self.targets
            .iter()
            .copied()
            .chain(self.replacing.iter().map(|(node, _)| *node))
    }
}

/// The repair plan for `block` at a height whose votes are `votes` and where `occupied` nodes
/// hold entries that failed verification: `None` when the block already has a quorum or when
/// not enough nodes are left to give it one.
///
/// The free nodes come first. When they are too few and `replaceable` holds (the caller read
/// every node completely and found no block at the height on a majority of them, so none can
/// have been committed, even with the disruption budget spent: a committed block stays on at
/// least a bare majority), the nodes holding another verified block there are written too,
/// replacing it. Without this, blocks of failed publishes on every node (one per node, none on a
/// quorum) would keep the height from ever being filled. Entries that failed verification are
/// never replaced: they are the operator's to remove.
pub fn plan_repair(
    quorum: Quorum,
    votes: &HeightVotes,
    block: &Candidate,
    occupied: &BTreeSet<NodeIndex>,
    replaceable: bool,
) -> Option<RepairPlan> {
    let pre_existing = block.nodes.len();
    let needed = quorum.size().checked_sub(pre_existing).filter(|n| *n > 0)?;
    let others = votes.nodes_holding_other_than(block.id);
    let targets: Vec<NodeIndex> = (0..quorum.nodes())
        .filter(|node| {
            !block.nodes.contains(node) && !others.contains(node) && !occupied.contains(node)
        })
        .collect();
    let mut replacing = Vec::new();
    if targets.len() < needed && replaceable {
        for node in others.iter().filter(|node| !occupied.contains(node)) {
            let held: Vec<BlockId> = votes
                .candidates()
                .filter(|other| other.id != block.id && other.nodes.contains(node))
                .map(|other| other.id)
                .collect();
            // A node holding two blocks at one height (a damaged index) is not touched.
            if let [only] = held.as_slice() {
                replacing.push((*node, *only));
            }
        }
        replacing.truncate(needed.saturating_sub(targets.len()));
    }
    (targets.len().saturating_add(replacing.len()) >= needed).then_some(RepairPlan {
        pre_existing,
        targets,
        replacing,
        needed,
    })
}

/// Whether a plan's replacements may go ahead, given the replies of the writes to its free
/// nodes (`targets`): only when every one of them stores the block (see [`RepairPlan`]). A
/// refusal, a fencing or an unknown outcome on any free node leaves every other block in place.
pub fn may_replace_after(free_node_replies: &[WriteReply], free_nodes: usize) -> bool {
    free_node_replies.len() == free_nodes
        && free_node_replies
            .iter()
            .all(|reply| matches!(reply, WriteReply::Written | WriteReply::AlreadyStored))
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests;
