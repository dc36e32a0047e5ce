//! Anti-entropy: which heights of the retained window below a leader's head hold their
//! committed block on fewer than a quorum of nodes, and which of those blocks are proven
//! committed, so that the leader may copy them back to a quorum.
//!
//! A sweep walks the window from the head down, a range of heights at a time. It first reads
//! only the heights indexes ([`IndexClaims`]): an index member names a block without its
//! payload, and nothing on a node is trusted, so the claims only choose which heights to look
//! at closely ([`IndexClaims::short_heights`]); a claim never proves anything. Those heights
//! are then read in full, every entry decoded and verified like any reconciliation read, and
//! [`walk_window_down`] decides each of them from the verified blocks alone:
//!
//! 1. The committed block at the head is the head itself: the caller's local chain.
//! 2. Going down, the committed block one height below a committed block is the block its
//!    parent id names: only a producer whose chain holds a block seals its child, and a leader
//!    commits only what extends its own chain.
//! 3. A verified block on a quorum of the answers is committed (it was published to a quorum;
//!    no other block can reach one at its height). Where rule 2 names another block, the log
//!    contradicts the local chain and the sweep stops ([`WindowDecision::Contradicted`]).
//! 4. Nothing else is committed: a block below quorum that no committed block above names is
//!    never copied, whatever blocks of its own kind extend it ([`WindowDecision::Unproven`]).
//!
//! A committed block below quorum is [`WindowDecision::Short`]: the leader writes it to the
//! nodes that lack it. A committed block named by rule 2 that no answering node holds is
//! [`WindowDecision::Missing`]: it cannot be copied from the log (peers hold it).

use std::collections::{BTreeMap, BTreeSet};

use poa_ports::{BlockHeight, BlockId};

use crate::quorum::{NodeIndex, Quorum};
use crate::votes::Candidate;
use crate::walk::LogView;

/// How many heights below the head a sweep keeps on a quorum, for streams that keep
/// `stream_max_len` entries: half of them.
///
/// A stream is trimmed by age of entry, not by height, and a block copied back to a node is
/// that node's newest entry whatever its height. Keeping the copies within the highest half of
/// the stream's length means an entry is trimmed only once at least `stream_max_len` newer
/// entries were appended after it, which takes more than half a stream of new heights: by then
/// its height has left the window. A wider window could push out entries of heights still in
/// it, which the sweep would then copy again.
pub fn sweep_window(stream_max_len: u64) -> u64 {
    (stream_max_len / 2).max(1)
}

/// The lowest height of the window below `head` (heights start at 1: the genesis block is
/// never published), or `None` when there is nothing below the head to keep.
pub fn window_bottom(head: BlockHeight, window: u64) -> Option<BlockHeight> {
    if head == BlockHeight::GENESIS {
        return None;
    }
    let lowest = head.get().saturating_sub(window.saturating_sub(1)).max(1);
    Some(BlockHeight::new(lowest))
}

/// Which block each node's heights index names at each height: unverified, so only a filter.
#[derive(Debug, Clone)]
pub struct IndexClaims {
    quorum: Quorum,
    claims: BTreeMap<BlockHeight, BTreeMap<BlockId, BTreeSet<NodeIndex>>>,
}

impl IndexClaims {
    /// No claims yet, for a log of `quorum.nodes()` nodes.
    pub fn new(quorum: Quorum) -> Self {
        Self {
            quorum,
            claims: BTreeMap::new(),
        }
    }

    /// Records that `node`'s index names block `id` at `height`.
    pub fn claim(&mut self, node: NodeIndex, height: BlockHeight, id: BlockId) {
        self.claims
            .entry(height)
            .or_default()
            .entry(id)
            .or_default()
            .insert(node);
    }

    /// The heights from `lowest` to `highest` where no block is named by a quorum of distinct
    /// nodes, lowest first: the only heights that may have lost copies. A height named by a
    /// quorum is skipped; should the names be false (written by something else than the
    /// scripts), they can keep a height from being looked at, never cause a copy.
    pub fn short_heights(&self, lowest: BlockHeight, highest: BlockHeight) -> Vec<BlockHeight> {
        let mut short = Vec::new();
        let mut at = lowest;
        while at <= highest {
            let on_quorum = self.claims.get(&at).is_some_and(|blocks| {
                blocks
                    .values()
                    .any(|nodes| self.quorum.reached(nodes.len()))
            });
            if !on_quorum {
                short.push(at);
            }
            let Some(above) = at.next() else { break };
            at = above;
        }
        short
    }
}

