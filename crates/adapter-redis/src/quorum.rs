//! The rules of the protocol as pure functions: quorum size, Redlock validity and drift, epoch
//! max-fold, the tallies that turn per-node outcomes into a decision, and the vote, winner and
//! repair rules of reconciliation.
//!
//! No I/O, no async, no clocks: callers pass elapsed times and outcomes in, and get decisions
//! out. The I/O modules (`lease`, `publish`, `reconcile`) only gather outcomes and hand them to
//! these functions, so every rule here is tested from tables and with proptest.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use poa_ports::{BlockId, Epoch};

use crate::scripts::{OwnerOutcome, PromoteOutcome, WriteOutcome};

/// Position of a node in the configured URL list.
pub(crate) type NodeIndex = usize;

/// A bare majority of `nodes`: `floor(nodes / 2) + 1`.
pub(crate) fn majority(nodes: usize) -> usize {
    nodes / 2 + 1
}

/// The number of nodes and how many of them make a quorum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quorum {
    nodes: usize,
    size: usize,
}

impl Quorum {
    /// `q = min(floor(n/2) + 1 + budget, n)` (PROTOCOL.md section 1).
    pub(crate) fn new(nodes: usize, disruption_budget: usize) -> Self {
        Self {
            nodes,
            size: majority(nodes).saturating_add(disruption_budget).min(nodes),
        }
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
    pub(crate) fn reached(self, count: usize) -> bool {
        count >= self.size
    }

    /// Whether a quorum can no longer be reached once `failed` nodes answered negatively.
    pub(crate) fn impossible(self, failed: usize) -> bool {
        failed > self.nodes.saturating_sub(self.size)
    }
}

/// The clock drift allowance of a lease: `ttl / 100 + 2 ms`, in whole milliseconds as
/// fuel-core computes it.
pub(crate) fn drift(ttl: Duration) -> Duration {
    let ttl_millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis((ttl_millis / 100).saturating_add(2))
}

/// Redlock validity: how long a grant observed `elapsed` after the attempt started stays
/// valid, or `None` when `ttl - elapsed - drift` is not positive.
pub(crate) fn remaining_validity(
    ttl: Duration,
    drift: Duration,
    elapsed: Duration,
) -> Option<Duration> {
    ttl.checked_sub(elapsed)
        .and_then(|left| left.checked_sub(drift))
        .filter(|left| !left.is_zero())
}

/// The epoch after observing `seen`: the maximum, never lower than before.
pub(crate) fn fold_epoch(current: Option<Epoch>, seen: Epoch) -> Epoch {
    current.map_or(seen, |current| current.max(seen))
}

/// What one lease acquisition attempt decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AcquireDecision {
    /// More replies are needed.
    Undecided,
    /// A quorum granted within the validity window; the epoch is the highest granted.
    Acquired {
        /// The highest epoch any granting node returned.
        epoch: Epoch,
        /// Highest minus lowest granted epoch (the drift an election storm left behind).
        epoch_spread: u64,
    },
    /// A quorum answered that another owner holds the lease: no retry this cycle.
    HeldByAnother,
    /// A quorum can no longer be granted in this attempt (or the grants came too late).
    Failed,
}

/// Tally of one promote fan-out.
#[derive(Debug, Clone)]
pub(crate) struct PromoteTally {
    quorum: Quorum,
    granted: Vec<Epoch>,
    held: usize,
    unavailable: usize,
}

impl PromoteTally {
    pub(crate) fn new(quorum: Quorum) -> Self {
        Self {
            quorum,
            granted: Vec::new(),
            held: 0,
            unavailable: 0,
        }
    }

    pub(crate) fn record(&mut self, outcome: &PromoteOutcome) {
        match outcome {
            PromoteOutcome::Granted(epoch) => self.granted.push(*epoch),
            PromoteOutcome::HeldByAnother => self.held = self.held.saturating_add(1),
            PromoteOutcome::Unavailable(_) => {
                self.unavailable = self.unavailable.saturating_add(1);
            }
        }
    }

    /// Whether any node may hold a grant of this attempt, so a failed attempt must release:
    /// a node granted, or gave no usable answer (every timeout is an unknown outcome).
    pub(crate) fn may_hold_grants(&self) -> bool {
        !self.granted.is_empty() || self.unavailable > 0
    }

    /// The decision given the lease validity left at the moment of the last reply.
    pub(crate) fn decision(&self, validity: Option<Duration>) -> AcquireDecision {
        let answered = self
            .granted
            .len()
            .saturating_add(self.held)
            .saturating_add(self.unavailable);
        if self.quorum.reached(self.granted.len()) {
            if validity.is_none() {
                return AcquireDecision::Failed;
            }
            let highest = self.granted.iter().copied().max().unwrap_or_default();
            let lowest = self.granted.iter().copied().min().unwrap_or_default();
            return AcquireDecision::Acquired {
                epoch: highest,
                epoch_spread: highest.get().saturating_sub(lowest.get()),
            };
        }
        if self.quorum.reached(self.held) {
            return AcquireDecision::HeldByAnother;
        }
        let refused = self.held.saturating_add(self.unavailable);
        if self.quorum.impossible(refused) || answered >= self.quorum.nodes() {
            return AcquireDecision::Failed;
        }
        AcquireDecision::Undecided
    }
}

