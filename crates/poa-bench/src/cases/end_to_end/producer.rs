//! One producing process built in-process exactly as `poa-node`'s `run.rs` wires it (redb
//! chain store, pool, importer, producer, signer, system clock, the no-op or the Redis
//! reconciliation, `poa-core`'s `ProductionService` with the instant trigger), and measured in
//! rounds: during a round a feeder keeps a backlog of [`BACKLOG_BLOCKS`] blocks' worth of
//! transactions pending, each block capped at the workload's count (the only departure from
//! `poa-node`'s wiring), so every block is full and the next one's transactions are already
//! waiting while a block is committed; between rounds the producer idles (an instant leader
//! without transactions), so several producers can take turns and every comparison sees the
//! same machine noise.
//!
//! Owns the wiring, the feeding and the counting; it never times a step itself (the service
//! does) and never judges a result.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use adapter_chain::ReferenceChain;
use adapter_chain::{
    AuthorityKey, AuthoritySealVerifier, BlockLimits, ChainSpec, ChainStore, CommitDurability,
    Ed25519BlockSigner, MemoryTransactionPool, PoolBlockProducer, PoolLimits, RedbBlockImporter,
    SystemClock,
};
use adapter_noop::NoopReconciliation;
use adapter_redis::{RedisConfig, RedisReconciliation};
use anyhow::{Context, Result, anyhow, bail};
use poa_core::{Ports, ProductionService, ServiceConfig, ServiceHandle, Trigger};
use poa_ports::Transaction;
use poa_ports::{BlockHeight, BlockReconciliationPort};
use prometheus_client::registry::Registry;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::step_metrics::StepTotals;
use crate::stats::Latencies;

/// The Redis adapter over the reference chain's blocks, as `poa-node` runs it.
type RedisLog = RedisReconciliation<ReferenceChain>;

/// How often an idle producer re-checks (poa-node's default for an instant trigger).
const IDLE_POLL: Duration = Duration::from_secs(1);
/// The longest the harness waits for one block before calling the service stuck.
const STALL: Duration = Duration::from_secs(10);
/// How often the feeder looks at the pool when no status change woke it.
const FEEDER_TICK: Duration = Duration::from_millis(2);
/// Blocks' worth of transactions the feeder keeps pending: enough that the pool never runs dry
/// between two of its looks, at a block or more per millisecond.
pub(crate) const BACKLOG_BLOCKS: usize = 4;
/// After the pool drained, how long the status must stay quiet before a round closes (the
/// service records the last block's metrics and status microseconds after its commit).
const SETTLE: Duration = Duration::from_millis(20);

/// Who the producer coordinates with.
#[derive(Debug, Clone)]
pub(crate) enum Coordination {
    /// A single node: `adapter-noop`, always the leader, publish is a no-op.
    Noop,
    /// The Redis reconciliation with this configuration.
    Redis(Box<RedisConfig>),
}

/// What the feeder keeps pending while a round runs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Workload {
    /// Transactions in each block: the producer includes at most this many, and the feeder
    /// tops the pool up to [`BACKLOG_BLOCKS`] times as many.
    pub(crate) transactions_per_block: usize,
    /// Bytes of each transaction.
    pub(crate) transaction_bytes: usize,
}

/// What a producer's rounds measured, accumulated.
#[derive(Debug, Default)]
pub(crate) struct Measurement {
    /// Blocks committed in the rounds.
    pub(crate) blocks: u64,
    /// The rounds' summed length, each from its opening to its last commit.
    pub(crate) elapsed: Duration,
    /// Time per block, from one commit to the next, as the status watch saw them.
    pub(crate) block_times: Latencies,
    /// The service's per-step totals over the rounds.
    pub(crate) steps: StepTotals,
    /// Transactions in the rounds' blocks.
    pub(crate) transactions: u64,
    /// Encoded bytes of the rounds' blocks.
    pub(crate) block_bytes: u64,
    /// The last error of a failed cycle during the rounds, if any.
    pub(crate) failures: Option<String>,
    /// The heights each round committed, first to last.
    heights: Vec<(BlockHeight, BlockHeight)>,
}

impl Measurement {
    /// Blocks per second over the rounds.
    pub(crate) fn blocks_per_second(&self) -> f64 {
        self.blocks as f64 / self.elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
    }
}

/// A running production service, its chain and its pool.
pub(crate) struct Producer {
    workload: Workload,
    store: ChainStore,
    pool: MemoryTransactionPool,
    handle: ServiceHandle,
    registry: Registry,
    redis: Option<Arc<RedisLog>>,
    release_timeout: Duration,
    stop: Option<oneshot::Sender<()>>,
    running: Option<JoinHandle<()>>,
    serial: u64,
    measurement: Measurement,
    _data_dir: tempfile::TempDir,
}

