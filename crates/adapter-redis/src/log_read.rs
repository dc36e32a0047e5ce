//! The full read of the shared log behind a reconciliation: `read_from` on every node (each
//! bounded), a quorum of successful reads or an error, then a grace for the others or a wait
//! for every node; each entry decoded and verified before it counts.
//!
//! What comes out is a [`LogView`] of verified blocks (the walk in `poa_quorum::walk` decides
//! from it) and one decoded copy of each block. An entry that does not decode to the id and
//! height it is stored under is counted as undecodable; one that decodes but fails the chain's
//! [`SealVerifier`] is counted as refused. Neither is ever a vote or evidence of history: both
//! only mark their node as holding something at that height. The first time a refused entry is
//! seen it is logged; a bounded memory of what was already reported keeps a lasting condition
//! from flooding the log.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use fred::bytes::Bytes;
use poa_ports::{BlockCodec, BlockHeight, BlockId, Epoch, SealVerifier, SealedBlockView};
use poa_quorum::{Coverage, LogView, NodeIndex, Quorum, ReadTiming, next_read_window};
use tokio_util::task::TaskTracker;

use crate::config::ValidatedConfig;
use crate::error::AdapterError;
use crate::fanout::FanOut;
use crate::metrics::Metrics;
use crate::node::NodeHandle;
use crate::scripts::{StreamEntry, StreamRead};

/// How long a full read waits for the other nodes once a quorum answered, as a fraction of the
/// node timeout.
const READ_GRACE_DIVISOR: u32 = 4;

/// How many refused entries the log remembers having reported.
const REPORTED_REFUSALS: usize = 4096;

/// The highest epoch the scripts compare exactly (Lua numbers are doubles: 2^53 - 1).
const MAX_EXACT_EPOCH: u64 = (1 << 53) - 1;

/// Which nodes a full read waits for once a quorum answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadScope {
    /// The others get a short grace while the answers decide every height.
    GraceAfterQuorum,
    /// Every node, each bounded by its timeout: the first scan of a leadership, and the first
    /// after a failed publish of this process.
    EveryNode,
}

/// What the read is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadWait {
    /// Fewer than a quorum of successful reads so far.
    ForQuorum,
    /// A quorum answered; other nodes are waited for until this instant.
    Grace(tokio::time::Instant),
    /// Every node is waited for (each bounded).
    ForAll,
}

/// The verified blocks a read returned.
#[derive(Debug)]
pub(crate) struct Backlog<C: BlockCodec> {
    /// Votes and evidence, for the walk.
    pub(crate) view: LogView,
    /// One decoded copy of every verified block, with its encoding for repairs.
    pub(crate) blocks: HashMap<BlockId, (C::SealedBlock, Bytes)>,
    /// Every entry that did not decode or failed verification, for errors that name them.
    pub(crate) invalid: Vec<InvalidEntry>,
    /// The highest writer epoch of a verified entry: the epoch floor a process must stay
    /// above. Epochs beyond what the scripts compare exactly are not taken (an entry's epoch
    /// field is not covered by the seal).
    pub(crate) highest_epoch: Option<Epoch>,
}

/// A stream entry that does not count: it does not decode to its block, or fails the chain's
/// verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InvalidEntry {
    pub(crate) node: NodeIndex,
    pub(crate) height: BlockHeight,
    pub(crate) entry_id: String,
    pub(crate) reason: String,
}

/// Reads the log from every node and turns the answers into a [`Backlog`].
pub(crate) struct LogReader<C: BlockCodec> {
    nodes: Arc<[NodeHandle]>,
    quorum: Quorum,
    stream_max_len: u64,
    node_timeout: Duration,
    tracker: TaskTracker,
    metrics: Arc<Metrics>,
    verifier: Arc<dyn SealVerifier<C>>,
    /// Entries asked of each node per read: `stream_max_len`, halved while timeouts cost a read
    /// its quorum (a reply of many large blocks can outlast the node timeout on every node) and
    /// doubled again after reads that reached their quorum fast. Any window is safe: the walk
    /// decides only heights a quorum of the reads covers.
    window: AtomicU64,
    reported_refusals: Mutex<HashSet<(NodeIndex, BlockHeight, BlockId)>>,
}

impl<C: BlockCodec> std::fmt::Debug for LogReader<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogReader")
            .field("quorum", &self.quorum)
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

/// What checking one entry found.
pub(crate) enum Checked<B> {
    Verified(B),
    Undecodable,
    /// Longer than the largest block the log carries: the read left its data out.
    Oversized(u64),
    Refused(String),
}

