//! What a reconciliation decides at each height, from the blocks a quorum of nodes returned.
//!
//! Only verified blocks (sealed by an authorised producer of this chain, decoded to the id and
//! height they are stored under) are votes; what fails verification is only remembered as
//! occupying its node. The walk starts at the local chain's next height with the local head as
//! the parent and asks [`LogView::decide`] at each height in turn. The rules, in order:
//!
//! 1. A block on a quorum of the answers is committed. It must extend the parent; if it does
//!    not, the log's chain is not the local chain ([`HeightDecision::Diverged`]).
//! 2. A block below quorum that a verified block one height up extends was committed (only a
//!    producer whose chain holds a committed block seals its child): it lost copies
//!    ([`HeightDecision::Proven`]). It is taken even below quorum; a leader also repairs it.
//! 3. Fewer than a quorum of the answering nodes' reads reach the height (each read is capped
//!    by count): nothing more is decided in this batch ([`HeightDecision::Uncovered`]).
//! 4. Any verified block above the height means some block at this height was committed, by the
//!    argument of rule 2. It is not visible here (trimmed from the streams, or lost), so the
//!    log cannot say which: a leader must neither repair nor produce here
//!    ([`HeightDecision::Gap`]); the block comes from elsewhere (peers) or not at all.
//! 5. Otherwise the log ends at or just above this height: a block below quorum that extends
//!    the parent is an orphan of a failed publish ([`HeightDecision::Orphan`]; highest epoch,
//!    then smallest id); a leader repairs it, a follower waits for the leader. Nothing that
//!    extends the parent means the log ends ([`HeightDecision::End`]), unless so many nodes
//!    already hold something else there (entries that fail verification, blocks of another
//!    chain) that no block can reach a quorum at this height ([`HeightDecision::Blocked`]).
//!
//! Rule 4 is what keeps a far-behind leader from repairing a stale orphan over a committed
//! block: that orphan always has something verified above it.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use poa_ports::{BlockHeight, BlockId, Epoch};

use crate::quorum::{NodeIndex, Quorum};
use crate::votes::{Candidate, HeightVotes};

/// How far one answering node's read reaches from the next height up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coverage {
    /// The node returned every block it holds from the next height on.
    Complete,
    /// The node returned as many entries as it was asked for, the highest at this height: it
    /// may hold more above it.
    UpTo(BlockHeight),
}

impl Coverage {
    fn covers(self, height: BlockHeight) -> bool {
        match self {
            Self::Complete => true,
            Self::UpTo(highest) => height <= highest,
        }
    }
}

/// What the walk decided at one height.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeightDecision {
    /// A block on a quorum of the answers that extends the parent: take it.
    Committed(Candidate),
    /// A block below quorum that extends the parent and that a verified block above extends:
    /// it was committed and has lost copies. Take it; a leader also repairs it.
    Proven(Candidate),
    /// A block below quorum that extends the parent, with nothing verified above it: a leader
    /// repairs it before taking it, a follower waits.
    Orphan(Candidate),
    /// Nothing here extends the parent and nothing is above: the log ends.
    End,
    /// Nothing here extends the parent, nothing is above, and these answering nodes already
    /// hold something else at this height (entries that fail verification, blocks that do not
    /// extend the parent): too few nodes are left for any block to reach a quorum here.
    Blocked {
        /// The answering nodes that hold something else at this height.
        occupied: BTreeSet<NodeIndex>,
    },
    /// Something verified is above, but the block committed here is not visible.
    Gap,
    /// Too few reads reach this height to decide it; the next batch starts here.
    Uncovered,
    /// The log's committed (or proven) block here does not extend the parent: the log's chain
    /// and the local chain differ.
    Diverged {
        /// The block the log holds at this height.
        id: BlockId,
    },
    /// Two different blocks at this height are each extended by a verified block above: the
    /// log contradicts itself and no block can be chosen.
    Conflicting,
}

/// The blocks a reconciliation read returned, by height, with how far each answer reaches.
#[derive(Debug, Clone)]
pub struct LogView {
    quorum: Quorum,
    votes: BTreeMap<BlockHeight, HeightVotes>,
    refused: BTreeMap<BlockHeight, BTreeSet<NodeIndex>>,
    coverage: BTreeMap<NodeIndex, Coverage>,
}

impl LogView {
    /// An empty view for a log of `quorum.nodes()` nodes.
    pub fn new(quorum: Quorum) -> Self {
        Self {
            quorum,
            votes: BTreeMap::new(),
            refused: BTreeMap::new(),
            coverage: BTreeMap::new(),
        }
    }

    /// Records that `node` answered the read, and how far its answer reaches.
    pub fn answered(&mut self, node: NodeIndex, coverage: Coverage) {
        self.coverage.insert(node, coverage);
    }

    /// Records a verified block `id` (extending `parent`) that `node` holds at `height`,
    /// written under `epoch`.
    pub fn add(
        &mut self,
        node: NodeIndex,
        height: BlockHeight,
        id: BlockId,
        parent: BlockId,
        epoch: Epoch,
    ) {
        self.votes
            .entry(height)
            .or_default()
            .add(node, id, parent, epoch);
    }