impl Producer {
    /// Builds a producer in a fresh data directory under `data_root` and starts its service.
    ///
    /// # Errors
    /// Fails when the chain or the adapter cannot be built.
    pub(crate) async fn start(
        coordination: Coordination,
        durability: CommitDurability,
        workload: Workload,
        data_root: &Path,
    ) -> Result<Self> {
        let data_dir = tempfile::tempdir_in(data_root).context("cannot create a data directory")?;
        let key = AuthorityKey::generate();
        let spec = ChainSpec::dev(key.public_key());
        let path = data_dir.path().to_path_buf();
        let store = tokio::task::spawn_blocking(move || {
            ChainStore::open_with_durability(spec, &path, durability)
        })
        .await
        .context("the chain store task failed")?
        .context("cannot open the chain store")?;

        // As poa-node's run.rs, from here to `ProductionService::new`; no history source:
        // only a history gap would use it.
        let mut registry = Registry::default();
        let pool = MemoryTransactionPool::new(PoolLimits::standard());
        let importer = RedbBlockImporter::new(store.clone(), pool.clone());
        let limits = BlockLimits {
            max_transactions: workload.transactions_per_block,
            ..BlockLimits::standard()
        };
        let producer = PoolBlockProducer::new(store.clone(), pool.clone(), limits);
        let signer = Ed25519BlockSigner::new(key);
        let (reconciliation, redis, poll_interval, release_timeout): (
            Arc<dyn BlockReconciliationPort<ReferenceChain>>,
            Option<Arc<RedisLog>>,
            Duration,
            Duration,
        ) = match coordination {
            Coordination::Noop => (Arc::new(NoopReconciliation), None, IDLE_POLL, IDLE_POLL),
            Coordination::Redis(config) => {
                // poa-node's defaults for an instant trigger on Redis.
                let poll_interval = IDLE_POLL.min(config.lease_ttl / 4);
                let release_timeout = config.node_timeout.saturating_mul(4).max(IDLE_POLL);
                let adapter = Arc::new(
                    RedisReconciliation::connect(
                        *config,
                        Arc::new(AuthoritySealVerifier::new(spec)),
                        Some(&mut registry),
                    )
                    .await
                    .context("cannot start the Redis reconciliation")?,
                );
                (
                    Arc::clone(&adapter) as Arc<dyn BlockReconciliationPort<ReferenceChain>>,
                    Some(adapter),
                    poll_interval,
                    release_timeout,
                )
            }
        };
        let config = ServiceConfig::new(Trigger::Instant, poll_interval, release_timeout)?
            .with_retry_jitter(poll_interval / 4);
        let ports = Ports {
            reconciliation,
            importer: Arc::new(importer),
            producer: Arc::new(producer),
            signer: Arc::new(signer),
            pool: Arc::new(pool.clone()),
            clock: Arc::new(SystemClock),
        };
        let (service, handle) = ProductionService::new(config, ports, &mut registry);
        let (stop, stopped) = oneshot::channel::<()>();
        let running = tokio::spawn(service.run(async move {
            let _ = stopped.await;
        }));
        Ok(Self {
            workload,
            store,
            pool,
            handle,
            registry,
            redis,
            release_timeout,
            stop: Some(stop),
            running: Some(running),
            serial: 0,
            measurement: Measurement::default(),
            _data_dir: data_dir,
        })
    }

    /// Feeds the producer until its head reaches `blocks`, unmeasured (connections, caches,
    /// the first full scan).
    ///
    /// # Errors
    /// Fails when no block is committed for [`STALL`].
    pub(crate) async fn warm_up(&mut self, blocks: u64) -> Result<()> {
        let mut status = self.handle.subscribe();
        let mut last_height = status.borrow().height.get();
        let mut last_progress = Instant::now();
        while last_height < blocks {
            self.top_up()?;
            let _ = tokio::time::timeout(FEEDER_TICK, status.changed()).await;
            let height = status.borrow_and_update().height.get();
            if height > last_height {
                last_height = height;
                last_progress = Instant::now();
            } else if last_progress.elapsed() > STALL {
                bail!(
                    "warm-up stuck at height {height} for {} s: {}",
                    STALL.as_secs(),
                    self.last_error()
                );
            }
        }
        self.drain().await
    }

