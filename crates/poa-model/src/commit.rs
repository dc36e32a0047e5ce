//! The commit pipeline (docs/protocol.md, "One commit in flight") as `poa-core` sequences it: a
//! publish that returned stored begins its block's commit, or queues it behind the one running;
//! a leader may produce on a committing block; commits end one at a time in height order, well
//! or failing, and a failed one stops the pipeline. No `poa_quorum` function decides any of this,
//! so the model states these steps itself, and the pipeline's mutations weaken them here.

use crate::model::{ProtocolModel, step_down};
use crate::mutation::Mutation;
use crate::state::{Action, Committed, Producer, Publish, Source, State};

impl ProtocolModel {
    /// A process with a commit in flight: the commit ends well or fails, and a leader whose
    /// cycle would produce may produce on the committing block. Every other cycle (a check that
    /// finds the lease lost, an ended publish, a reconciliation) lets the commit end first, as
    /// `poa-core` does: nothing abandons a commit.
    pub(crate) fn committing_actions(&self, state: &State, p: u8, actions: &mut Vec<Action>) {
        let c = &self.config;
        let producer = &state.producers[usize::from(p)];
        actions.push(Action::Commit(p));
        if state.commit_failures < c.max_commit_failures {
            actions.push(Action::CommitFailed(p));
        }
        if c.has(Mutation::CommitsOutOfOrder) && producer.committing.len() > 1 {
            actions.push(Action::CommitAbove(p));
        }
        let cycle_produces = producer.epoch.is_some()
            && producer.publish.is_none()
            && producer.reconciled
            && (self.skips_check(producer)
                || self.owns_lease(state, producer.token(p), producer.view));
        if cycle_produces && self.may_produce(state, p) {
            actions.push(Action::Produce(p));
        }
    }

    /// A commit ends: the lowest one well (`Commit`: its block joins the chain, and the commit
    /// of the block waiting on it begins) or failing (`CommitFailed`: the pipeline stops), or,
    /// under [`Mutation::CommitsOutOfOrder`], the one above it first (`CommitAbove`). `None`
    /// when no such commit runs.
    pub(crate) fn end_commit(&self, state: &mut State, action: Action) -> Option<()> {
        match action {
            Action::Commit(p) => {
                let producer = &mut state.producers[usize::from(p)];
                let committed = take(&mut producer.committing, 0)?;
                commit_locally(state, p, committed);
            }
            Action::CommitAbove(p) => {
                let producer = &mut state.producers[usize::from(p)];
                let committed = take(&mut producer.committing, 1)?;
                commit_locally(state, p, committed);
            }
            Action::CommitFailed(p) => {
                let past_failure = self.config.has(Mutation::CommitPastFailure);
                let producer = &mut state.producers[usize::from(p)];
                take(&mut producer.committing, 0)?;
                // The pipeline stops: nothing above the failed block is committed. Both blocks
                // are on a quorum; the process catches up like any process behind.
                if !past_failure {
                    producer.committing.clear();
                }
                step_down(producer);
                state.commit_failures += 1;
            }
            _ => return None,
        }
        Some(())
    }
}

/// The publish of `producer`'s block returned (its tally says stored with `publish`'s replies,
/// counted under `quorum`): the block's commit begins, or waits for the one below it.
pub(crate) fn publish_returned(
    producer: &mut Producer,
    publish: Publish,
    quorum: poa_quorum::Quorum,
) {
    producer.publish = None;
    producer.committing.push(Committed {
        block: publish.block,
        source: Source::Published {
            holders: u8::try_from(publish.held.count_ones()).unwrap_or(u8::MAX),
            quorum: u8::try_from(quorum.size()).unwrap_or(u8::MAX),
        },
    });
}

/// `committed` joins producer `p`'s local chain; a block whose parent is not the chain's head
/// is recorded (committed before its parent, or above a height the chain lacks).
pub(crate) fn commit_locally(state: &mut State, p: u8, committed: Committed) {
    let producer = &mut state.producers[usize::from(p)];
    if committed.block.parent != producer.head() {
        state.committed_before_parent = true;
    }
    producer.chain.push(committed);
}

/// Removes the `index`th committing block, if there is one.
fn take(committing: &mut Vec<Committed>, index: usize) -> Option<Committed> {
    (index < committing.len()).then(|| committing.remove(index))
}
