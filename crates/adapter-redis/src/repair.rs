//! Repair: writing a block that is on fewer than a quorum of nodes to the nodes that lack it,
//! through the fenced write every publish uses (the lease's epoch recorded first, the owner
//! check, the height's uniqueness, the trim floor) and `WriteTally::repair`.
//!
//! Shared by reconciliation (blocks above the local head) and the anti-entropy sweep (blocks
//! below it). Which block may be repaired is never decided here: the caller hands in a block
//! the rules proved (`poa_quorum::walk`, `poa_quorum::anti_entropy`), read and verified with
//! the rest of its `Backlog`. The targets come from `plan_repair`; this module writes and
//! counts, and leaves the operator's log lines to the caller.

use std::sync::Arc;

use fred::bytes::Bytes;
use poa_ports::{BlockCodec, BlockHeight};
use poa_quorum::{
    Candidate, RepairPlan, WriteDecision, WriteReply, WriteTally, may_replace_after, plan_repair,
};

use crate::error::AdapterError;
use crate::fanout::FanOut;
use crate::log_read::Backlog;
use crate::node::BlockWrite;
use crate::publish::QuorumWriter;

/// How a repair ended, short of a lost lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RepairOutcome {
    /// The block is on a quorum: it already was, or the writes took it there.
    OnQuorum {
        /// Nodes known to hold it.
        acked: usize,
    },
    /// Too few nodes may take it: the others hold another block or an entry that failed
    /// verification at the height. Nothing was written.
    NoRoom,
    /// The writes ended below a quorum (nodes down, slow, or refusing the height).
    BelowQuorum {
        /// Nodes known to hold it.
        acked: usize,
        /// Whether refusals alone kept it below: the nodes that hold another entry at the
        /// height (seen by the read, or refusing the write) leave fewer than a quorum that
        /// could take it, whoever writes. Otherwise some node did not answer in time.
        refused_alone: bool,
    },
}

impl RepairOutcome {
    /// Whether the block is on a quorum now.
    pub(crate) fn on_quorum(self) -> bool {
        matches!(self, Self::OnQuorum { .. })
    }

    /// Whether the block cannot reach a quorum at its height for any writer: the nodes hold
    /// other entries there (every process would be refused alike).
    pub(crate) fn refused_alone(self) -> bool {
        matches!(
            self,
            Self::NoRoom
                | Self::BelowQuorum {
                    refused_alone: true,
                    ..
                }
        )
    }
}

/// Writes blocks below quorum to the nodes that lack them, with the writes of a publish.
#[derive(Debug, Clone)]
pub(crate) struct Repairer {
    writer: QuorumWriter,
}

impl Repairer {
    pub(crate) fn new(writer: QuorumWriter) -> Self {
        Self { writer }
    }

    /// Brings `block` at `height` to a quorum, copying the bytes `backlog` read for it.
    /// `replaceable`: the read proved that no block at the height can be committed, so the
    /// plan may replace other blocks there (`LogView::may_replace_at`).
    ///
    /// # Errors
    ///
    /// [`AdapterError::Fenced`] when a node fenced the write (the lease was lost, or the epoch
    /// could not be recorded), [`AdapterError::NoEpoch`] when this process no longer leads.
    pub(crate) async fn repair<C: BlockCodec>(
        &self,
        height: BlockHeight,
        backlog: &Backlog<C>,
        block: &Candidate,
        replaceable: bool,
    ) -> Result<RepairOutcome, AdapterError> {
        let writer = &self.writer;
        let votes = backlog.view.votes(height).cloned().unwrap_or_default();
        let occupied = backlog.view.refused_at(height);
        let Some(plan) = plan_repair(writer.quorum, &votes, block, &occupied, replaceable) else {
            if writer.quorum.reached(block.nodes.len()) {
                return Ok(RepairOutcome::OnQuorum {
                    acked: block.nodes.len(),
                });
            }
            writer.metrics.repair_failure.inc();
            return Ok(RepairOutcome::NoRoom);
        };
        let epoch = writer.state.epoch_for_write().await?;
        let Some((_, bytes)) = backlog.blocks.get(&block.id) else {
            return Ok(RepairOutcome::NoRoom);
        };
        tracing::debug!(
            height = %height,
            acked = plan.pre_existing,
            quorum = writer.quorum.size(),
            replacing = plan.replacing.len(),
            "repairing a block below quorum"
        );
        let write = BlockWrite::new(epoch, height, block.id, Bytes::clone(bytes));
        if plan.replaces() && !self.fill_free_nodes(height, &plan, &write).await {
            writer.metrics.repair_failure.inc();
            return Ok(RepairOutcome::BelowQuorum {
                acked: plan.pre_existing,
                refused_alone: false,
            });
        }
        let write = Arc::new(write.replacing(&plan.replacing));
        let targets: Vec<_> = plan.all_targets().collect();
        let tally = WriteTally::repair(writer.quorum, plan.pre_existing, targets.len());
        let result = writer
            .write_until_decided(targets, write, tally, "repair")
            .await;
        let acked = result.counts.stored;
        match result.decision {
            WriteDecision::Stored => {
                writer.metrics.repair_success.inc();
                Ok(RepairOutcome::OnQuorum { acked })
            }
            WriteDecision::Fenced => Err(AdapterError::Fenced {
                reason: format!(
                    "lost the lease during repair: {}",
                    result.fenced_reason.unwrap_or_default()
                ),
            }),
            WriteDecision::Impossible | WriteDecision::Undecided => {
                writer.metrics.repair_failure.inc();
                let holding_other = occupied.len().saturating_add(result.counts.height_refused);
                Ok(RepairOutcome::BelowQuorum {
                    acked,
                    refused_alone: writer.quorum.impossible(holding_other),
                })
            }
        }
    }

    /// The first step of a repair that replaces: the block goes to every node that was free at
    /// the read, each awaited (bounded). `true` only when every one stores it
    /// (`poa_quorum::may_replace_after`); otherwise nothing is replaced this time. A node that
    /// fences this write fences the second step too, which reports the lost lease.
    async fn fill_free_nodes(
        &self,
        height: BlockHeight,
        plan: &RepairPlan,
        write: &BlockWrite,
    ) -> bool {
        let writer = &self.writer;
        let write = Arc::new(write.clone());
        let replies = FanOut::spawn(
            &writer.tracker,
            plan.targets
                .iter()
                .filter_map(|node| writer.nodes.get(*node)),
            Some(&writer.metrics.outstanding_publish_tasks),
            |node| {
                let write = Arc::clone(&write);
                async move { node.write_block(&write).await }
            },
        )
        .all()
        .await;
        let outcomes: Vec<WriteReply> =
            replies.iter().map(|(_, outcome)| outcome.reply()).collect();
        if may_replace_after(&outcomes, plan.targets.len()) {
            return true;
        }
        tracing::warn!(
            height = %height,
            free = plan.targets.len(),
            "a node free at the read did not take the block: nothing is replaced"
        );
        false
    }
}
