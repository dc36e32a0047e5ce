//! One reconciliation scan of a leader, as `adapter-redis` runs it: the reached nodes' reads
//! go into a `LogView`, the walk asks `decide` at each height from the local head, a block below
//! quorum is repaired with `plan_repair` and the repair tally, and what the walk takes is
//! imported. A scan that imported nothing completes the leadership's reconciliation; an error
//! discards the scan (nothing of it is imported), as the adapter's error does.

use poa_ports::{BlockHeight, Epoch};
use poa_quorum::{
    Candidate, HeightDecision, LogView, NodeIndex, RepairPlan, WriteDecision, WriteReply,
    WriteTally, plan_repair,
};

use crate::commit::commit_locally;
use crate::model::{ProtocolModel, step_down};
use crate::mutation::{self, Mutation};
use crate::rules;
use crate::state::{Block, Committed, Record, Source, State, Token, WriteMsg};

/// How a scan ended.
enum Scan {
    /// The walk stopped (the log ends, a batch is full, or a later height is undecided): import
    /// what it took; nothing taken completes the reconciliation.
    Taken,
    /// A block below quorum at the first height could not be repaired: an error, the leader
    /// keeps its lease and scans again next cycle.
    Failed,
    /// A node fenced a repair: the lease is lost, the leader steps down.
    Fenced,
    /// A gap, a divergence or a contradiction at the first height: the process releases the
    /// lease and stands aside until it has caught up from a peer.
    StandAside,
}

/// What a repair achieved.
#[derive(PartialEq, Eq)]
enum Repair {
    Stored,
    NotStored,
    Fenced,
}

/// Who repairs: the leader's token, epoch and record, and the nodes this step reaches.
#[derive(Clone, Copy)]
struct Repairer {
    token: Token,
    epoch: Epoch,
    view: Record,
    reach: u8,
}

impl ProtocolModel {
    /// Producer `p`, leading, reads the nodes in `read`, walks, repairs and imports.
    pub(crate) fn reconcile(&self, state: &mut State, p: u8, read: u8) {
        let c = &self.config;
        let (repairer, next, head) = {
            let producer = &state.producers[usize::from(p)];
            let Some(epoch) = producer.epoch else { return };
            let repairer = Repairer {
                token: producer.token(p),
                epoch,
                view: producer.view,
                reach: read,
            };
            (repairer, producer.height() + 1, producer.head())
        };
        // Positions in the view are places in the process's node list; a node holding another
        // record refuses the read (the membership check), which is no answer.
        let mut view = LogView::new(self.quorum(repairer.view));
        for (position, n) in (0u8..).zip(self.members(repairer.view)) {
            let node = &state.nodes[usize::from(*n)];
            if read & (1 << n) != 0 && self.admits(node, repairer.view) {
                rules::read_into(&mut view, position, node, next, c.read_window);
            }
        }
        let mut parent = rules::id_at(next - 1, head);
        let mut taken = Vec::new();
        let scan = loop {
            if taken.len() >= usize::from(c.read_window) {
                break Scan::Taken;
            }
            let first = taken.is_empty();
            let height = rules::height_of(next + u8::try_from(taken.len()).unwrap_or(u8::MAX));
            let block = match mutation::decide(&view, height, parent, c.mutation) {
                HeightDecision::Committed(block) => block,
                HeightDecision::Proven(block) => {
                    // Best effort: the block is proven committed, so it is taken even if its
                    // copies cannot be restored now; only a lost lease stops the scan.
                    if !c.has(Mutation::NoRepair)
                        && self.repair(state, repairer, height, &view, &block) == Repair::Fenced
                    {
                        break Scan::Fenced;
                    }
                    block
                }
                HeightDecision::Orphan(_) if c.has(Mutation::NoRepair) => break Scan::Taken,
                HeightDecision::Orphan(block) => {
                    match self.repair(state, repairer, height, &view, &block) {
                        Repair::Stored => block,
                        Repair::Fenced => break Scan::Fenced,
                        Repair::NotStored if first => break Scan::Failed,
                        Repair::NotStored => break Scan::Taken,
                    }
                }
                HeightDecision::Gap
                | HeightDecision::Diverged { .. }
                | HeightDecision::Conflicting
                    if first =>
                {
                    break Scan::StandAside;
                }
                // Another chain's blocks (the model has no garbage) hold the height on too
                // many nodes: an error, and the leader keeps its lease, as the adapter does.
                HeightDecision::Blocked { .. } if first => break Scan::Failed,
                HeightDecision::End
                | HeightDecision::Uncovered
                | HeightDecision::Gap
                | HeightDecision::Diverged { .. }
                | HeightDecision::Conflicting
                | HeightDecision::Blocked { .. } => break Scan::Taken,
            };
            parent = block.id;
            taken.push(rules::block_of(height, block.id, block.parent));
        };
        match scan {
            Scan::Failed => {}
            Scan::Fenced => step_down(&mut state.producers[usize::from(p)]),
            Scan::StandAside => {
                let producer = &mut state.producers[usize::from(p)];
                step_down(producer);
                producer.standing_aside = true;
            }
            Scan::Taken if taken.is_empty() => {
                state.producers[usize::from(p)].reconciled = true;
                if self.behind_a_committed_block(state, p) {
                    state.reconciled_behind = true;
                }
            }
            Scan::Taken => {
                for block in taken {
                    let imported = Committed {
                        block,
                        source: Source::Log,
                    };
                    commit_locally(state, p, imported);
                }
            }
        }
    }