/// What an ownership check decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OwnershipDecision {
    /// More replies are needed.
    Undecided,
    /// A quorum confirmed this process's token.
    Owned,
    /// A quorum can no longer confirm it.
    NotOwned,
}

/// Tally of one ownership check fan-out.
#[derive(Debug, Clone)]
pub(crate) struct OwnershipTally {
    quorum: Quorum,
    confirmed: usize,
    unconfirmed: usize,
}

impl OwnershipTally {
    pub(crate) fn new(quorum: Quorum) -> Self {
        Self {
            quorum,
            confirmed: 0,
            unconfirmed: 0,
        }
    }

    pub(crate) fn record(&mut self, outcome: &OwnerOutcome) {
        match outcome {
            OwnerOutcome::Owner => self.confirmed = self.confirmed.saturating_add(1),
            OwnerOutcome::NotOwner | OwnerOutcome::Unavailable(_) => {
                self.unconfirmed = self.unconfirmed.saturating_add(1);
            }
        }
    }

    pub(crate) fn confirmed(&self) -> usize {
        self.confirmed
    }

    pub(crate) fn decision(&self) -> OwnershipDecision {
        if self.quorum.reached(self.confirmed) {
            OwnershipDecision::Owned
        } else if self.quorum.impossible(self.unconfirmed) {
            OwnershipDecision::NotOwned
        } else {
            OwnershipDecision::Undecided
        }
    }
}

/// What a publish (or repair) fan-out decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteDecision {
    /// More replies are needed.
    Undecided,
    /// A quorum holds the block (written now, already stored, or held before a repair).
    Stored,
    /// A node fenced the write: the lease is lost or the epoch is stale.
    Fenced,
    /// A quorum can no longer be reached.
    Impossible,
}

/// Counts of a write fan-out, for errors and logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct WriteCounts {
    /// Nodes that hold the block (including nodes known to hold it before the fan-out).
    pub(crate) stored: usize,
    /// Nodes that hold another block at this height.
    pub(crate) height_taken: usize,
    /// Nodes that fenced the write.
    pub(crate) fenced: usize,
    /// Nodes that failed or timed out (outcome unknown).
    pub(crate) failed: usize,
}

/// Tally of one write fan-out: written and already-stored count toward the quorum; a publish
/// fails early once more than `targets - needed` nodes failed.
#[derive(Debug, Clone)]
pub(crate) struct WriteTally {
    quorum: Quorum,
    targets: usize,
    abort_on_fence: bool,
    answered: usize,
    counts: WriteCounts,
}

impl WriteTally {
    /// A publish: every node is a target, nothing is stored yet; a fenced node is one failure
    /// among others (a zombie's write may still be refused by a quorum).
    pub(crate) fn publish(quorum: Quorum) -> Self {
        Self {
            quorum,
            targets: quorum.nodes(),
            abort_on_fence: false,
            answered: 0,
            counts: WriteCounts::default(),
        }
    }

    /// A repair: `pre_existing` nodes hold the block already, `targets` nodes are written; the
    /// first fenced node aborts the repair (the lease was lost).
    pub(crate) fn repair(quorum: Quorum, pre_existing: usize, targets: usize) -> Self {
        Self {
            quorum,
            targets,
            abort_on_fence: true,
            answered: 0,
            counts: WriteCounts {
                stored: pre_existing,
                ..WriteCounts::default()
            },
        }
    }

    pub(crate) fn record(&mut self, outcome: &WriteOutcome) {
        self.answered = self.answered.saturating_add(1);
        let counts = &mut self.counts;
        let slot = match outcome {
            WriteOutcome::Written | WriteOutcome::AlreadyStored => &mut counts.stored,
            WriteOutcome::HeightTaken => &mut counts.height_taken,
            WriteOutcome::Fenced { .. } => &mut counts.fenced,
            WriteOutcome::Failed(_) => &mut counts.failed,
        };
        *slot = slot.saturating_add(1);
    }

    pub(crate) fn counts(&self) -> WriteCounts {
        self.counts
    }

    pub(crate) fn decision(&self) -> WriteDecision {
        let counts = self.counts;
        if self.quorum.reached(counts.stored) {
            return WriteDecision::Stored;
        }
        if self.abort_on_fence && counts.fenced > 0 {
            return WriteDecision::Fenced;
        }
        let reachable = counts
            .stored
            .saturating_add(self.targets.saturating_sub(self.answered));
        if !self.quorum.reached(reachable) {
            return if counts.fenced > 0 {
                WriteDecision::Fenced
            } else {
                WriteDecision::Impossible
            };
        }
        WriteDecision::Undecided
    }
}

