//! Protocol variants with one safety mechanism removed, to show that it matters. A mutation is a
//! switch in the model that calls a weakened wrapper around a `poa_quorum` rule (the wrapper
//! skips one check and otherwise runs the rule itself); `poa_quorum` knows nothing about them.
//! The commit pipeline's mutations weaken the model's own steps instead (`model.rs`): its rules
//! are `poa-core`'s sequencing, which the model states as steps, not `poa_quorum` functions.

use poa_ports::{BlockHeight, BlockId, Epoch};
use poa_quorum::script::{self, BlockWrite, NodeState, PromoteAnswer, WriteAnswer};
use poa_quorum::{HeightDecision, LogView};

use crate::state::Token;

/// A protocol variant with one safety mechanism removed (or weakened).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mutation {
    /// `write_block` refuses no height another block holds: the index is pointed at the new
    /// block and the stream keeps both.
    NoHeightCheck,
    /// `write_block` skips its owner check: any token may write if its epoch is not stale.
    NoOwnerCheck,
    /// Reconciliation never repairs: an orphan ends the walk (the leader produces at its
    /// height) and a proven block is taken without repair.
    NoRepair,
    /// Reconciliation accepts one successful read instead of a quorum (the fuel-core fork).
    ReadAnyOneNode,
    /// The walk without its gap rule (what it did before: a block below quorum with something
    /// verified above is an orphan to repair) and `write_block` without its trim floor.
    NoGapRuleNorTrimFloor,
    /// The walk without its gap rule only.
    NoGapRule,
    /// `write_block` without its trim floor only: a height that left the index is accepted.
    NoTrimFloor,
    /// `promote` without the caller's epoch floor: a process whose key lingers (its release was
    /// lost) continues at the epoch it led with before.
    NoEpochFloor,
    /// A repair never replaces another block: `plan_repair` is called with `replaceable =
    /// false` whatever the read proves (what it did before replacement).
    NoReplacement,
    /// A repair that replaces does not wait for every free node to store the block first: it
    /// writes the free nodes and replaces at once (the first replacement rule).
    ReplaceAtOnce,
    /// A reconciled leader skips the ownership check whether or not its lease is locally valid:
    /// also after the validity ran out and its keys expired.
    SkipCheckAfterExpiry,
    /// `membership commit` without its first check: it installs the new record once any node
    /// holds the joint one, whether or not the joint record holds a quorum of the old set and of
    /// the new one (the joint phase dropped).
    CommitWithoutJointQuorum,
    /// The scripts skip the membership check: a node admits a caller whatever record it holds
    /// and the caller joined.
    NoMembershipCheck,
    /// A failed commit does not stop the pipeline: the commit of the block published on the
    /// failed one still begins (the process still steps down).
    CommitPastFailure,
    /// Two commits in flight: the commit of a block published on a committing one does not
    /// wait for it, and may end first.
    CommitsOutOfOrder,
    /// A leader produces a third block while two of its blocks are stored and not committed
    /// (one committing, one waiting for it).
    ThirdBlockInFlight,
}

impl Mutation {
    fn skips_gap_rule(self) -> bool {
        matches!(self, Self::NoGapRuleNorTrimFloor | Self::NoGapRule)
    }

    fn skips_trim_floor(self) -> bool {
        matches!(self, Self::NoGapRuleNorTrimFloor | Self::NoTrimFloor)
    }
}

/// `script::promote`, or without the epoch floor under [`Mutation::NoEpochFloor`].
pub(crate) fn promote(
    node: &mut NodeState<Token>,
    token: &Token,
    floor: Epoch,
    mutation: Option<Mutation>,
) -> PromoteAnswer {
    match mutation {
        Some(Mutation::NoEpochFloor) => script::promote(node, token, Epoch::default()),
        _ => script::promote(node, token, floor),
    }
}

/// `script::write_block`, or a variant that skips one check: the owner (the writer is made the
/// owner for the call), the height (the index entry of another block is dropped first), or the
/// trim floor (hidden for the call and raised again after it).
pub(crate) fn write_block(
    node: &mut NodeState<Token>,
    write: BlockWrite<'_, Token>,
    mutation: Option<Mutation>,
) -> WriteAnswer {
    match mutation {
        Some(Mutation::NoOwnerCheck) => {
            let owner = node.owner.replace(*write.token);
            let answer = script::write_block(node, write);
            node.owner = owner;
            answer
        }
        Some(Mutation::NoHeightCheck) => {
            if node
                .heights
                .get(&write.height)
                .is_some_and(|stored| *stored != write.id)
                && node.owner.as_ref() == Some(write.token)
                && write.epoch >= node.epoch
            {
                node.heights.remove(&write.height);
            }
            script::write_block(node, write)
        }
        Some(mutation) if mutation.skips_trim_floor() => {
            let floor = node.trim_floor.take();
            let answer = script::write_block(node, write);
            node.trim_floor = floor.max(node.trim_floor);
            answer
        }
        _ => script::write_block(node, write),
    }
}

/// `poa_quorum::may_replace_after`, or `true` under [`Mutation::ReplaceAtOnce`].
pub(crate) fn may_replace_after(
    free_node_replies: &[poa_quorum::WriteReply],
    free_nodes: usize,
    mutation: Option<Mutation>,
) -> bool {
    mutation == Some(Mutation::ReplaceAtOnce)
        || poa_quorum::may_replace_after(free_node_replies, free_nodes)
}

/// `LogView::may_replace_at`, or `false` under [`Mutation::NoReplacement`].
pub(crate) fn may_replace_at(
    view: &LogView,
    height: BlockHeight,
    mutation: Option<Mutation>,
) -> bool {
    mutation != Some(Mutation::NoReplacement) && view.may_replace_at(height)
}

/// `LogView::decide`, or without its gap rule: where the walk says `Gap`, the mutated walk goes
/// on as if nothing were above (its last rule: the highest-epoch block extending the parent is
/// an orphan, else the log ends).
pub(crate) fn decide(
    view: &LogView,
    height: BlockHeight,
    parent: BlockId,
    mutation: Option<Mutation>,
) -> HeightDecision {
    let decision = view.decide(height, parent);
    if decision != HeightDecision::Gap || !mutation.is_some_and(Mutation::skips_gap_rule) {
        return decision;
    }
    view.votes(height)
        .and_then(|votes| votes.highest_epoch(|candidate| candidate.parent == parent))
        .map_or(HeightDecision::End, |orphan| {
            HeightDecision::Orphan(orphan.clone())
        })
}