    /// One measured round: feeds for `length`, then lets the pool drain (those blocks count
    /// too), and adds what it saw to the producer's measurement.
    ///
    /// # Errors
    /// Fails when no block is committed for [`STALL`] or the registry cannot be read.
    pub(crate) async fn measure_round(&mut self, length: Duration) -> Result<()> {
        let mut status = self.handle.subscribe();
        let steps_before = StepTotals::read(&self.registry)?;
        let start_height = status.borrow_and_update().height.get();
        let opened = Instant::now();
        let mut last_height = start_height;
        let mut last_commit = opened;
        let mut feeding = true;
        loop {
            if feeding {
                self.top_up()?;
            }
            let drained = !feeding && self.pool.pending_count() == 0;
            // Once drained, a quiet status for a while means the last block is recorded.
            let wait = if drained { SETTLE } else { FEEDER_TICK };
            let changed = tokio::time::timeout(wait, status.changed()).await.is_ok();
            if drained && !changed {
                break;
            }
            let now = Instant::now();
            let (height, error) = {
                let current = status.borrow_and_update();
                (current.height.get(), current.last_error.clone())
            };
            if let Some(error) = error {
                self.measurement.failures = Some(error);
            }
            if height > last_height {
                let blocks = height - last_height;
                let per_block =
                    now.duration_since(last_commit) / u32::try_from(blocks).unwrap_or(u32::MAX);
                for _ in 0..blocks {
                    self.measurement.block_times.record(per_block);
                }
                last_height = height;
                last_commit = now;
            } else if now.duration_since(last_commit) > STALL {
                bail!(
                    "no block committed for {} s at height {height}: {}",
                    STALL.as_secs(),
                    self.last_error()
                );
            }
            feeding = feeding && opened.elapsed() < length;
        }
        let steps = StepTotals::read(&self.registry)?.since(&steps_before);
        let measurement = &mut self.measurement;
        measurement.steps.add(&steps);
        measurement.blocks += last_height - start_height;
        measurement.elapsed += last_commit.duration_since(opened);
        if last_height > start_height {
            measurement.heights.push((
                BlockHeight::new(start_height + 1),
                BlockHeight::new(last_height),
            ));
        }
        Ok(())
    }

    /// Stops the service (releasing the lease), reads the measured blocks' sizes and returns
    /// the measurement.
    ///
    /// # Errors
    /// Fails when the service does not stop in time or the chain cannot be read.
    pub(crate) async fn finish(mut self) -> Result<Measurement> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(running) = self.running.take() {
            tokio::time::timeout(self.release_timeout.saturating_mul(2), running)
                .await
                .map_err(|_| anyhow!("the production service did not stop in time"))?
                .context("the production service task failed")?;
        }
        if let Some(redis) = self.redis.take() {
            redis.shutdown(self.release_timeout).await;
        }
        let store = self.store.clone();
        let heights = std::mem::take(&mut self.measurement.heights);
        let (transactions, block_bytes) = tokio::task::spawn_blocking(move || {
            let mut transactions = 0u64;
            let mut bytes = 0u64;
            for (first, last) in heights {
                for height in first.get()..=last.get() {
                    if let Some(block) = store.block_at(BlockHeight::new(height))? {
                        transactions += u64::from(block.block.header.transaction_count);
                        bytes += block.encode().len() as u64;
                    }
                }
            }
            anyhow::Ok((transactions, bytes))
        })
        .await
        .context("the chain read task failed")??;
        let mut measurement = std::mem::take(&mut self.measurement);
        measurement.transactions = transactions;
        measurement.block_bytes = block_bytes;
        Ok(measurement)
    }

    /// Waits until the pool is empty: the blocks in flight are committed.
    async fn drain(&mut self) -> Result<()> {
        let started = Instant::now();
        while self.pool.pending_count() > 0 {
            if started.elapsed() > STALL {
                bail!("the pool did not drain: {}", self.last_error());
            }
            tokio::time::sleep(FEEDER_TICK).await;
        }
        tokio::time::sleep(SETTLE).await;
        Ok(())
    }

    /// Submits transactions until the pool holds the backlog, each one unique.
    fn top_up(&mut self) -> Result<()> {
        let backlog = self.workload.transactions_per_block * BACKLOG_BLOCKS;
        while self.pool.pending_count() < backlog {
            let mut bytes = vec![0u8; self.workload.transaction_bytes.max(8)];
            bytes[..8].copy_from_slice(&self.serial.to_be_bytes());
            self.serial += 1;
            self.pool
                .submit(Transaction::new(bytes))
                .context("the pool refused a transaction")?;
        }
        Ok(())
    }

    fn last_error(&self) -> String {
        self.handle
            .status()
            .last_error
            .unwrap_or_else(|| "no error reported".to_owned())
    }
}
