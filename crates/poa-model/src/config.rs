//! What a check explores: sizes, bounds, where it starts and which protocol variant. The quorum
//! is `poa_quorum::Quorum` of the node count and the disruption budget, as the adapter computes
//! it.

use poa_quorum::{Quorum, majority};

use crate::error::ModelError;
use crate::mutation::Mutation;

/// Node sets are bit masks in a `u8` and producers index a fixed array.
pub(crate) const MAX_MEMBERS: u8 = 8;

/// A membership change the exploration may run (old list, both, new list): the old set is the
/// first `nodes` nodes, the new set replaces the last `replaced` of them with as many fresh
/// servers, so both sets have `nodes` members.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MembershipChange {
    /// How many of the old set's nodes the new set replaces.
    pub replaced: u8,
}

/// The state a check starts from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// Empty nodes and empty local chains.
    Empty,
    /// A process far behind a trimmed log, replayed from the empty state (see `start.rs`):
    /// P0 left an orphan X at height 1 on node A only and stopped; P1 then committed Z1 and Z2
    /// on B and C while A was unreachable, so with one kept height B and C trimmed height 1.
    /// P1 still leads. Needs 3 nodes, budget 0 and at least 2 producers.
    FarBehind,
    /// A failed publish, replayed from the empty state (see `start.rs`): P0 led on A and B at
    /// epoch 1 and published X1; the publish failed and P0 stepped down, X1 landed late on A
    /// alone (P0's key lingers there) and its other writes were fenced. The first steps of the
    /// three-orphans story. Needs 3 nodes and budget 0.
    FailedPublish,
    /// A commit running, replayed from the empty state (see `start.rs`): P0 leads on A and B at
    /// epoch 1 and published X1, which A and B stored, so its commit began; X1's write to C is
    /// still in flight. Where the commit pipeline starts: P0 may produce on X1 now. Needs 3
    /// nodes and budget 0.
    Committing,
}

impl Start {
    /// The start's name, for errors.
    pub fn name(self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::FarBehind => "far behind",
            Self::FailedPublish => "failed publish",
            Self::Committing => "committing",
        }
    }
}

/// Sizes, bounds, start and the protocol variant to check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelConfig {
    /// Producer processes.
    pub producers: u8,
    /// Independent Redis nodes in a set (`N`; a membership change adds its fresh servers).
    pub nodes: u8,
    /// The quorum disruption budget `b`: the quorum is `majority + b`, and at most `b` wiped
    /// nodes count against it at a time.
    pub disruption_budget: u8,
    /// Highest height anyone produces (bound).
    pub max_height: u8,
    /// Highest epoch a node may reach (bound on promotions).
    pub max_epoch: u8,
    /// Blocks each producer may seal after the start (bound on attempts and retries).
    pub max_attempts: u8,
    /// Crashes in the whole run (bound).
    pub max_crashes: u8,
    /// Node wipes in the whole run (bound; the budget also limits them).
    pub max_wipes: u8,
    /// The commit pipeline (docs/protocol.md, "One commit in flight"): a leader may produce and
    /// publish the next block on a block whose commit is still running. Off, a leader produces
    /// only once its last block is committed.
    pub pipeline: bool,
    /// Local commits that fail in the whole run (bound; a failure is a fault of the process's
    /// disk, not of the protocol).
    pub max_commit_failures: u8,
    /// Heights each node's index (and stream) keeps: `write_block`'s `kept_heights`.
    pub kept_heights: u8,
    /// Entries each reconciliation read asks of a node, and the most blocks one scan takes.
    pub read_window: u8,
    /// Where the check starts.
    pub start: Start,
    /// A membership change the operator may run, `None` for a fixed set.
    pub change: Option<MembershipChange>,
    /// The protocol variant, `None` for the protocol as specified.
    pub mutation: Option<Mutation>,
}

impl ModelConfig {
    /// The smallest useful bound: 2 producers, 3 nodes, budget 0 (quorum 2), one height, epochs
    /// up to 3, one block per producer, no crash, no wipe, no pipeline, no failed commit,
    /// windows too large to trim. Tests widen one dimension at a time from here.
    pub fn small(mutation: Option<Mutation>) -> Self {
        Self {
            producers: 2,
            nodes: 3,
            disruption_budget: 0,
            max_height: 1,
            max_epoch: 3,
            max_attempts: 1,
            max_crashes: 0,
            max_wipes: 0,
            pipeline: false,
            max_commit_failures: 0,
            kept_heights: 8,
            read_window: 8,
            start: Start::Empty,
            change: None,
            mutation,
        }
    }