/// What the cheap "latest height on a quorum" check decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LatestDecision {
    /// More replies are needed.
    Undecided,
    /// A quorum answered and none of them holds anything at or above the next height.
    InSync,
    /// A quorum answered and at least one holds a height at or above the next height.
    Backlog,
    /// A quorum of replies can no longer be collected.
    NoQuorum,
}

/// Tally of one `read_latest` fan-out against the next height.
#[derive(Debug, Clone)]
pub(crate) struct LatestTally {
    quorum: Quorum,
    in_sync: usize,
    backlog: usize,
    failed: usize,
}

impl LatestTally {
    pub(crate) fn new(quorum: Quorum) -> Self {
        Self {
            quorum,
            in_sync: 0,
            backlog: 0,
            failed: 0,
        }
    }

    /// Records one node's answer: `Some(at_or_above_next)` or `None` for a failed read.
    pub(crate) fn record(&mut self, has_backlog: Option<bool>) {
        let slot = match has_backlog {
            Some(true) => &mut self.backlog,
            Some(false) => &mut self.in_sync,
            None => &mut self.failed,
        };
        *slot = slot.saturating_add(1);
    }

    pub(crate) fn answered(&self) -> usize {
        self.in_sync.saturating_add(self.backlog)
    }

    pub(crate) fn decision(&self) -> LatestDecision {
        if self.backlog > 0 && self.quorum.reached(self.answered()) {
            LatestDecision::Backlog
        } else if self.quorum.reached(self.in_sync) {
            LatestDecision::InSync
        } else if self.quorum.impossible(self.failed) {
            LatestDecision::NoQuorum
        } else {
            LatestDecision::Undecided
        }
    }
}

/// One block id proposed at a height, with the distinct nodes holding it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Candidate {
    /// The block id.
    pub(crate) id: BlockId,
    /// Distinct nodes holding it (a node holding it twice counts once).
    pub(crate) nodes: BTreeSet<NodeIndex>,
    /// The highest writer epoch among its entries.
    pub(crate) max_epoch: Epoch,
}

/// Votes at one height, grouped by block id over distinct nodes.
#[derive(Debug, Clone, Default)]
pub(crate) struct HeightVotes {
    candidates: BTreeMap<BlockId, Candidate>,
}

impl HeightVotes {
    /// Records that `node` holds block `id` written under `epoch`.
    pub(crate) fn add(&mut self, node: NodeIndex, id: BlockId, epoch: Epoch) {
        let candidate = self.candidates.entry(id).or_insert_with(|| Candidate {
            id,
            nodes: BTreeSet::new(),
            max_epoch: epoch,
        });
        candidate.nodes.insert(node);
        candidate.max_epoch = candidate.max_epoch.max(epoch);
    }

    /// Nodes that hold some block at this height other than `id`.
    pub(crate) fn nodes_holding_other_than(&self, id: BlockId) -> BTreeSet<NodeIndex> {
        self.candidates
            .values()
            .filter(|candidate| candidate.id != id)
            .flat_map(|candidate| candidate.nodes.iter().copied())
            .collect()
    }

    /// The winner: a candidate on a quorum if there is one, otherwise the highest epoch, ties
    /// broken by the smallest block id (deterministic on every process).
    pub(crate) fn winner(&self, quorum: Quorum) -> Option<&Candidate> {
        let rank = |candidate: &&Candidate| {
            (
                quorum.reached(candidate.nodes.len()),
                candidate.max_epoch,
                std::cmp::Reverse(candidate.id),
            )
        };
        self.candidates.values().max_by_key(rank)
    }

    /// The candidate on a quorum of distinct nodes, if any: a committed block.
    pub(crate) fn committed(&self, quorum: Quorum) -> Option<&Candidate> {
        self.winner(quorum)
            .filter(|candidate| quorum.reached(candidate.nodes.len()))
    }
}

/// How to bring a sub-quorum winner to a quorum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RepairPlan {
    /// Nodes known to hold the winner already.
    pub(crate) pre_existing: usize,
    /// Nodes to write to: every node not known to hold the winner or another block here.
    pub(crate) targets: Vec<NodeIndex>,
    /// How many of the targets must store it for a quorum.
    pub(crate) needed: usize,
}

/// The repair decision for `winner` at a height whose votes are `votes`: `None` when the
/// winner already has a quorum or when not enough nodes are left to give it one.
pub(crate) fn plan_repair(
    quorum: Quorum,
    votes: &HeightVotes,
    winner: &Candidate,
) -> Option<RepairPlan> {
    let pre_existing = winner.nodes.len();
    let needed = quorum.size().checked_sub(pre_existing).filter(|n| *n > 0)?;
    let others = votes.nodes_holding_other_than(winner.id);
    let targets: Vec<NodeIndex> = (0..quorum.nodes())
        .filter(|node| !winner.nodes.contains(node) && !others.contains(node))
        .collect();
    (targets.len() >= needed).then_some(RepairPlan {
        pre_existing,
        targets,
        needed,
    })
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests;