/// The heights a step reads in full: from the highest short height (and the height above it,
/// whose block names the committed block there, when that lies within the step) down, at most
/// `max_heights` of them, starting at a short height. `lowest..=highest` is the step's range
/// and `short` its short heights (lowest first, within the range); `None` when there are none.
pub fn verified_range(
    lowest: BlockHeight,
    highest: BlockHeight,
    short: &[BlockHeight],
    max_heights: u64,
) -> Option<(BlockHeight, BlockHeight)> {
    let short_top = short.last().copied()?;
    let top = short_top
        .next()
        .map_or(short_top, |above| above.min(highest));
    let floor = BlockHeight::new(
        top.get()
            .saturating_sub(max_heights.saturating_sub(1))
            .max(lowest.get()),
    );
    let bottom = short
        .iter()
        .copied()
        .find(|height| *height >= floor)
        .unwrap_or(short_top);
    Some((bottom, top))
}

/// What the sweep decided at one height.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WindowDecision {
    /// The committed block is on a quorum of the answers.
    OnQuorum,
    /// The committed block is below quorum among the answers: copy it to the nodes that lack
    /// it.
    Short(Candidate),
    /// The committed block is known (a committed block above names it) but no answering node
    /// holds a verified copy: nothing to copy from.
    Missing {
        /// The committed block's id.
        id: BlockId,
    },
    /// No block here is on a quorum and no committed block above names one: which block is
    /// committed here is not known, so nothing is copied.
    Unproven,
    /// A quorum holds a block other than the one the committed block above names: the log
    /// contradicts the local chain. The walk stops here.
    Contradicted {
        /// The block on a quorum.
        held: BlockId,
        /// The block the chain above names.
        named: BlockId,
    },
}

/// The decisions of one walk, highest height first, and what it learnt below them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowWalk {
    /// One decision per height from the top down, ending early after a contradiction.
    pub decisions: Vec<(BlockHeight, WindowDecision)>,
    /// The committed block's id one height below the lowest decided height, when a committed
    /// block there names it: the next walk's `named` at its top.
    pub named_below: Option<BlockId>,
}

impl WindowWalk {
    /// Whether the walk stopped at a contradiction.
    pub fn contradicted(&self) -> bool {
        matches!(
            self.decisions.last(),
            Some((_, WindowDecision::Contradicted { .. }))
        )
    }
}

/// Decides each height from `top` down to `bottom` from the verified blocks of `view` (see the
/// module documentation for the rules). `named` is the committed block's id at `top` when the
/// caller knows it: its head at the head's height, or what an earlier walk learnt below.
pub fn walk_window_down(
    view: &LogView,
    top: BlockHeight,
    bottom: BlockHeight,
    named: Option<BlockId>,
) -> WindowWalk {
    let mut decisions = Vec::new();
    let mut named = named;
    let mut at = top;
    while at >= bottom {
        let votes = view.votes(at);
        let on_quorum = votes.and_then(|votes| votes.committed(view.quorum()));
        let (decision, below) = match (named, on_quorum) {
            (Some(expected), Some(held)) if held.id != expected => {
                let contradicted = WindowDecision::Contradicted {
                    held: held.id,
                    named: expected,
                };
                decisions.push((at, contradicted));
                return WindowWalk {
                    decisions,
                    named_below: None,
                };
            }
            (_, Some(held)) => (WindowDecision::OnQuorum, Some(held.parent)),
            (Some(expected), None) => match votes.and_then(|votes| votes.candidate(expected)) {
                Some(block) => (WindowDecision::Short(block.clone()), Some(block.parent)),
                None => (WindowDecision::Missing { id: expected }, None),
            },
            (None, None) => (WindowDecision::Unproven, None),
        };
        decisions.push((at, decision));
        named = below;
        match at.previous() {
            Some(lower) => at = lower,
            None => break,
        }
    }
    WindowWalk {
        decisions,
        named_below: named,
    }
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests;