    /// Records that `node` holds an entry at `height` that failed verification: not a vote, but
    /// the node refuses any other block at that height.
    pub fn refuse(&mut self, node: NodeIndex, height: BlockHeight) {
        self.refused.entry(height).or_default().insert(node);
    }

    /// The quorum the view counts toward.
    pub fn quorum(&self) -> Quorum {
        self.quorum
    }

    /// How many nodes answered.
    pub fn answers(&self) -> usize {
        self.coverage.len()
    }

    /// The votes at `height`, if any verified block was read there.
    pub fn votes(&self, height: BlockHeight) -> Option<&HeightVotes> {
        self.votes.get(&height)
    }

    /// The nodes holding an entry at `height` that failed verification.
    pub fn refused_at(&self, height: BlockHeight) -> BTreeSet<NodeIndex> {
        self.refused.get(&height).cloned().unwrap_or_default()
    }

    /// The lowest height holding a verified block.
    pub fn lowest_height(&self) -> Option<BlockHeight> {
        self.votes.keys().next().copied()
    }

    /// Whether every height read holds a block on a quorum of the answers. More answers can
    /// then change no decision of the walk, except to add orphans above the last height
    /// (which no commit ever depended on).
    pub fn every_height_committed(&self) -> bool {
        self.votes
            .values()
            .all(|votes| votes.committed(self.quorum).is_some())
    }

    /// Whether no block at `height` can have been committed, as far as a complete read can
    /// tell: every node answered and its read reaches the height, nothing verified lies above
    /// it, and no block there is on a bare majority of the nodes (a committed block stays on at
    /// least that many while the disruption budget holds). A repair may then replace the other
    /// blocks of the height ([`crate::plan_repair`]).
    pub fn may_replace_at(&self, height: BlockHeight) -> bool {
        let majority = crate::quorum::majority(self.quorum.nodes());
        self.coverage.len() == self.quorum.nodes()
            && self.covering(height) == self.quorum.nodes()
            && !self.anything_above(height)
            && self.votes.get(&height).is_none_or(|votes| {
                votes
                    .candidates()
                    .all(|candidate| candidate.nodes.len() < majority)
            })
    }

    /// How many answering nodes' reads reach `height`.
    fn covering(&self, height: BlockHeight) -> usize {
        self.coverage
            .values()
            .filter(|coverage| coverage.covers(height))
            .count()
    }

    /// Whether a verified block is stored anywhere above `height`.
    fn anything_above(&self, height: BlockHeight) -> bool {
        self.votes
            .range((Bound::Excluded(height), Bound::Unbounded))
            .next()
            .is_some()
    }

    /// What the walk decides at `height`, whose block must extend `parent` (see the module
    /// documentation for the rules and why each is safe).
    pub fn decide(&self, height: BlockHeight, parent: BlockId) -> HeightDecision {
        let empty = HeightVotes::default();
        let votes = self.votes.get(&height).unwrap_or(&empty);
        if let Some(committed) = votes.committed(self.quorum) {
            return if committed.parent == parent {
                HeightDecision::Committed(committed.clone())
            } else {
                HeightDecision::Diverged { id: committed.id }
            };
        }
        let children = height.next().and_then(|above| self.votes.get(&above));
        let extended: Vec<&Candidate> = votes
            .candidates()
            .filter(|candidate| {
                children.is_some_and(|children| {
                    children
                        .candidates()
                        .any(|child| child.parent == candidate.id)
                })
            })
            .collect();
        match extended.as_slice() {
            [] => {}
            [proven] if proven.parent == parent => {
                return HeightDecision::Proven((*proven).clone());
            }
            [proven] => return HeightDecision::Diverged { id: proven.id },
            _ => return HeightDecision::Conflicting,
        }
        if !self.quorum.reached(self.covering(height)) {
            return HeightDecision::Uncovered;
        }
        if self.anything_above(height) {
            return HeightDecision::Gap;
        }
        if let Some(orphan) = votes.highest_epoch(|candidate| candidate.parent == parent) {
            // Entries that fail verification are never replaced: when they leave too few
            // nodes for the orphan to ever reach a quorum, the height is blocked by them.
            let refused: BTreeSet<NodeIndex> = self
                .refused_at(height)
                .into_iter()
                .filter(|node| !orphan.nodes.contains(node))
                .collect();
            let reachable = self.quorum.nodes().saturating_sub(refused.len());
            if !self.quorum.reached(reachable) {
                return HeightDecision::Blocked { occupied: refused };
            }
            return HeightDecision::Orphan(orphan.clone());
        }
        let mut occupied = self.refused_at(height);
        occupied.extend(
            votes
                .candidates()
                .flat_map(|other| other.nodes.iter().copied()),
        );
        let free = self.quorum.nodes().saturating_sub(occupied.len());
        if occupied.is_empty() || self.quorum.reached(free) {
            HeightDecision::End
        } else {
            HeightDecision::Blocked { occupied }
        }
    }
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests;
