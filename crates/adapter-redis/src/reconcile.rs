//! Reconciliation: which committed blocks the local chain lacks, decided from verified blocks
//! of the shared log, and the repair of blocks left on too few nodes.
//!
//! A leader does a full scan while its leadership generation is not reconciled (the first of
//! every leadership, and the first after a failed publish, read every node). Afterwards, while
//! its local head is the log's top it knows of (the head it reconciled at, or the last block it
//! published), it reads nothing: only a leadership that did not hold its lease throughout (the
//! caller decides that) runs the cheap "anything above the local chain on a quorum?" check. A
//! follower does the cheap check and a full scan when it is behind; it never writes. The full
//! read is `log_read`; the decision at each height is `poa_quorum::walk`; this module walks,
//! repairs and reports.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use poa_ports::{BlockCodec, BlockHeight, ChainHead, LeaderState};
use poa_quorum::{Candidate, HeightDecision, LatestDecision, LatestTally, Quorum};
use tokio_util::task::TaskTracker;

use crate::config::ValidatedConfig;
use crate::error::AdapterError;
use crate::fanout::FanOut;
use crate::lease::LeaseState;
use crate::log_read::{Backlog, LogReader, ReadScope};
use crate::metrics::Metrics;
use crate::node::NodeHandle;
use crate::publish::QuorumWriter;
use crate::repair::{RepairOutcome, Repairer};

/// No generation has been reconciled (or fully read).
const NOT_RECONCILED: u64 = u64::MAX;

/// Who is reconciling: a leader repairs, a follower only reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reader {
    Leader,
    Follower,
}

/// Reconciliation of leaders and followers against the streams.
#[derive(Debug)]
pub(crate) struct Reconciler<C: BlockCodec> {
    nodes: Arc<[NodeHandle]>,
    quorum: Quorum,
    stream_max_len: u64,
    state: Arc<LeaseState>,
    tracker: TaskTracker,
    metrics: Arc<Metrics>,
    reader: Arc<LogReader<C>>,
    repairer: Repairer,
    reconciled_generation: AtomicU64,
    /// The log's top as the reconciled generation knows it: the head it reconciled at, then
    /// each block it published to a quorum. This very head is in sync without a read while the
    /// lease was held throughout.
    known_top: Mutex<Option<ChainHead>>,
    /// The leadership generation whose first full scan read every node.
    fully_read_generation: AtomicU64,
    /// A publish failed since the last full scan that read every node: a block below quorum
    /// of this process's own may exist, so the next scan reads every node (no grace).
    publish_failed: AtomicBool,
    /// What a follower behind the log waits for, for status pages (logged when it starts and
    /// when it ends).
    waiting_for: Mutex<Option<String>>,
    /// Per node, the stream entries above the local head that the last full scan found invalid
    /// (a forgery far above the chain): the cheap check passes over them, so one such entry
    /// does not cost a full scan at every cycle. Replaced by every full scan.
    invalid_above: Mutex<Arc<[Vec<String>]>>,
}

/// The most invalid entries per node the cheap check passes over (each costs one index member
/// more in its read).
const INVALID_PASSED_OVER_PER_NODE: usize = 16;

impl<C: BlockCodec> Reconciler<C> {
    /// A reconciler over `writer`'s nodes, reading with the shared `reader`.
    pub(crate) fn new(
        config: &ValidatedConfig,
        writer: &QuorumWriter,
        reader: Arc<LogReader<C>>,
    ) -> Self {
        Self {
            repairer: Repairer::new(writer.clone()),
            nodes: Arc::clone(&writer.nodes),
            quorum: config.quorum,
            stream_max_len: config.stream_max_len,
            state: Arc::clone(&writer.state),
            tracker: writer.tracker.clone(),
            metrics: Arc::clone(&writer.metrics),
            reader,
            reconciled_generation: AtomicU64::new(NOT_RECONCILED),
            known_top: Mutex::new(None),
            fully_read_generation: AtomicU64::new(NOT_RECONCILED),
            publish_failed: AtomicBool::new(false),
            waiting_for: Mutex::new(None),
            invalid_above: Mutex::new(vec![Vec::new(); config.urls.len()].into()),
        }
    }

