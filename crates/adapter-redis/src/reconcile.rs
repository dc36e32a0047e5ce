//! Reconciliation (PROTOCOL.md section 6): what committed blocks the local chain lacks.
//!
//! A leader does a full scan once per leadership generation (reads from every node, a quorum
//! of successful reads or an error, then a short grace for the others unless a height is
//! undecided among the answers; votes per height, repair of a sub-quorum winner) and only a
//! cheap "latest height on a quorum" check afterwards; a failed publish forces the next full
//! scan, and that one waits for every node. A follower returns the blocks present on a quorum and never writes. Votes, winners and
//! repair plans come from `quorum`; this module gathers reads and writes.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use fred::bytes::Bytes;
use poa_ports::{BlockHeight, BlockId, LeaderState, SealedBlock};
use tokio_util::task::TaskTracker;

use crate::error::AdapterError;
use crate::fanout::FanOut;
use crate::lease::LeaseState;
use crate::metrics::Metrics;
use crate::node::{BlockWrite, NodeHandle};
use crate::publish::write_until_decided;
use crate::quorum::{
    self, HeightVotes, LatestDecision, LatestTally, NodeIndex, Quorum, WriteDecision, WriteTally,
};
use crate::scripts::StreamRead;

/// No generation has been reconciled.
const NOT_RECONCILED: u64 = u64::MAX;

/// Who is reconciling: a leader repairs, a follower only reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reader {
    Leader,
    Follower,
}

/// The decoded backlog: votes per height and one decoded copy of every candidate block.
#[derive(Debug, Default)]
struct Backlog {
    votes: BTreeMap<BlockHeight, HeightVotes>,
    blocks: HashMap<BlockId, (SealedBlock, Bytes)>,
}

impl Backlog {
    /// Whether every height read has a block on a quorum of the nodes that answered.
    fn every_height_committed(&self, quorum: Quorum) -> bool {
        self.votes
            .values()
            .all(|votes| votes.committed(quorum).is_some())
    }
}

/// Which nodes a full scan's read waits for once a quorum answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadScope {
    /// The others get a short grace while the answers decide every height.
    GraceAfterQuorum,
    /// Every node, each bounded by its timeout (after a failed publish of this process).
    EveryNode,
}

/// What a full scan's read is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadWait {
    /// Fewer than a quorum of successful reads so far.
    ForQuorum,
    /// A quorum answered; other nodes are waited for until this instant.
    Grace(tokio::time::Instant),
    /// A height is undecided among the answers: every node is waited for (each bounded).
    ForAll,
}

/// Reconciliation of leaders and followers against the streams.
#[derive(Debug)]
pub(crate) struct Reconciler {
    nodes: Arc<[NodeHandle]>,
    quorum: Quorum,
    stream_max_len: u64,
    state: Arc<LeaseState>,
    tracker: TaskTracker,
    metrics: Arc<Metrics>,
    reconciled_generation: AtomicU64,
    /// A publish failed since the last successful leader full scan: a sub-quorum orphan of
    /// this process's own may exist, so that scan reads every node (no grace).
    publish_failed: AtomicBool,
    /// Entries asked of each node per full read: `stream_max_len`, halved while reads time out
    /// (a reply of many large blocks can outlast the node timeout on every node, which would
    /// leave a lagging reader behind for good) and doubled again after fast reads. Any
    /// window is safe: the rules already handle reads capped by count.
    read_window: AtomicU64,
    node_timeout: Duration,
}

/// How long a full read waits for the other nodes once a quorum answered, as a fraction of the
/// node timeout (docs/protocol.md section 7).
const READ_GRACE_DIVISOR: u32 = 4;

impl Reconciler {
    pub(crate) fn new(
        nodes: Arc<[NodeHandle]>,
        quorum: Quorum,
        stream_max_len: u64,
        state: Arc<LeaseState>,
        tracker: TaskTracker,
        metrics: Arc<Metrics>,
        node_timeout: Duration,
    ) -> Self {
        Self {
            nodes,
            quorum,
            stream_max_len,
            state,
            tracker,
            metrics,
            reconciled_generation: AtomicU64::new(NOT_RECONCILED),
            publish_failed: AtomicBool::new(false),
            read_window: AtomicU64::new(stream_max_len.max(1)),
            node_timeout,
        }
    }

