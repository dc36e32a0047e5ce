//! The fenced quorum publish and the quorum write it shares with
//! repair: encode once, one counted task per node, return as soon as a quorum stored the block
//! or a quorum became impossible; slower nodes' tasks keep going in the background, bounded by
//! the node timeouts, so every reachable node gets a real write attempt.
//!
//! Decisions come from [`WriteTally`]; this module gathers outcomes. It never commits anything
//! locally and never assumes a timed-out write did not land.

use std::sync::Arc;
use std::time::Instant;

use fred::bytes::Bytes;
use poa_ports::{BlockCodec, BlockHeight, SealedBlockView};
use tokio_util::task::TaskTracker;

use crate::error::AdapterError;
use crate::fanout::FanOut;
use crate::lease::LeaseState;
use crate::metrics::Metrics;
use crate::node::{BlockWrite, NodeHandle};
use poa_quorum::{NodeIndex, Quorum, WriteCounts, WriteDecision, WriteTally};

use crate::scripts::WriteOutcome;

/// How a quorum write ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WriteResult {
    pub(crate) decision: WriteDecision,
    pub(crate) counts: WriteCounts,
    /// What the first fencing node reported, if any.
    pub(crate) fenced_reason: Option<String>,
}

/// What every fenced quorum write needs (a publish, a repair): the nodes, the quorum, the
/// lease's state (the epoch to write with), the tracker that owns the per-node tasks, and the
/// metrics.
#[derive(Debug, Clone)]
pub(crate) struct QuorumWriter {
    pub(crate) nodes: Arc<[NodeHandle]>,
    pub(crate) quorum: Quorum,
    pub(crate) state: Arc<LeaseState>,
    pub(crate) tracker: TaskTracker,
    pub(crate) metrics: Arc<Metrics>,
}

impl QuorumWriter {
    pub(crate) fn new(
        nodes: Arc<[NodeHandle]>,
        quorum: Quorum,
        state: Arc<LeaseState>,
        tracker: TaskTracker,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            nodes,
            quorum,
            state,
            tracker,
            metrics,
        }
    }

    /// Writes `block` to the nodes `targets` until `tally` decides; stragglers finish in the
    /// background.
    pub(crate) async fn write_until_decided(
        &self,
        targets: impl IntoIterator<Item = NodeIndex>,
        block: Arc<BlockWrite>,
        mut tally: WriteTally,
        operation: &'static str,
    ) -> WriteResult {
        let targets = targets
            .into_iter()
            .filter_map(|index| self.nodes.get(index));
        let mut replies = FanOut::spawn(
            &self.tracker,
            targets,
            Some(&self.metrics.outstanding_publish_tasks),
            |node| {
                let block = Arc::clone(&block);
                let state = Arc::clone(&self.state);
                async move {
                    let outcome = node.write_block(&block).await;
                    if matches!(outcome, WriteOutcome::Fenced { .. }) {
                        // This node no longer holds this process's key (or holds a higher
                        // epoch): the next leader cycle renews, whatever its validity, and takes
                        // it back. A straggler's reply counts too, after the tally decided.
                        state.renewal_needed();
                    }
                    outcome
                }
            },
        );
        let mut fenced_reason = None;
        let mut decision = tally.decision();
        while decision == WriteDecision::Undecided {
            let Some((_, outcome)) = replies.next().await else {
                break;
            };
            if let WriteOutcome::Fenced { reason } = &outcome {
                fenced_reason.get_or_insert_with(|| reason.clone());
            }
            tally.record(outcome.reply());
            decision = tally.decision();
        }
        if decision == WriteDecision::Stored {
            self.metrics
                .observe_quorum_latency(operation, replies.elapsed());
        }
        WriteResult {
            decision,
            counts: tally.counts(),
            fenced_reason,
        }
    }
}

/// Publishes produced blocks to a quorum.
#[derive(Debug)]
pub(crate) struct Publisher {
    writer: QuorumWriter,
    /// The largest encoded block the log carries ([`crate::RedisConfig::max_entry_bytes`]).
    max_entry_bytes: u64,
}

impl Publisher {
    pub(crate) fn new(writer: QuorumWriter, max_entry_bytes: u64) -> Self {
        Self {
            writer,
            max_entry_bytes,
        }
    }

    /// Returns once `block` is stored on a quorum, or with the reason it cannot be.
    pub(crate) async fn publish<C: BlockCodec>(
        &self,
        block: &C::SealedBlock,
    ) -> Result<(), AdapterError> {
        let writer = &self.writer;
        if writer.state.epoch().is_none() && block.height() == BlockHeight::GENESIS {
            tracing::debug!("genesis block is not published: no epoch is held");
            return Ok(());
        }
        let height = block.height();
        let encoded = C::encode_block(block);
        let max = self.max_entry_bytes;
        let bytes = u64::try_from(encoded.len()).unwrap_or(u64::MAX);
        if bytes > max {
            return Err(AdapterError::BlockTooLarge { height, bytes, max });
        }
        let epoch = writer.state.epoch_for_write().await?;
        let started = Instant::now();
        let write = Arc::new(BlockWrite::new(
            epoch,
            height,
            block.id(),
            Bytes::from(encoded),
        ));
        let result = writer
            .write_until_decided(
                writer.nodes.iter().map(|node| node.index()),
                write,
                WriteTally::publish(writer.quorum),
                "publish",
            )
            .await;
        let counts = result.counts;
        match result.decision {
            WriteDecision::Stored => {
                // Every reply the quorum counted re-armed the lease key's TTL on its node after
                // `started`: the same proof a renewal gives, so the local validity runs again
                // from there.
                writer.state.renewed(started);
                tracing::debug!(
                    height = %height,
                    epoch = %epoch,
                    acked = counts.stored,
                    elapsed_ms = started.elapsed().as_millis(),
                    "block published to a quorum"
                );
                Ok(())
            }
            WriteDecision::Fenced => {
                let reason = result.fenced_reason.unwrap_or_default();
                tracing::warn!(height = %height, epoch = %epoch, reason = %reason, "publish fenced");
                Err(AdapterError::Fenced { reason })
            }
            WriteDecision::Impossible | WriteDecision::Undecided => {
                tracing::warn!(
                    height = %height,
                    epoch = %epoch,
                    acked = counts.stored,
                    quorum = writer.quorum.size(),
                    height_refused = counts.height_refused,
                    failed = counts.failed,
                    "publish did not reach a quorum"
                );
                // Refusals that alone keep the height below a quorum are what every process
                // would meet there (the nodes hold another block, or garbage, at it): the
                // height is taken, not a quorum missed on the way.
                if writer.quorum.impossible(counts.height_refused) {
                    Err(AdapterError::HeightTaken { height })
                } else if writer.quorum.reached(counts.denied) {
                    Err(AdapterError::Denied {
                        operation: "publish",
                    })
                } else {
                    Err(AdapterError::NoQuorum {
                        operation: "publish",
                        acked: counts.stored,
                        needed: writer.quorum.size(),
                    })
                }
            }
        }
    }
}