    /// After a failed publish: the next leader cycle (in this leadership or the next) does a
    /// full scan that reads every node, so an orphan of this process's own is seen and
    /// repaired, never skipped.
    pub(crate) fn publish_failed(&self) {
        self.publish_failed.store(true, Ordering::Release);
        self.require_full_scan();
    }

    /// A block of this process reached a quorum: the log's top, as far as this leadership
    /// knows.
    pub(crate) fn published(&self, block: &C::SealedBlock) {
        *self.known_top() = Some(ChainHead::of_block(block));
    }

    fn known_top(&self) -> std::sync::MutexGuard<'_, Option<ChainHead>> {
        self.known_top
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether leadership `generation` is reconciled with `head` without reading the log: the
    /// generation was reconciled, no publish failed since, and `head` (height and id) is the
    /// top it knows of (the head it reconciled at, or its last published block). Holding the lease throughout
    /// since, no other process can have put a block on a quorum (docs/protocol.md, "The cheap
    /// check and the lease").
    pub(crate) fn in_sync(&self, head: ChainHead, generation: u64) -> bool {
        self.reconciled_generation.load(Ordering::Acquire) == generation
            && !self.publish_failed.load(Ordering::Acquire)
            && *self.known_top() == Some(head)
    }

    /// What a follower behind the log waits for, if anything.
    pub(crate) fn waiting_for(&self) -> Option<String> {
        self.waiting_for
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Forces a full scan on the next leader cycle.
    fn require_full_scan(&self) {
        self.reconciled_generation
            .store(NOT_RECONCILED, Ordering::Release);
        *self.known_top() = None;
    }

    /// Leadership `generation` is reconciled with the log at `head`.
    fn reconciled(&self, head: ChainHead, generation: u64) {
        *self.known_top() = Some(head);
        self.reconciled_generation
            .store(generation, Ordering::Release);
    }

    /// The leader's cycle in leadership `generation`.
    pub(crate) async fn leader(
        &self,
        head: ChainHead,
        generation: u64,
    ) -> Result<LeaderState<C::SealedBlock>, AdapterError> {
        let started = Instant::now();
        let result = self.leader_cycle(head, generation).await;
        self.metrics
            .reconciliation_duration
            .observe(started.elapsed().as_secs_f64());
        if result.is_ok() {
            self.stop_waiting();
        }
        result
    }

    async fn leader_cycle(
        &self,
        head: ChainHead,
        generation: u64,
    ) -> Result<LeaderState<C::SealedBlock>, AdapterError> {
        let Some(next_height) = head.next_height() else {
            return Ok(LeaderState::ReconciledLeader);
        };
        let full_scan = self.reconciled_generation.load(Ordering::Acquire) != generation;
        if !full_scan {
            match self.latest_on_quorum(next_height).await? {
                LatestDecision::InSync => {
                    self.reconciled(head, generation);
                    return Ok(LeaderState::ReconciledLeader);
                }
                _ => {
                    tracing::warn!(height = %next_height, "backlog found by an in-sync leader");
                    self.require_full_scan();
                }
            }
        }
        // Every node, each bounded, on the first scan of a leadership (a block whose only
        // surviving copy sits on the slowest node must not be missed when the others already
        // look decided) and after a failed publish (this process's own orphan).
        let scope = if self.publish_failed.load(Ordering::Acquire)
            || self.fully_read_generation.load(Ordering::Acquire) != generation
        {
            ReadScope::EveryNode
        } else {
            ReadScope::GraceAfterQuorum
        };
        if scope == ReadScope::EveryNode {
            self.check_log_holds_head(head).await?;
        }
        let blocks = self.scan(head, Reader::Leader, scope).await?;
        if scope == ReadScope::EveryNode {
            self.publish_failed.store(false, Ordering::Release);
            self.fully_read_generation
                .store(generation, Ordering::Release);
        }
        if blocks.is_empty() {
            self.reconciled(head, generation);
            return Ok(LeaderState::ReconciledLeader);
        }
        tracing::info!(
            height = %next_height,
            count = blocks.len(),
            "leader reconciled committed blocks"
        );
        Ok(LeaderState::UnreconciledBlocks(blocks))
    }

    /// The follower's cycle: committed blocks (on a quorum, or proven by a block above) that
    /// extend the local chain.
    pub(crate) async fn follower(
        &self,
        head: ChainHead,
    ) -> Result<LeaderState<C::SealedBlock>, AdapterError> {
        let Some(next_height) = head.next_height() else {
            return Ok(LeaderState::ReconciledFollower);
        };
        if self.latest_on_quorum(next_height).await? == LatestDecision::InSync {
            self.stop_waiting();
            return Ok(LeaderState::ReconciledFollower);
        }
        let blocks = self
            .scan(head, Reader::Follower, ReadScope::GraceAfterQuorum)
            .await?;
        if blocks.is_empty() {
            return Ok(LeaderState::ReconciledFollower);
        }
        self.stop_waiting();
        Ok(LeaderState::UnreconciledBlocks(blocks))
    }

    /// Whether the log still reaches the local head: if a quorum of nodes answers with a latest
    /// height below it, the head (which was on a quorum when it was committed, and which every
    /// quorum of answers shares a node with) is gone from the log: nodes were emptied or
    /// restored beyond the disruption budget, and blocks above it that another process
    /// committed may be gone too. Undecided answers (too many failures) let the scan decide.
    async fn check_log_holds_head(&self, head: ChainHead) -> Result<(), AdapterError> {
        if head.height == BlockHeight::GENESIS {
            return Ok(());
        }
        let mut replies =
            FanOut::spawn(&self.tracker, self.nodes.iter(), None, |node| async move {
                node.read_latest().await
            });
        let (mut below, mut holding, mut log_top) = (0usize, 0usize, None);
        while let Some((_, reply)) = replies.next().await {
            match reply {
                Ok(latest) if latest.is_some_and(|height| height >= head.height) => {
                    holding = holding.saturating_add(1);
                }
                Ok(latest) => {
                    below = below.saturating_add(1);
                    log_top = log_top.max(latest);
                }
                Err(_) => {}
            }
            if self.quorum.reached(below) {
                self.metrics.log_behind_head.inc();
                tracing::error!(
                    head = %head.height,
                    log_top = ?log_top.map(BlockHeight::get),
                    nodes_below = below,
                    "the shared log lost blocks this process committed"
                );
                return Err(AdapterError::LogBehindHead {
                    head: head.height,
                    log_top,
                });
            }
            if self.quorum.impossible(holding) {
                return Ok(());
            }
        }
        Ok(())
    }

    /// The cheap check: the latest height on every node, decided at a quorum of answers.
    async fn latest_on_quorum(
        &self,
        next_height: BlockHeight,
    ) -> Result<LatestDecision, AdapterError> {
        let invalid = Arc::clone(
            &self
                .invalid_above
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        let mut replies = FanOut::spawn(&self.tracker, self.nodes.iter(), None, |node| {
            let invalid = Arc::clone(&invalid);
            async move {
                let passed_over = invalid.get(node.index()).map_or(&[][..], Vec::as_slice);
                node.read_latest_passing_over(passed_over).await
            }
        });
        let mut tally = LatestTally::new(self.quorum);
        let mut decision = LatestDecision::Undecided;
        while decision == LatestDecision::Undecided {
            let Some((_, reply)) = replies.next().await else {
                break;
            };
            tally.record(
                reply
                    .ok()
                    .map(|latest| latest.is_some_and(|height| height >= next_height)),
            );
            decision = tally.decision();
        }
        match decision {
            LatestDecision::InSync | LatestDecision::Backlog => {
                self.metrics
                    .observe_quorum_latency("reconcile_read", replies.elapsed());
                Ok(decision)
            }
            LatestDecision::NoQuorum | LatestDecision::Undecided => Err(AdapterError::NoQuorum {
                operation: "reconcile_read",
                acked: tally.answered(),
                needed: self.quorum.size(),
            }),
        }
    }

    /// Reads every node and walks up from the local head, deciding each height from the
    /// verified blocks (`poa_quorum::walk`): the contiguous blocks that extend the local chain
    /// and are committed (a leader first repairs a block below quorum, a follower stops there).
    /// A gap, a divergence or a contradiction at the first height is an error; further up it
    /// ends the batch, and the next cycle starts there.
    async fn scan(
        &self,
        head: ChainHead,
        reader: Reader,
        scope: ReadScope,
    ) -> Result<Vec<C::SealedBlock>, AdapterError> {
        let Some(next_height) = head.next_height() else {
            return Ok(Vec::new());
        };
        let backlog = self.reader.read(next_height, scope).await?;
        self.metrics.full_scans.inc();
        if let Some(epoch) = backlog.highest_epoch {
            self.state.observe_log_epoch(epoch).await;
        }
        self.remember_invalid_above(&backlog, next_height);
        let mut blocks = Vec::new();
        let mut parent = head.id;
        let mut height = next_height;
        let limit = usize::try_from(self.stream_max_len).unwrap_or(usize::MAX);
        while blocks.len() < limit {
            let first = blocks.is_empty();
            let taken = match backlog.view.decide(height, parent) {
                HeightDecision::Committed(block) => block,
                HeightDecision::Proven(block) => {
                    if reader == Reader::Leader {
                        // Best effort: the block is proven committed, so it is taken even if
                        // its copies cannot be restored now; only a lost lease stops the scan.
                        self.repair(height, &backlog, &block).await?;
                    }
                    block
                }
                HeightDecision::Orphan(block) => match reader {
                    Reader::Follower => {
                        if first {
                            self.wait_for(height, &block);
                        }
                        break;
                    }
                    Reader::Leader => {
                        let outcome = self.repair(height, &backlog, &block).await?;
                        if outcome.on_quorum() {
                            block
                        } else if first && outcome.refused_alone() {
                            // Every process would be refused alike: said as such, so the
                            // service keeps the lease instead of handing it on.
                            return Err(AdapterError::HeightTaken { height });
                        } else if first {
                            return Err(AdapterError::UnresolvedBacklog {
                                height,
                                reason: "repair did not reach a quorum".into(),
                            });
                        } else {
                            break;
                        }
                    }
                },
                HeightDecision::End | HeightDecision::Uncovered => break,
                HeightDecision::Gap if first => {
                    return Err(AdapterError::HistoryGap {
                        next_height: height,
                    });
                }
                HeightDecision::Diverged { id } if first => {
                    return Err(AdapterError::Diverged { height, block: id });
                }
                HeightDecision::Conflicting if first => {
                    return Err(AdapterError::ConflictingHistory { height });
                }
                HeightDecision::Blocked { occupied } if first => {
                    return Err(AdapterError::HeightBlocked {
                        height,
                        detail: self.describe_occupied(&backlog, height, &occupied),
                    });
                }
                HeightDecision::Gap
                | HeightDecision::Diverged { .. }
                | HeightDecision::Conflicting
                | HeightDecision::Blocked { .. } => break,
            };
            let Some((block, _)) = backlog.blocks.get(&taken.id) else {
                break;
            };
            blocks.push(block.clone());
            parent = taken.id;
            let Some(above) = height.next() else {
                break;
            };
            height = above;
        }
        Ok(blocks)
    }

    /// What each node in `occupied` holds at `height`: the entries that do not count, and the
    /// verified blocks that do not extend the local chain.
    fn describe_occupied(
        &self,
        backlog: &Backlog<C>,
        height: BlockHeight,
        occupied: &std::collections::BTreeSet<poa_quorum::NodeIndex>,
    ) -> String {
        let name = |node: poa_quorum::NodeIndex| {
            self.nodes
                .get(node)
                .map_or_else(|| node.to_string(), |handle| handle.name().to_owned())
        };
        let mut parts: Vec<(poa_quorum::NodeIndex, String)> = backlog
            .invalid
            .iter()
            .filter(|entry| entry.height == height && occupied.contains(&entry.node))
            .map(|entry| {
                let text = format!(
                    "{} holds entry {} ({})",
                    name(entry.node),
                    entry.entry_id,
                    entry.reason
                );
                (entry.node, text)
            })
            .collect();
        if let Some(votes) = backlog.view.votes(height) {
            for candidate in votes.candidates() {
                for node in candidate
                    .nodes
                    .iter()
                    .filter(|node| occupied.contains(node))
                {
                    let text = format!(
                        "{} holds block {} of another chain (parent {})",
                        name(*node),
                        candidate.id,
                        candidate.parent
                    );
                    parts.push((*node, text));
                }
            }
        }
        blocked_detail(parts, occupied.len(), self.quorum)
    }

    /// Keeps, per node, the invalid entries this full scan found at or above `next_height`.
    fn remember_invalid_above(&self, backlog: &Backlog<C>, next_height: BlockHeight) {
        let mut invalid = vec![Vec::new(); self.nodes.len()];
        for entry in backlog
            .invalid
            .iter()
            .filter(|entry| entry.height >= next_height)
        {
            if let Some(entries) = invalid.get_mut(entry.node)
                && entries.len() < INVALID_PASSED_OVER_PER_NODE
            {
                entries.push(entry.entry_id.clone());
            }
        }
        *self
            .invalid_above
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = invalid.into();
    }

    /// Records (and logs once) that a follower waits for the leader to repair `block`.
    fn wait_for(&self, height: BlockHeight, block: &Candidate) {
        let reason = format!(
            "height {height} is on {} of the {} nodes a quorum needs: waiting for the leader to repair it",
            block.nodes.len(),
            self.quorum.size()
        );
        let mut waiting = self
            .waiting_for
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if waiting.as_deref() != Some(reason.as_str()) {
            tracing::warn!(
                height = %height,
                acked = block.nodes.len(),
                quorum = self.quorum.size(),
                "follower waits for a block below quorum"
            );
            *waiting = Some(reason);
        }
    }

    /// Clears the waiting condition (logged once when it ends).
    fn stop_waiting(&self) {
        let mut waiting = self
            .waiting_for
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if waiting.take().is_some() {
            tracing::info!("follower no longer waits: the block reached a quorum");
        }
    }

    /// Brings `block` at `height` to a quorum. `Ok(false)` when it cannot; an error when a
    /// node fenced the repair (the lease was lost).
    async fn repair(
        &self,
        height: BlockHeight,
        backlog: &Backlog<C>,
        block: &Candidate,
    ) -> Result<RepairOutcome, AdapterError> {
        let replaceable = backlog.view.may_replace_at(height);
        let outcome = self
            .repairer
            .repair(height, backlog, block, replaceable)
            .await?;
        match outcome {
            RepairOutcome::OnQuorum { acked } => {
                if acked > block.nodes.len() {
                    tracing::info!(height = %height, acked, "block repaired to a quorum");
                }
            }
            RepairOutcome::NoRoom => {
                tracing::warn!(height = %height, "not enough nodes left to repair the block");
            }
            RepairOutcome::BelowQuorum { acked, .. } => tracing::warn!(
                height = %height,
                acked,
                quorum = self.quorum.size(),
                "repair did not reach a quorum"
            ),
        }
        Ok(outcome)
    }
}

/// The detail of a blocked height: what each occupying node holds, in the nodes' order, so
/// that the same blockage reads the same whichever node answered first (the log says a failure
/// once, and only a different text is a different failure).
fn blocked_detail(
    mut parts: Vec<(poa_quorum::NodeIndex, String)>,
    occupied: usize,
    quorum: Quorum,
) -> String {
    parts.sort();
    let parts: Vec<String> = parts.into_iter().map(|(_, text)| text).collect();
    format!(
        "{occupied} of {} nodes hold something else, a quorum needs {}: {}",
        quorum.nodes(),
        quorum.size(),
        parts.join("; ")
    )
}

#[cfg(test)]
mod tests {
    #![allow(non_snake_case)]

    use super::*;

    #[test]
    fn blocked_detail__when_the_nodes_answered_in_another_order__then_reads_the_same() {
        // given
        let quorum = Quorum::new(3, 0);
        let r0 = (
            0,
            "r0 holds entry 1-0 (not sealed by the chain authority)".to_owned(),
        );
        let r1 = (
            1,
            "r1 holds entry 2-0 (not sealed by the chain authority)".to_owned(),
        );

        // when
        let one = blocked_detail(vec![r0.clone(), r1.clone()], 2, quorum);
        let other = blocked_detail(vec![r1, r0], 2, quorum);

        // then
        assert_eq!(one, other);
        assert!(one.starts_with("2 of 3 nodes hold something else, a quorum needs 2: r0 holds"));
    }
}