    /// After a failed publish: the next leader cycle (in this leadership or the next) does a
    /// full scan that waits for every node, so an orphan of this process's own is seen and
    /// repaired, never skipped.
    pub(crate) fn publish_failed(&self) {
        self.publish_failed.store(true, Ordering::Release);
        self.require_full_scan();
    }

    /// Forces a full scan on the next leader cycle.
    fn require_full_scan(&self) {
        self.reconciled_generation
            .store(NOT_RECONCILED, Ordering::Release);
    }

    /// The leader's cycle in leadership `generation`.
    pub(crate) async fn leader(
        &self,
        next_height: BlockHeight,
        generation: u64,
    ) -> Result<LeaderState, AdapterError> {
        let started = Instant::now();
        let result = self.leader_cycle(next_height, generation).await;
        self.metrics
            .reconciliation_duration
            .observe(started.elapsed().as_secs_f64());
        result
    }

    async fn leader_cycle(
        &self,
        next_height: BlockHeight,
        generation: u64,
    ) -> Result<LeaderState, AdapterError> {
        let full_scan = self.reconciled_generation.load(Ordering::Acquire) != generation;
        if !full_scan {
            match self.latest_on_quorum(next_height).await? {
                LatestDecision::InSync => return Ok(LeaderState::ReconciledLeader),
                _ => {
                    tracing::warn!(height = %next_height, "backlog found by an in-sync leader");
                    self.require_full_scan();
                }
            }
        }
        let scope = if self.publish_failed.load(Ordering::Acquire) {
            ReadScope::EveryNode
        } else {
            ReadScope::GraceAfterQuorum
        };
        let blocks = self.scan(next_height, Reader::Leader, scope).await?;
        if scope == ReadScope::EveryNode {
            self.publish_failed.store(false, Ordering::Release);
        }
        if blocks.is_empty() {
            self.reconciled_generation
                .store(generation, Ordering::Release);
            return Ok(LeaderState::ReconciledLeader);
        }
        tracing::info!(
            height = %next_height,
            count = blocks.len(),
            "leader reconciled committed blocks"
        );
        Ok(LeaderState::UnreconciledBlocks(blocks))
    }

    /// The follower's cycle: committed blocks (on a quorum) above the local chain.
    pub(crate) async fn follower(
        &self,
        next_height: BlockHeight,
    ) -> Result<LeaderState, AdapterError> {
        if self.latest_on_quorum(next_height).await? == LatestDecision::InSync {
            return Ok(LeaderState::ReconciledFollower);
        }
        let blocks = self
            .scan(next_height, Reader::Follower, ReadScope::GraceAfterQuorum)
            .await?;
        if blocks.is_empty() {
            return Ok(LeaderState::ReconciledFollower);
        }
        Ok(LeaderState::UnreconciledBlocks(blocks))
    }