/// Decodes and verifies one entry. A block already verified from identical bytes (the same
/// block on another node, in `verified`) is not verified again.
pub(crate) fn check_entry<C: BlockCodec>(
    verifier: &dyn SealVerifier<C>,
    verified: &HashMap<BlockId, (C::SealedBlock, Bytes)>,
    entry: &StreamEntry,
) -> Checked<C::SealedBlock> {
    if let Some(length) = entry.oversized {
        return Checked::Oversized(length);
    }
    if let Some((block, bytes)) = verified.get(&entry.id)
        && *bytes == entry.data
        && block.height() == entry.height
    {
        return Checked::Verified(block.clone());
    }
    let block = match C::decode_block(&entry.data) {
        Ok(block) if block.id() == entry.id && block.height() == entry.height => block,
        Ok(_) | Err(_) => return Checked::Undecodable,
    };
    match verifier.verify_seal(&block) {
        Ok(()) => Checked::Verified(block),
        Err(error) => Checked::Refused(error.to_string()),
    }
}

impl<C: BlockCodec> LogReader<C> {
    pub(crate) fn new(
        config: &ValidatedConfig,
        nodes: Arc<[NodeHandle]>,
        tracker: TaskTracker,
        metrics: Arc<Metrics>,
        verifier: Arc<dyn SealVerifier<C>>,
    ) -> Self {
        Self {
            nodes,
            quorum: config.quorum,
            stream_max_len: config.stream_max_len,
            node_timeout: config.node_timeout,
            tracker,
            metrics,
            verifier,
            window: AtomicU64::new(config.stream_max_len.max(1)),
            reported_refusals: Mutex::new(HashSet::new()),
        }
    }

    /// Reads entries at or above `next_height` from every node (each bounded), decodes and
    /// verifies them; fewer than a quorum of successful reads is an error, never an empty
    /// backlog.
    ///
    /// Once a quorum answered, [`ReadScope::GraceAfterQuorum`] gives the other nodes a short
    /// grace instead of their full timeout, but only while every height read holds a block on
    /// a quorum of the answers: any block committed by a publish is on a quorum, so it is among
    /// the answers, and a block below quorum on a slow node was never committed. When a height
    /// has no block on a quorum of the answers, what the walk decides there depends on the
    /// nodes not heard yet (a committed block may look short among the first answers), so every
    /// node is waited for, each bounded.
    pub(crate) async fn read(
        &self,
        next_height: BlockHeight,
        scope: ReadScope,
    ) -> Result<Backlog<C>, AdapterError> {
        let window = self.window.load(Ordering::Acquire);
        let (backlog, timing) = self.read_entries(next_height, window, scope).await;
        self.adapt_window(window, timing);
        let backlog = backlog?;
        if let (Some(lowest), Some(local)) = (backlog.view.lowest_height(), next_height.previous())
        {
            let headroom = lowest.get().saturating_sub(local.get());
            self.metrics
                .stream_trim_headroom
                .set(i64::try_from(headroom).unwrap_or(i64::MAX));
        }
        Ok(backlog)
    }

    /// Reads at most `count` entries from `lowest` up on every node, each node bounded by its
    /// timeout, decoded and verified like [`Self::read`]'s: the heights below the head that the
    /// anti-entropy sweep examines. Leaves the reconciliation window and its metrics alone.
    pub(crate) async fn read_range(
        &self,
        lowest: BlockHeight,
        count: u64,
    ) -> Result<Backlog<C>, AdapterError> {
        self.read_entries(lowest, count.max(1), ReadScope::EveryNode)
            .await
            .0
    }