    /// Brings `block` at `height` to a quorum as the adapter does: the plan may replace other
    /// blocks at the height when the read proves none of them can be committed
    /// (`LogView::may_replace_at`: every node read, each read reaching the height). A plan that
    /// replaces first writes every free node, and replaces only when every one of them stored
    /// the block (`may_replace_after`); otherwise the repair fails. Then every remaining target
    /// is written, naming the block it replaces (a target this step does not reach fails), and
    /// the repair tally decides. All the writes land; of the orders their replies may arrive in,
    /// the tally hears the stored ones first (the order that lets a repair count as stored
    /// whenever it can).
    fn repair(
        &self,
        state: &mut State,
        repairer: Repairer,
        height: BlockHeight,
        view: &LogView,
        block: &Candidate,
    ) -> Repair {
        let quorum = self.quorum(repairer.view);
        let votes = view.votes(height).cloned().unwrap_or_default();
        let occupied = view.refused_at(height);
        let replaceable = mutation::may_replace_at(view, height, self.config.mutation);
        let Some(plan) = plan_repair(quorum, &votes, block, &occupied, replaceable) else {
            return if quorum.reached(block.nodes.len()) {
                Repair::Stored
            } else {
                Repair::NotStored
            };
        };
        let repaired = rules::block_of(height, block.id, block.parent);
        let targets: Vec<NodeIndex> = plan.all_targets().collect();
        let free = plan.targets.len();
        let mut replies: Vec<WriteReply> = Vec::with_capacity(targets.len());
        for (position, target) in targets.iter().enumerate() {
            if position == free
                && plan.replaces()
                && !mutation::may_replace_after(&replies, free, self.config.mutation)
            {
                return Repair::NotStored;
            }
            replies.push(self.repair_write(state, repairer, *target, &plan, repaired));
        }
        replies
            .sort_by_key(|reply| !matches!(reply, WriteReply::Written | WriteReply::AlreadyStored));
        let mut tally = WriteTally::repair(quorum, plan.pre_existing, targets.len());
        for reply in replies {
            if tally.decision() != WriteDecision::Undecided {
                break;
            }
            tally.record(reply);
        }
        match tally.decision() {
            WriteDecision::Stored => Repair::Stored,
            WriteDecision::Fenced => Repair::Fenced,
            WriteDecision::Impossible | WriteDecision::Undecided => Repair::NotStored,
        }
    }

    /// One write of a repair to `target`, naming the block it replaces there if the plan
    /// replaces one (a target this step does not reach fails).
    fn repair_write(
        &self,
        state: &mut State,
        repairer: Repairer,
        target: NodeIndex,
        plan: &RepairPlan,
        repaired: Block,
    ) -> WriteReply {
        let Some(node) = self.members(repairer.view).get(target).copied() else {
            return WriteReply::Failed;
        };
        if repairer.reach & (1 << node) == 0 {
            return WriteReply::Failed;
        }
        let msg = WriteMsg {
            node,
            token: repairer.token,
            epoch: repairer.epoch,
            block: repaired,
            view: repairer.view,
        };
        let replaces = plan
            .replacing
            .iter()
            .find(|(replaced_on, _)| *replaced_on == target)
            .map(|(_, replaced)| *replaced);
        self.write_on(state, msg, replaces)
    }

    /// Whether producer `p`, whose reconciliation just completed, is behind a committed block:
    /// one above its chain is on a quorum, or another producer's chain is longer.
    fn behind_a_committed_block(&self, state: &State, p: u8) -> bool {
        let producer = &state.producers[usize::from(p)];
        let on_quorum_above = state.nodes.iter().flat_map(|n| &n.stream).any(|entry| {
            entry.block.height > producer.height() && self.on_a_quorum(&state.nodes, entry.block)
        });
        on_quorum_above
            || state
                .producers
                .iter()
                .any(|other| other.chain.len() > producer.chain.len())
    }
}
