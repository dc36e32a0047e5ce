//! What the publish-path measurements (`publish`, `degraded`, `scale`'s `stragglers`) share:
//! a leading adapter that publishes blocks
//! of one size at increasing heights and times each call (or each leader cycle: leader state
//! then publish), the raw write script on one node as the baseline and on several at once until a
//! quorum as the floor (both over `crate::floor`: the adapter's client and script, fred called
//! directly), and the outstanding publish tasks gauge read from the adapter's registry.
//!
//! Owns no report: it measures and returns samples. Every wait is bounded, so a hung server
//! or adapter is an error that says what hung, never a hang of the run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use adapter_chain::{ReferenceChain, SealedBlock};
use adapter_redis::{RedisConfig, RedisReconciliation};
use anyhow::{Context, Result, anyhow, bail};
use poa_ports::{BlockReconciliationPort, ChainHead, Epoch, LeaderState, NodeOutcome};
use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;
use tokio::sync::oneshot;

use crate::blocks::{block_of, head_below, redis_config, verifier};
use crate::fixtures::bounded;
use crate::floor::FloorNodes;
use crate::stats::Latencies;

/// The gauge of per-node write tasks still in flight.
pub(crate) const OUTSTANDING_TASKS: &str = "poa_outstanding_publish_tasks";

/// Bound on one publish or one raw write: far above any healthy latency, and above the node
/// timeout a straggler may cost, so only a hang trips it.
const CALL_BOUND: Duration = Duration::from_secs(5);
/// Bound on connecting an adapter or the floor's nodes and acquiring the lease.
const SETUP_BOUND: Duration = Duration::from_secs(15);
/// Bound on stopping an adapter (lease release, background tasks).
const SHUTDOWN_BOUND: Duration = Duration::from_secs(2);

/// The value of the unlabelled sample `name` in Prometheus text exposition.
pub(crate) fn gauge_value(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            line.strip_prefix(name)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
}

/// A series' writer: one block at a time, at increasing heights.
pub(crate) trait BlockWriter {
    /// Keeps (or takes again) the lease the writes are fenced by, as a producer does between
    /// blocks: a series that waited while others ran must not find it expired. Untimed.
    async fn keep_lease(&mut self) -> Result<()>;

    /// Writes the next block of `payload_bytes` and returns how long that took.
    async fn write_next(&mut self, payload_bytes: usize) -> Result<Duration>;
}

/// Keeps the writer's lease, then writes `count` blocks one after another, recording each
/// latency.
///
/// # Errors
/// Fails when the lease is lost, or at the first write that fails.
pub(crate) async fn write_blocks(
    writer: &mut impl BlockWriter,
    count: u64,
    payload_bytes: usize,
    latencies: &mut Latencies,
) -> Result<()> {
    writer.keep_lease().await?;
    for _ in 0..count {
        latencies.record(writer.write_next(payload_bytes).await?);
    }
    Ok(())
}

/// A leading adapter over some nodes: publishes blocks of one size at increasing heights and
/// times each `publish_produced_block`.
#[derive(Debug)]
pub(crate) struct QuorumLeader {
    adapter: RedisReconciliation<ReferenceChain>,
    registry: Arc<Registry>,
    /// The head a producer would report: the last block published (height and id), the
    /// empty chain before the first. A reconciled leader's cheap check compares both.
    head: ChainHead,
    next_height: u64,
}

impl QuorumLeader {
    /// Connects an adapter to `urls` under a fresh key prefix and takes the lease.
    ///
    /// # Errors
    /// Fails when the adapter cannot connect, or does not become the reconciled leader.
    pub(crate) async fn lead(urls: Vec<String>, lease_key: String) -> Result<Self> {
        Self::lead_with(redis_config(urls, lease_key)).await
    }

    /// Connects an adapter with `config` (fresh keys) and takes the lease.
    ///
    /// # Errors
    /// As [`Self::lead`].
    pub(crate) async fn lead_with(config: RedisConfig) -> Result<Self> {
        let mut registry = Registry::default();
        let adapter = bounded(
            "connecting the adapter",
            SETUP_BOUND,
            RedisReconciliation::connect(config, verifier(), Some(&mut registry)),
        )
        .await?
        .context("the adapter cannot connect")?;
        let state = bounded(
            "acquiring the lease",
            SETUP_BOUND,
            adapter.leader_state(head_below(1)),
        )
        .await?
        .context("leader_state failed")?;
        if state != LeaderState::ReconciledLeader {
            bail!("the adapter did not become the reconciled leader on fresh keys: {state:?}");
        }
        Ok(Self {
            adapter,
            registry: Arc::new(registry),
            head: head_below(1),
            next_height: 1,
        })
    }