    /// A membership change that replaces the one node of a set (old {A}, new {B}, both
    /// under the joint record), from empty nodes: two producers, one block each, epochs up to
    /// 3. The smallest change in which the old and the new set share no node, so only the
    /// joint phase keeps their leaders apart.
    pub fn membership_change(mutation: Option<Mutation>) -> Self {
        Self {
            nodes: 1,
            change: Some(MembershipChange { replaced: 1 }),
            ..Self::small(mutation)
        }
    }

    /// The far-behind start with one kept height and a read window of one: P0 may lead again
    /// (epochs up to 4), each producer may seal one more block, up to height 3.
    pub fn far_behind(mutation: Option<Mutation>) -> Self {
        Self {
            max_height: 3,
            max_epoch: 4,
            kept_heights: 1,
            read_window: 1,
            start: Start::FarBehind,
            ..Self::small(mutation)
        }
    }

    /// The commit pipeline from the committing start (P0 leads at epoch 1 and X1's commit
    /// runs): two heights, one more block per producer (P0 may publish X2 on X1 while X1
    /// commits), epochs up to 2 (one more leadership), and one commit may fail.
    pub fn pipeline(mutation: Option<Mutation>) -> Self {
        Self {
            max_height: 2,
            max_epoch: 2,
            pipeline: true,
            max_commit_failures: 1,
            start: Start::Committing,
            ..Self::small(mutation)
        }
    }

    /// Every server a run may use: the set, and a change's fresh servers.
    pub fn servers(&self) -> u8 {
        self.nodes
            .saturating_add(self.change.map_or(0, |change| change.replaced))
    }

    /// The quorum of the old set, as the adapter computes it.
    pub fn quorum(&self) -> Quorum {
        Quorum::new(usize::from(self.nodes), usize::from(self.disruption_budget))
    }

    /// How many nodes make a quorum.
    pub fn quorum_size(&self) -> u8 {
        u8::try_from(self.quorum().size()).unwrap_or(u8::MAX)
    }

    /// Checks the sizes, the budget, the windows and the start.
    ///
    /// # Errors
    ///
    /// [`ModelError::TooLarge`], [`ModelError::BudgetTooLarge`], [`ModelError::EmptyWindow`] or
    /// [`ModelError::StartNeeds`].
    pub fn validate(&self) -> Result<(), ModelError> {
        let members = 1..=MAX_MEMBERS;
        if !members.contains(&self.servers()) || !members.contains(&self.producers) {
            return Err(ModelError::TooLarge {
                nodes: self.nodes,
                producers: self.producers,
            });
        }
        let nodes = usize::from(self.nodes);
        if majority(nodes) + usize::from(self.disruption_budget) > nodes {
            return Err(ModelError::BudgetTooLarge {
                budget: self.disruption_budget,
                nodes: self.nodes,
            });
        }
        if self.kept_heights == 0 || self.read_window == 0 {
            return Err(ModelError::EmptyWindow {
                kept_heights: self.kept_heights,
                read_window: self.read_window,
            });
        }
        let needs = match self.start {
            Start::Empty => None,
            Start::FarBehind => {
                (self.nodes != 3 || self.disruption_budget != 0 || self.producers < 2)
                    .then_some("3 nodes, budget 0 and at least 2 producers")
            }
            Start::FailedPublish | Start::Committing => {
                (self.nodes != 3 || self.disruption_budget != 0).then_some("3 nodes and budget 0")
            }
        };
        if let Some(change) = self.change
            && (change.replaced == 0 || change.replaced > self.nodes || self.start != Start::Empty)
        {
            return Err(ModelError::Change {
                reason: format!(
                    "a change replaces 1 to {} of the {} nodes and starts from empty nodes",
                    self.nodes, self.nodes
                ),
            });
        }
        if let Some(needs) = needs {
            return Err(ModelError::StartNeeds {
                start: self.start.name(),
                needs,
            });
        }
        Ok(())
    }

    pub(crate) fn has(&self, mutation: Mutation) -> bool {
        self.mutation == Some(mutation)
    }

    /// How many of its blocks a leader may have stored and not committed when it produces the
    /// next one: none without the pipeline; one with it, so at most two are uncommitted (one
    /// committing, one waiting for it); two under [`Mutation::ThirdBlockInFlight`].
    pub(crate) fn committing_when_producing(&self) -> usize {
        match (self.pipeline, self.has(Mutation::ThirdBlockInFlight)) {
            (false, _) => 0,
            (true, false) => 1,
            (true, true) => 2,
        }
    }

    /// Every server, as a mask.
    pub(crate) fn all_nodes(&self) -> u8 {
        u8::MAX >> (MAX_MEMBERS - self.servers())
    }
}