    /// The fan-out behind both reads: `window` entries from `next_height` up on every node,
    /// until the scope is satisfied; also how the read went, for the window.
    async fn read_entries(
        &self,
        next_height: BlockHeight,
        window: u64,
        scope: ReadScope,
    ) -> (Result<Backlog<C>, AdapterError>, ReadTiming) {
        let mut pending =
            FanOut::spawn(&self.tracker, self.nodes.iter(), None, |node| async move {
                node.read_from(next_height, window).await
            });
        let mut backlog = Backlog {
            view: LogView::new(self.quorum),
            blocks: HashMap::new(),
            invalid: Vec::new(),
            highest_epoch: None,
        };
        let mut successful = 0usize;
        let mut timed_out = 0usize;
        let mut quorum_after = None;
        let mut wait = ReadWait::ForQuorum;
        loop {
            let next = match wait {
                ReadWait::Grace(deadline) => {
                    match tokio::time::timeout_at(deadline, pending.next()).await {
                        Ok(next) => next,
                        Err(_) if backlog.view.every_height_committed() => break,
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
            self.record(&mut backlog, node, read, next_height);
            if wait == ReadWait::ForQuorum && self.quorum.reached(successful) {
                quorum_after = Some(pending.elapsed());
                wait = match scope {
                    ReadScope::GraceAfterQuorum => {
                        ReadWait::Grace(tokio::time::Instant::now() + self.grace())
                    }
                    ReadScope::EveryNode => ReadWait::ForAll,
                };
            }
        }
        let timing = ReadTiming {
            quorum_after,
            timed_out,
        };
        if !self.quorum.reached(successful) {
            let error = AdapterError::NoQuorum {
                operation: "reconcile_read",
                acked: successful,
                needed: self.quorum.size(),
            };
            return (Err(error), timing);
        }
        (Ok(backlog), timing)
    }

    /// How long a full read waits for the other nodes once a quorum answered.
    fn grace(&self) -> Duration {
        self.node_timeout / READ_GRACE_DIVISOR
    }

    /// Moves the window by `poa_quorum::next_read_window`. `window` is the one the read used,
    /// so concurrent reads cannot compound.
    fn adapt_window(&self, window: u64, timing: ReadTiming) {
        let next = next_read_window(window, self.stream_max_len, timing, self.node_timeout);
        if next != window
            && self
                .window
                .compare_exchange(window, next, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            if next < window {
                tracing::warn!(
                    window = next,
                    timed_out = timing.timed_out,
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

    /// Adds one node's answer to the backlog: its coverage, and every entry as a vote or as a
    /// refusal.
    fn record(
        &self,
        backlog: &mut Backlog<C>,
        node: NodeIndex,
        read: StreamRead,
        next_height: BlockHeight,
    ) {
        let coverage = match read.covered_to {
            None => Coverage::Complete,
            Some(height) => Coverage::UpTo(height.max(next_height)),
        };
        backlog.view.answered(node, coverage);
        let mut undecodable = read.malformed;
        let mut refused = 0usize;
        for entry in read.entries.into_iter().chain(read.top) {
            let height = entry.height;
            match check_entry(self.verifier.as_ref(), &backlog.blocks, &entry) {
                Checked::Verified(block) => {
                    if entry.epoch.get() <= MAX_EXACT_EPOCH {
                        backlog.highest_epoch = backlog.highest_epoch.max(Some(entry.epoch));
                    }
                    backlog
                        .view
                        .add(node, height, entry.id, block.parent_id(), entry.epoch);
                    backlog
                        .blocks
                        .entry(entry.id)
                        .or_insert((block, entry.data));
                }
                checked @ (Checked::Undecodable | Checked::Oversized(_)) => {
                    undecodable = undecodable.saturating_add(1);
                    backlog.view.refuse(node, height);
                    let reason = match checked {
                        Checked::Oversized(length) => format!(
                            "holds {length} bytes, more than the largest block the log carries"
                        ),
                        _ => "does not decode to the block it is stored as".to_owned(),
                    };
                    backlog.invalid.push(InvalidEntry {
                        node,
                        height,
                        entry_id: entry.entry_id,
                        reason,
                    });
                }
                Checked::Refused(reason) => {
                    refused = refused.saturating_add(1);
                    backlog.view.refuse(node, height);
                    self.report_refusal(node, &entry, &reason);
                    backlog.invalid.push(InvalidEntry {
                        node,
                        height,
                        entry_id: entry.entry_id,
                        reason,
                    });
                }
            }
        }
        self.metrics
            .undecodable_entries
            .inc_by(u64::try_from(undecodable).unwrap_or(u64::MAX));
        self.metrics
            .refused_entries
            .inc_by(u64::try_from(refused).unwrap_or(u64::MAX));
    }

    /// Logs a refused entry the first time it is seen (bounded memory), so a lasting condition
    /// logs once and the metric carries the rest.
    fn report_refusal(&self, node: NodeIndex, entry: &StreamEntry, reason: &str) {
        let mut reported = self
            .reported_refusals
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if reported.len() >= REPORTED_REFUSALS {
            reported.clear();
        }
        if reported.insert((node, entry.height, entry.id)) {
            tracing::warn!(
                node = self.nodes.get(node).map(|n| n.name()),
                height = %entry.height,
                id = %entry.id,
                error = %reason,
                "skipping a stream entry that fails verification"
            );
        }
    }
}