    /// The adapter's registry, for a [`GaugeSampler`].
    pub(crate) fn registry(&self) -> Arc<Registry> {
        Arc::clone(&self.registry)
    }

    /// Publishes the next block of `payload_bytes` and returns how long the publish took. The
    /// block is built before the clock starts; encoding it is part of the publish.
    ///
    /// # Errors
    /// Fails when the publish is refused or does not reach a quorum.
    pub(crate) async fn publish_next(&mut self, payload_bytes: usize) -> Result<Duration> {
        let block = block_of(self.next_height, payload_bytes);
        let started = Instant::now();
        self.publish(&block).await?;
        Ok(started.elapsed())
    }

    /// `leader_state` at the head, as a producer asks before each block, within `bound`.
    ///
    /// # Errors
    /// Fails when the adapter is not the reconciled leader.
    async fn confirm_leading(&self, bound: Duration) -> Result<()> {
        let state = bounded("leader_state", bound, self.adapter.leader_state(self.head))
            .await?
            .context("leader_state failed")?;
        if state != LeaderState::ReconciledLeader {
            bail!(
                "the adapter stopped leading at height {}: {state:?}",
                self.next_height
            );
        }
        Ok(())
    }

    /// Publishes `block`, the next height, and moves on to the one after it.
    async fn publish(&mut self, block: &SealedBlock) -> Result<()> {
        bounded(
            "a quorum publish",
            CALL_BOUND,
            self.adapter.publish_produced_block(block),
        )
        .await?
        .with_context(|| format!("publish of height {} failed", self.next_height))?;
        self.head = ChainHead {
            height: block.height(),
            id: block.id(),
        };
        self.next_height += 1;
        Ok(())
    }

    /// What a leader's production cycle asks of the adapter for the next block of
    /// `payload_bytes`, timed as one: `leader_state` at the head below it, then the publish.
    /// The block is built before the clock starts.
    ///
    /// # Errors
    /// Fails when the adapter stops leading, or the publish is refused or does not reach a
    /// quorum.
    pub(crate) async fn cycle_next(&mut self, payload_bytes: usize) -> Result<Duration> {
        let block = block_of(self.next_height, payload_bytes);
        let started = Instant::now();
        self.confirm_leading(CALL_BOUND).await?;
        self.publish(&block).await?;
        Ok(started.elapsed())
    }

    /// Publishes unrecorded blocks until every node answered its last call (a node that was
    /// frozen or held has reconnected and voted again), then `extra` more.
    ///
    /// # Errors
    /// Fails when a node still does not answer after `bound`.
    pub(crate) async fn warm_up(
        &mut self,
        payload_bytes: usize,
        extra: u64,
        bound: Duration,
    ) -> Result<()> {
        let started = Instant::now();
        loop {
            // Also expands the lease to nodes that lost it while they did not answer (an
            // expired key on a thawed node).
            self.keep_lease().await?;
            self.publish_next(payload_bytes).await?;
            // The last outcome of the slowest node lands after the publish returned.
            tokio::time::sleep(Duration::from_millis(2)).await;
            let status = self.adapter.lease_status();
            if status
                .nodes
                .iter()
                .all(|node| node.last_outcome == NodeOutcome::Ok)
            {
                break;
            }
            if started.elapsed() > bound {
                bail!(
                    "a node did not answer again within {} ms: {:?}",
                    bound.as_millis(),
                    status.nodes
                );
            }
        }
        for _ in 0..extra {
            self.publish_next(payload_bytes).await?;
        }
        Ok(())
    }

    /// The current value of the outstanding publish tasks gauge.
    ///
    /// # Errors
    /// Fails when the registry cannot be encoded or lacks the gauge.
    pub(crate) fn outstanding_tasks(&self) -> Result<f64> {
        read_gauge(&self.registry)
    }