    /// The cheap check: the latest height on every node, decided at a quorum of answers.
    async fn latest_on_quorum(
        &self,
        next_height: BlockHeight,
    ) -> Result<LatestDecision, AdapterError> {
        let mut replies =
            FanOut::spawn(&self.tracker, self.nodes.iter(), None, |node| async move {
                node.read_latest().await
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

    /// Reads every node, votes per height and returns the contiguous committed (or, for a
    /// leader, repaired) blocks from `next_height`.
    async fn scan(
        &self,
        next_height: BlockHeight,
        reader: Reader,
        scope: ReadScope,
    ) -> Result<Vec<SealedBlock>, AdapterError> {
        let backlog = self.read_backlog(next_height, scope).await?;
        let mut blocks = Vec::new();
        let mut height = next_height;
        let limit = usize::try_from(self.stream_max_len).unwrap_or(usize::MAX);
        while blocks.len() < limit {
            let Some(votes) = backlog.votes.get(&height) else {
                // Committed heights above a height none of a quorum holds: the streams were
                // trimmed past the local chain (or its entries do not decode). Neither role may
                // call that "nothing missing": a leader would fork, a follower never catch up.
                let above = backlog.votes.keys().any(|stored| *stored > height);
                if blocks.is_empty() && above {
                    return Err(AdapterError::HistoryGap {
                        next_height: height,
                    });
                }
                break;
            };
            let Some(winner) = votes.winner(self.quorum) else {
                break;
            };
            let Some((block, bytes)) = backlog.blocks.get(&winner.id) else {
                break;
            };
            if votes.committed(self.quorum).is_none() {
                if reader == Reader::Follower {
                    // A follower cannot repair. A later height on a quorum extends this one, so
                    // this block was committed and has since lost copies (Redis nodes restarted
                    // empty): the log cannot give it back. Report the gap so the history source
                    // (peers) serves it, instead of "nothing missing" forever.
                    let committed_above = backlog.votes.iter().any(|(stored, later)| {
                        *stored > height && later.committed(self.quorum).is_some()
                    });
                    if blocks.is_empty() && committed_above {
                        return Err(AdapterError::HistoryGap {
                            next_height: height,
                        });
                    }
                    break;
                }
                let repaired = self.repair(height, votes, winner, bytes.clone()).await;
                match repaired {
                    Ok(true) => {}
                    Ok(false) if blocks.is_empty() => {
                        return Err(AdapterError::UnresolvedBacklog {
                            height,
                            reason: "repair did not reach a quorum".into(),
                        });
                    }
                    Ok(false) => break,
                    Err(error) => return Err(error),
                }
            }
            blocks.push(block.clone());
            let Some(next) = height.next() else {
                break;
            };
            height = next;
        }
        Ok(blocks)
    }

    /// Reads entries at or above `next_height` from every node (each bounded) and decodes
    /// them; fewer than a quorum of successful reads is an error, never an empty backlog.
    ///
    /// Once a quorum answered, the other nodes get a short grace instead of their full
    /// timeout, but only while the answers decide every height: any block committed by a
    /// publish is on a quorum, so it is among the answers, and a sub-quorum orphan on a slow
    /// node was never committed (it loses to whatever reaches a quorum at its height). When a
    /// height has no block on a quorum of the answers, the winner and the repair targets
    /// depend on the nodes not heard yet (a committed block may look short among the first
    /// answers and lose to a higher-epoch orphan), so every node is waited for, each bounded.
    /// [`ReadScope::EveryNode`] skips the grace altogether.
    async fn read_backlog(
        &self,
        next_height: BlockHeight,
        scope: ReadScope,
    ) -> Result<Backlog, AdapterError> {
        let max_entries = self.read_window.load(Ordering::Acquire);
        let mut pending =
            FanOut::spawn(&self.tracker, self.nodes.iter(), None, |node| async move {
                node.read_from(next_height, max_entries).await
            });
        let mut backlog = Backlog::default();
        let mut successful = 0usize;
        let mut timed_out = 0usize;
        let mut undecodable = 0usize;
        let mut wait = ReadWait::ForQuorum;
        loop {
            let next = match wait {
                ReadWait::Grace(deadline) => {
                    match tokio::time::timeout_at(deadline, pending.next()).await {
                        Ok(next) => next,
                        Err(_) if backlog.every_height_committed(self.quorum) => break,
                        Err(_) => {
                            wait = ReadWait::ForAll;
                            continue;
                        }
                    }
                }
                ReadWait::ForQuorum | ReadWait::ForAll => pending.next().await,
            };
            let Some((node, reply)) = next else {
                break;
            };
            let read = match reply {
                Ok(read) => read,
                Err(error) => {
                    timed_out = timed_out.saturating_add(usize::from(error.is_timeout()));
                    continue;
                }
            };
            successful = successful.saturating_add(1);
            undecodable = undecodable.saturating_add(self.record_read(&mut backlog, node, read));
            if wait == ReadWait::ForQuorum && self.quorum.reached(successful) {
                wait = match scope {
                    ReadScope::GraceAfterQuorum => {
                        ReadWait::Grace(tokio::time::Instant::now() + self.read_grace())
                    }
                    ReadScope::EveryNode => ReadWait::ForAll,
                };
            }
        }
        self.metrics
            .undecodable_entries
            .inc_by(u64::try_from(undecodable).unwrap_or(u64::MAX));
        self.adapt_read_window(max_entries, successful, timed_out, pending.elapsed());
        if !self.quorum.reached(successful) {
            return Err(AdapterError::NoQuorum {
                operation: "reconcile_read",
                acked: successful,
                needed: self.quorum.size(),
            });
        }
        if let (Some(lowest), Some(local)) = (backlog.votes.keys().next(), next_height.previous()) {
            let headroom = lowest.get().saturating_sub(local.get());
            self.metrics
                .stream_trim_headroom
                .set(i64::try_from(headroom).unwrap_or(i64::MAX));
        }
        Ok(backlog)
    }

    /// How long a full read waits for the other nodes once a quorum answered.
    fn read_grace(&self) -> Duration {
        self.node_timeout / READ_GRACE_DIVISOR
    }

    /// Halves the read window when timeouts cost the quorum of a read, doubles it (up to
    /// `stream_max_len`) after a read that reached its quorum in under a quarter of the node
    /// timeout. `window` is the one the read used, so concurrent reads cannot compound.
    fn adapt_read_window(
        &self,
        window: u64,
        successful: usize,
        timed_out: usize,
        elapsed: Duration,
    ) {
        let next = if !self.quorum.reached(successful) && timed_out > 0 {
            (window / 2).max(1)
        } else if self.quorum.reached(successful) && elapsed < self.node_timeout / 4 {
            window.saturating_mul(2).min(self.stream_max_len.max(1))
        } else {
            window
        };
        if next != window
            && self
                .read_window
                .compare_exchange(window, next, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            if next < window {
                tracing::warn!(
                    window = next,
                    timed_out,
                    "reconcile reads timed out: fewer entries per read"
                );
            } else {
                tracing::debug!(
                    window = next,
                    "reconcile reads are fast: more entries per read"
                );
            }
        }
    }

    /// Votes every entry of one node's read; returns how many entries were undecodable.
    fn record_read(&self, backlog: &mut Backlog, node: NodeIndex, read: StreamRead) -> usize {
        let mut undecodable = read.malformed;
        for entry in read.entries {
            match SealedBlock::decode(&entry.data) {
                Ok(block) if block.id() == entry.id && block.height() == entry.height => {
                    self.vote(backlog, node, entry.epoch, block, entry.data);
                }
                Ok(_) | Err(_) => {
                    tracing::warn!(
                        node = self.nodes.get(node).map(|n| n.name()),
                        height = %entry.height,
                        "skipping a stream entry that does not decode to its block id"
                    );
                    undecodable = undecodable.saturating_add(1);
                }
            }
        }
        undecodable
    }

    fn vote(
        &self,
        backlog: &mut Backlog,
        node: NodeIndex,
        epoch: poa_ports::Epoch,
        block: SealedBlock,
        bytes: Bytes,
    ) {
        let id = block.id();
        backlog
            .votes
            .entry(block.height())
            .or_default()
            .add(node, id, epoch);
        backlog.blocks.entry(id).or_insert((block, bytes));
    }

    /// Brings the winner at `height` to a quorum. `Ok(false)` when it cannot; an error when a
    /// node fenced the repair (the lease was lost).
    async fn repair(
        &self,
        height: BlockHeight,
        votes: &HeightVotes,
        winner: &quorum::Candidate,
        bytes: Bytes,
    ) -> Result<bool, AdapterError> {
        let Some(plan) = quorum::plan_repair(self.quorum, votes, winner) else {
            self.metrics.repair_failure.inc();
            tracing::warn!(height = %height, "not enough nodes left to repair the block");
            return Ok(false);
        };
        let Some(epoch) = self.state.epoch() else {
            return Err(AdapterError::NoEpoch);
        };
        tracing::info!(
            height = %height,
            acked = plan.pre_existing,
            quorum = self.quorum.size(),
            "repairing a block below quorum"
        );
        let write = Arc::new(BlockWrite::new(epoch, height, winner.id, bytes));
        let targets = plan.targets.iter().filter_map(|node| self.nodes.get(*node));
        let result = write_until_decided(
            &self.tracker,
            &self.metrics,
            targets,
            write,
            WriteTally::repair(self.quorum, plan.pre_existing, plan.targets.len()),
            "repair",
        )
        .await;
        match result.decision {
            WriteDecision::Stored => {
                self.metrics.repair_success.inc();
                tracing::info!(height = %height, acked = result.counts.stored, "block repaired to a quorum");
                Ok(true)
            }
            WriteDecision::Fenced => Err(AdapterError::Fenced {
                reason: format!(
                    "lost the lease during repair: {}",
                    result.fenced_reason.unwrap_or_default()
                ),
            }),
            WriteDecision::Impossible | WriteDecision::Undecided => {
                self.metrics.repair_failure.inc();
                tracing::warn!(
                    height = %height,
                    acked = result.counts.stored,
                    quorum = self.quorum.size(),
                    "repair did not reach a quorum"
                );
                Ok(false)
            }
        }
    }
}