    /// Waits until no publish task is outstanding and returns how long that took.
    ///
    /// # Errors
    /// Fails when tasks are still outstanding after `bound`.
    pub(crate) async fn drained(&self, bound: Duration) -> Result<Duration> {
        let started = Instant::now();
        loop {
            let outstanding = self.outstanding_tasks()?;
            if outstanding == 0.0 {
                return Ok(started.elapsed());
            }
            if started.elapsed() > bound {
                bail!(
                    "{outstanding} publish tasks still outstanding after {} ms",
                    bound.as_millis()
                );
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Releases the lease and waits (bounded) for the background tasks.
    pub(crate) async fn stop(self) {
        self.adapter.shutdown(SHUTDOWN_BOUND).await;
    }
}

impl BlockWriter for QuorumLeader {
    /// As the producer does before every block: `leader_state` confirms the lease on a
    /// quorum (and takes it again if it lapsed).
    async fn keep_lease(&mut self) -> Result<()> {
        self.confirm_leading(SETUP_BOUND).await
    }

    async fn write_next(&mut self, payload_bytes: usize) -> Result<Duration> {
        self.publish_next(payload_bytes).await
    }
}

/// A leading adapter driven as a producer drives it: each sample is a whole cycle
/// ([`QuorumLeader::cycle_next`]), the leader state of the block and its publish.
#[derive(Debug)]
pub(crate) struct CycleLeader(pub(crate) QuorumLeader);

impl BlockWriter for CycleLeader {
    async fn keep_lease(&mut self) -> Result<()> {
        self.0.keep_lease().await
    }

    async fn write_next(&mut self, payload_bytes: usize) -> Result<Duration> {
        self.0.cycle_next(payload_bytes).await
    }
}

/// Reads the outstanding publish tasks gauge from `registry`.
fn read_gauge(registry: &Registry) -> Result<f64> {
    let mut text = String::new();
    encode(&mut text, registry).context("cannot encode the adapter's metrics")?;
    gauge_value(&text, OUTSTANDING_TASKS)
        .ok_or_else(|| anyhow!("the adapter's registry has no {OUTSTANDING_TASKS}"))
}

/// The floor's nodes under a fresh key prefix, with the lease taken on each node alone (each
/// node has its own epoch): what the raw writes are fenced by.
#[derive(Debug)]
struct LeasedFloor {
    floor: FloorNodes,
    epochs: Vec<Epoch>,
}

impl LeasedFloor {
    async fn connect(urls: Vec<String>, lease_key: String) -> Result<Self> {
        let floor = bounded(
            "connecting the floor's nodes",
            SETUP_BOUND,
            FloorNodes::connect(urls, lease_key),
        )
        .await?
        .context("the floor's nodes cannot connect")?;
        let mut leased = Self {
            floor,
            epochs: Vec::new(),
        };
        leased.keep_lease().await?;
        Ok(leased)
    }

    /// Takes the lease on every node again: re-arms it where this series holds it, takes it
    /// with a new epoch where it lapsed.
    async fn keep_lease(&mut self) -> Result<()> {
        let mut epochs = Vec::new();
        for (index, node) in self.floor.nodes().iter().enumerate() {
            let epoch = bounded("taking the floor's lease", SETUP_BOUND, node.take_lease())
                .await?
                .with_context(|| format!("the floor cannot take the lease on node {index}"))?;
            epochs.push(epoch);
        }
        self.epochs = epochs;
        Ok(())
    }
}

/// The raw `write_block` script on one node over the adapter's own client, fenced by a lease
/// taken on that node alone: the floor of every publish.
#[derive(Debug)]
pub(crate) struct RawWriter {
    leased: LeasedFloor,
    next_height: u64,
}

impl RawWriter {
    /// Connects to `url` under a fresh key prefix and takes the lease there.
    ///
    /// # Errors
    /// Fails when the node cannot be reached or refuses the lease.
    pub(crate) async fn connect(url: String, lease_key: String) -> Result<Self> {
        Ok(Self {
            leased: LeasedFloor::connect(vec![url], lease_key).await?,
            next_height: 1,
        })
    }
}

impl BlockWriter for RawWriter {
    async fn keep_lease(&mut self) -> Result<()> {
        self.leased.keep_lease().await
    }

    async fn write_next(&mut self, payload_bytes: usize) -> Result<Duration> {
        let Some(&epoch) = self.leased.epochs.first() else {
            bail!("the floor has no node");
        };
        let node = self.leased.floor.node(0)?;
        let block = block_of(self.next_height, payload_bytes);
        let started = Instant::now();
        bounded("a raw write", CALL_BOUND, node.write_block(epoch, &block))
            .await?
            .with_context(|| format!("raw write of height {} failed", self.next_height))?;
        let elapsed = started.elapsed();
        self.next_height += 1;
        Ok(elapsed)
    }
}

/// The raw `write_block` script sent to several nodes at once, one task per node, returning
/// when `quorum` of them stored the block (the others finish in the background): the quorum
/// publish without the adapter's bookkeeping, i.e. the floor a machine sets for it.
#[derive(Debug)]
pub(crate) struct RawQuorumWriter {
    leased: LeasedFloor,
    quorum: usize,
    next_height: u64,
}

impl RawQuorumWriter {
    /// Connects to `urls` under a fresh key prefix and takes the lease on each node.
    ///
    /// # Errors
    /// Fails when a node cannot be reached or refuses the lease.
    pub(crate) async fn connect(urls: Vec<String>, lease_key: String) -> Result<Self> {
        let quorum = urls.len() / 2 + 1;
        Ok(Self {
            leased: LeasedFloor::connect(urls, lease_key).await?,
            quorum,
            next_height: 1,
        })
    }
}

impl BlockWriter for RawQuorumWriter {
    async fn keep_lease(&mut self) -> Result<()> {
        self.leased.keep_lease().await
    }

    async fn write_next(&mut self, payload_bytes: usize) -> Result<Duration> {
        let block = Arc::new(block_of(self.next_height, payload_bytes));
        let started = Instant::now();
        let mut writes: futures::stream::FuturesUnordered<_> = self
            .leased
            .floor
            .nodes()
            .iter()
            .zip(&self.leased.epochs)
            .map(|(node, &epoch)| {
                let node = Arc::clone(node);
                let block = Arc::clone(&block);
                tokio::spawn(async move { node.write_block(epoch, &block).await })
            })
            .collect();
        let mut stored = 0;
        let waited = bounded("a raw quorum write", CALL_BOUND, async {
            while let Some(outcome) = futures::StreamExt::next(&mut writes).await {
                if matches!(outcome, Ok(Ok(()))) {
                    stored += 1;
                    if stored >= self.quorum {
                        return true;
                    }
                }
            }
            false
        })
        .await?;
        let elapsed = started.elapsed();
        if !waited {
            bail!(
                "raw quorum write of height {} reached {stored} of {} nodes",
                self.next_height,
                self.quorum
            );
        }
        self.next_height += 1;
        Ok(elapsed)
    }
}

/// Samples the outstanding publish tasks gauge on a timer, in a task of its own, so the
/// samples also cover the time between publishes and after the last one.
#[derive(Debug)]
pub(crate) struct GaugeSampler {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<Vec<(Duration, f64)>>>,
}

impl GaugeSampler {
    /// Starts sampling `registry` every `period`; sample times count from now.
    pub(crate) fn start(registry: Arc<Registry>, period: Duration) -> Self {
        let (stop, mut stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let mut samples = Vec::new();
            let mut ticks = tokio::time::interval(period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tokio::select! {
                    biased;
                    _ = &mut stopped => break,
                    _ = ticks.tick() => {
                        samples.push((started.elapsed(), read_gauge(&registry)?));
                    }
                }
            }
            Ok(samples)
        });
        Self { stop, task }
    }

    /// Stops sampling and returns `(time since start, gauge)` samples in time order.
    ///
    /// # Errors
    /// Fails when a sample could not be read or the sampler task failed.
    pub(crate) async fn finish(self) -> Result<Vec<(Duration, f64)>> {
        let _ = self.stop.send(());
        bounded("the gauge sampler", SHUTDOWN_BOUND, self.task)
            .await?
            .context("the gauge sampler task failed")?
    }
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests {
    use super::*;

    #[test]
    fn gauge_value__when_exposition_has_the_gauge__then_reads_its_value() {
        // given
        let text = "# HELP poa_outstanding_publish_tasks Per-node write tasks\n\
                    # TYPE poa_outstanding_publish_tasks gauge\n\
                    poa_outstanding_publish_tasks_other 9\n\
                    poa_outstanding_publish_tasks 17\n\
                    poa_is_leader 1\n";

        // when
        let value = gauge_value(text, OUTSTANDING_TASKS);

        // then
        assert_eq!(value, Some(17.0));
    }

    #[test]
    fn gauge_value__when_gauge_is_missing__then_none() {
        // given
        let text = "# TYPE poa_outstanding_publish_tasks gauge\npoa_is_leader 1\n";

        // when / then
        assert_eq!(gauge_value(text, OUTSTANDING_TASKS), None);
    }
}
