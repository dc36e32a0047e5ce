//! Scale measurement `backlog`: reconciliation of a 1,000-block backlog. One
//! `RedisReconciliation`, as leader, publishes a chain of 1,000 blocks to three local
//! `redis-server`s; then fresh adapters (a new process token each, an empty local chain)
//! catch up through the port alone (`leader_state` until it stops returning blocks): as a
//! lagging follower while the publisher still leads and as a new leader once it released the
//! lease, at the production defaults, with a `stream_max_len` of a tenth of the backlog (one
//! cycle returns at most that many blocks), and with a longer node timeout. A catch-up whose
//! cycles keep failing is a result, not an error. Separately, verifying and committing the
//! obtained blocks into a redb chain, as `poa-core` imports them.
//!
//! It owns the chain it builds and the schedule; `report` words the results. It never decides
//! what a cycle returns (the adapter does) and never times inside the adapter.

mod report;

use std::num::NonZeroU32;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use adapter_chain::block::transactions_root;
use adapter_chain::{
    AuthorityKey, AuthoritySealVerifier, ChainSpec, ChainStore, CommitDurability,
    Ed25519BlockSigner, MemoryTransactionPool, PoolLimits, RedbBlockImporter,
};
use adapter_chain::{Block, Header, ReferenceChain, SealedBlock};
use adapter_redis::{RedisConfig, RedisReconciliation};
use anyhow::{Context, Result, anyhow, bail};
use poa_ports::Transaction;
use poa_ports::{
    BlockImporter, BlockReconciliationPort, BlockSigner, ChainHead, LeaderState, Timestamp,
};

use crate::blocks::redis_config;
use crate::context::BenchContext;
use crate::fixtures::{start_servers, urls_of};
use crate::model::CaseReport;
use crate::stats::Latencies;

const CASE: &str = "scale";
/// Redis nodes the backlog is published to.
const REDIS_NODES: usize = 3;
/// Blocks of about 4 KiB, as in the end-to-end case: 16 transactions of 256 B.
const TRANSACTIONS_PER_BLOCK: usize = 16;
const TRANSACTION_BYTES: usize = 256;
/// The catching-up follower that reads a tenth of the backlog per cycle.
const SHORT_STREAM_DIVISOR: u64 = 10;
/// Commits per fsync of the deferred import row (as in the end-to-end case).
const DEFERRED_FSYNC_EVERY: u32 = 8;
/// Cycles one catch-up may take before the harness calls it stuck: far more than the
/// backlog divided by the smallest per-cycle bound.
const MAX_CYCLES: usize = 100;
/// Failed cycles in a row after which a catch-up counts as stuck. The service would go on
/// retrying the same read every poll interval; one that fits the node timeout only now and
/// then may get through eventually, which this bound does not wait for.
const FAILED_CYCLES_IN_A_ROW: usize = 4;
/// Attempts, and the pause between them, of the publisher taking the lease back.
const LEAD_ATTEMPTS: usize = 10;
const LEAD_RETRY_DELAY: Duration = Duration::from_millis(200);
/// The longer node timeout of the scenarios that show the catch-up when every read completes.
const LONG_NODE_TIMEOUT: Duration = Duration::from_secs(1);
/// Bound of one whole catch-up, so a hung adapter fails the measurement instead of the run.
const CATCH_UP_BOUND: Duration = Duration::from_secs(60);

/// How a fresh adapter catches up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Catcher {
    /// The publisher still leads: the fresh adapter's `leader_state` finds the lease held.
    Follower,
    /// The publisher released the lease: the fresh adapter acquires it and reconciles.
    NewLeader,
}

/// One catch-up scenario: who catches up, with which reader settings.
#[derive(Debug, Clone, Copy)]
struct Scenario {
    catcher: Catcher,
    stream_max_len: u64,
    node_timeout: Duration,
}

impl Scenario {
    fn label(self, backlog: u64) -> String {
        let who = match self.catcher {
            Catcher::Follower => "lagging follower",
            Catcher::NewLeader => "new leader",
        };
        format!(
            "{who} obtains {backlog} blocks (stream_max_len {}, node timeout {} ms)",
            self.stream_max_len,
            self.node_timeout.as_millis()
        )
    }

    fn is_default(self) -> bool {
        let defaults = RedisConfig::default();
        self.stream_max_len == defaults.stream_max_len && self.node_timeout == defaults.node_timeout
    }
}

/// What the catch-ups of one scenario measured.
#[derive(Debug)]
struct Obtained {
    scenario: Scenario,
    /// Time until every block was obtained, one sample per repetition that caught up.
    totals: Latencies,
    /// Repetitions run, and how many of them caught up.
    repetitions: u64,
    caught_up: u64,
    /// Port calls of a catch-up that succeeded (the last one returns no block).
    cycles: usize,
    /// Cycles that failed, over every repetition, and the last error of one.
    failed_cycles: usize,
    last_error: Option<String>,
    /// Why the last repetition that did not catch up stopped.
    failure: Option<String>,
}

/// Measures `backlog`.
///
/// # Errors
/// Fails when the servers or an adapter cannot start, a publish fails, or a catch-up does not
/// obtain the whole backlog in order.
pub(crate) async fn measure(context: &BenchContext) -> Result<CaseReport> {
    let backlog = context.scale(1_000, 40);
    let repetitions = context.scale(5, 1);
    let servers = start_servers(REDIS_NODES).await?;
    let config = redis_config(urls_of(&servers), context.unique_key("backlog"));
    let key = AuthorityKey::generate();
    let spec = ChainSpec::dev(key.public_key());
    let chain = build_chain(&spec, &Ed25519BlockSigner::new(key), backlog)?;

    context.progress(
        CASE,
        format_args!("backlog: publishing {backlog} blocks to {REDIS_NODES} nodes"),
    );
    let publisher = Publisher::start(&config, spec, &chain).await?;

    let defaults = Scenario {
        catcher: Catcher::Follower,
        stream_max_len: config.stream_max_len,
        node_timeout: config.node_timeout,
    };
    let scenarios = [
        defaults,
        Scenario {
            catcher: Catcher::NewLeader,
            ..defaults
        },
        Scenario {
            stream_max_len: (backlog / SHORT_STREAM_DIVISOR).max(1),
            ..defaults
        },
        Scenario {
            node_timeout: LONG_NODE_TIMEOUT,
            ..defaults
        },
        Scenario {
            catcher: Catcher::NewLeader,
            node_timeout: LONG_NODE_TIMEOUT,
            ..defaults
        },
    ];
    let mut obtained = Vec::new();
    let mut last_blocks = Vec::new();
    for scenario in scenarios {
        context.progress(
            CASE,
            format_args!("backlog: {} x {repetitions}", scenario.label(backlog)),
        );
        let reader = RedisConfig {
            stream_max_len: scenario.stream_max_len,
            node_timeout: scenario.node_timeout,
            // The acquisition schedule (attempts x (delay + offset + node timeout)) must fit in
            // the lease, which the adapter checks: a long node timeout needs a longer lease.
            lease_ttl: config
                .lease_ttl
                .max(scenario.node_timeout.saturating_mul(5)),
            ..config.clone()
        };
        let (measured, blocks) =
            run_scenario(&publisher, scenario, &reader, &chain, repetitions).await?;
        obtained.push(measured);
        if let Some(blocks) = blocks {
            last_blocks = blocks;
        }
    }
    publisher.shutdown().await;

    if last_blocks.is_empty() {
        bail!("no scenario obtained the backlog, so there is nothing to import");
    }
    let mut imports = Vec::new();
    for durability in [
        CommitDurability::Immediate,
        CommitDurability::Deferred {
            fsync_every: NonZeroU32::new(DEFERRED_FSYNC_EVERY)
                .ok_or_else(|| anyhow!("the deferred fsync interval is zero"))?,
        },
    ] {
        context.progress(
            CASE,
            format_args!("backlog: verify and commit {backlog} blocks into redb"),
        );
        let data_dir = tempfile::tempdir().context("cannot create a data directory")?;
        imports.push((
            durability,
            import(spec, durability, data_dir.path(), &last_blocks).await?,
        ));
    }
    let _ = tokio::task::spawn_blocking(move || drop(servers)).await;
    let block_bytes = chain
        .iter()
        .map(|block| block.encode().len())
        .sum::<usize>()
        / chain.len().max(1);
    report::build(backlog, block_bytes, &obtained, &imports)
}

/// Runs `repetitions` catch-ups of `scenario` with the reader configuration `reader`; returns
/// what they measured and the blocks of the last catch-up that obtained them all.
///
/// # Errors
/// Fails when the publisher cannot take or give up the lease, a catch-up hangs or cannot
/// start, or it obtains other blocks than the published chain.
async fn run_scenario(
    publisher: &Publisher,
    scenario: Scenario,
    reader: &RedisConfig,
    chain: &[SealedBlock],
    repetitions: u64,
) -> Result<(Obtained, Option<Vec<SealedBlock>>)> {
    let backlog = chain.len() as u64;
    let mut measured = Obtained {
        scenario,
        totals: Latencies::new(),
        repetitions,
        caught_up: 0,
        cycles: 0,
        failed_cycles: 0,
        last_error: None,
        failure: None,
    };
    let mut blocks = None;
    for _ in 0..repetitions {
        // A lease nobody renews lapses after its TTL: the publisher takes it afresh before
        // each follower's catch-up, and gives it up before each new leader's.
        match scenario.catcher {
            Catcher::Follower => publisher.lead_afresh().await?,
            Catcher::NewLeader => publisher.release().await?,
        }
        let catch_up = tokio::time::timeout(
            CATCH_UP_BOUND,
            catch_up(reader.clone(), publisher.spec, backlog),
        )
        .await
        .map_err(|_| {
            anyhow!(
                "{} took longer than {} s",
                scenario.label(backlog),
                CATCH_UP_BOUND.as_secs()
            )
        })??;
        measured.failed_cycles += catch_up.failed_cycles;
        if catch_up.last_error.is_some() {
            measured.last_error = catch_up.last_error;
        }
        if let Some(error) = catch_up.failure {
            measured.failure = Some(error);
            continue;
        }
        check_chain(&catch_up.blocks, chain)
            .with_context(|| format!("{} obtained the wrong blocks", scenario.label(backlog)))?;
        measured.totals.record(catch_up.elapsed);
        measured.caught_up += 1;
        measured.cycles = catch_up.cycles;
        blocks = Some(catch_up.blocks);
    }
    Ok((measured, blocks))
}

/// A chain of `length` blocks on the genesis of `spec`, each with unique transactions, sealed
/// by the authority: what a leader would have produced.
fn build_chain(
    spec: &ChainSpec,
    signer: &Ed25519BlockSigner,
    length: u64,
) -> Result<Vec<SealedBlock>> {
    let mut parent = spec.genesis_block().block.header;
    let mut chain = Vec::new();
    let mut serial = 0u64;
    for _ in 0..length {
        let transactions: Vec<Transaction> = (0..TRANSACTIONS_PER_BLOCK)
            .map(|_| {
                serial += 1;
                let mut bytes = vec![0u8; TRANSACTION_BYTES];
                bytes[..8].copy_from_slice(&serial.to_be_bytes());
                Transaction::new(bytes)
            })
            .collect();
        let header = Header {
            chain_id: parent.chain_id,
            height: parent
                .height
                .next()
                .ok_or_else(|| anyhow!("height overflow"))?,
            parent_id: parent.id(),
            timestamp: Timestamp::from_unix_millis(parent.timestamp.as_unix_millis() + 1),
            transactions_root: transactions_root(&transactions),
            transaction_count: u32::try_from(transactions.len())?,
        };
        let sealed = signer.seal(Block {
            header,
            transactions,
        })?;
        parent = sealed.block.header.clone();
        chain.push(sealed);
    }
    Ok(chain)
}

/// The adapter that published the backlog, leading until it releases.
struct Publisher {
    adapter: RedisReconciliation<ReferenceChain>,
    spec: ChainSpec,
    tip: ChainHead,
}

impl Publisher {
    /// Connects, takes the lease on empty streams and publishes `chain` (on the genesis of
    /// `spec`) in order.
    async fn start(config: &RedisConfig, spec: ChainSpec, chain: &[SealedBlock]) -> Result<Self> {
        let adapter = RedisReconciliation::connect(
            config.clone(),
            Arc::new(AuthoritySealVerifier::new(spec)),
            None,
        )
        .await
        .context("cannot start the publishing adapter")?;
        let genesis = ChainHead::of(&spec.genesis_block().block.header);
        match adapter.leader_state(genesis).await? {
            LeaderState::ReconciledLeader => {}
            other => bail!("the publisher does not lead on empty streams: {other:?}"),
        }
        for block in chain {
            adapter
                .publish_produced_block(block)
                .await
                .with_context(|| format!("cannot publish height {}", block.height()))?;
        }
        let tip = chain
            .last()
            .map_or(genesis, |block| ChainHead::of(&block.block.header));
        Ok(Self { adapter, spec, tip })
    }

    /// Releases the lease and acquires it again, so it is held for a whole TTL from now.
    /// Retried a few times: the nodes may still be busy with reads an earlier catch-up gave
    /// up on (a script runs to its end once sent).
    async fn lead_afresh(&self) -> Result<()> {
        let mut last = None;
        for _ in 0..LEAD_ATTEMPTS {
            self.release().await?;
            match self.adapter.leader_state(self.tip).await {
                Ok(LeaderState::ReconciledLeader) => return Ok(()),
                Ok(other) => last = Some(format!("{other:?}")),
                Err(error) => last = Some(error.to_string()),
            }
            tokio::time::sleep(LEAD_RETRY_DELAY).await;
        }
        bail!(
            "the publisher could not lead again in {LEAD_ATTEMPTS} attempts: {}",
            last.unwrap_or_default()
        )
    }

    async fn release(&self) -> Result<()> {
        self.adapter
            .release()
            .await
            .context("the publisher cannot release the lease")
    }

    async fn shutdown(self) {
        self.adapter
            .shutdown(RedisConfig::default().node_timeout.saturating_mul(4))
            .await;
    }
}

/// One catch-up: the blocks obtained in order, the time until the last one, the cycles, and
/// why it stopped progressing if it did.
struct CatchUp {
    blocks: Vec<SealedBlock>,
    elapsed: Duration,
    cycles: usize,
    failed_cycles: usize,
    last_error: Option<String>,
    failure: Option<String>,
}

/// A fresh adapter with an empty local chain asks `leader_state` for the next height, cycle
/// after cycle, until it has `backlog` blocks and a cycle returns none, or until
/// [`FAILED_CYCLES_IN_A_ROW`] cycles failed in a row. Timed from the adapter's first call
/// (connecting is not part of catching up).
///
/// # Errors
/// Fails when the adapter cannot start or a cycle answers something a catch-up never should.
async fn catch_up(config: RedisConfig, spec: ChainSpec, backlog: u64) -> Result<CatchUp> {
    let node_timeout = config.node_timeout;
    let adapter =
        RedisReconciliation::connect(config, Arc::new(AuthoritySealVerifier::new(spec)), None)
            .await
            .context("cannot start the catching-up adapter")?;
    let genesis = spec.genesis_block().block.header;
    let started = Instant::now();
    let mut catch_up = CatchUp {
        blocks: Vec::new(),
        elapsed: Duration::ZERO,
        cycles: 0,
        failed_cycles: 0,
        last_error: None,
        failure: None,
    };
    let mut failed_in_a_row = 0;
    let result = loop {
        if catch_up.cycles >= MAX_CYCLES {
            break Err(anyhow!("still catching up after {MAX_CYCLES} cycles"));
        }
        catch_up.cycles += 1;
        let head = ChainHead::of(
            catch_up
                .blocks
                .last()
                .map_or(&genesis, |block| &block.block.header),
        );
        match adapter.leader_state(head).await {
            Ok(LeaderState::UnreconciledBlocks(found)) if !found.is_empty() => {
                failed_in_a_row = 0;
                catch_up.blocks.extend(found);
                catch_up.elapsed = started.elapsed();
            }
            Ok(_) if catch_up.blocks.len() as u64 >= backlog => break Ok(()),
            Ok(state) => {
                break Err(anyhow!(
                    "cycle {} returned {state:?} with {} of {backlog} blocks",
                    catch_up.cycles,
                    catch_up.blocks.len()
                ));
            }
            Err(error) => {
                catch_up.failed_cycles += 1;
                catch_up.last_error = Some(error.to_string());
                failed_in_a_row += 1;
                if failed_in_a_row >= FAILED_CYCLES_IN_A_ROW {
                    catch_up.failure = Some(format!(
                        "{failed_in_a_row} cycles in a row failed with {} of {backlog} blocks \
                         obtained: {error}",
                        catch_up.blocks.len()
                    ));
                    break Ok(());
                }
            }
        }
    };
    let _ = adapter.release().await;
    adapter.shutdown(node_timeout.saturating_mul(4)).await;
    result.map(|()| catch_up)
}

/// The obtained blocks must be exactly the published chain, in order.
fn check_chain(obtained: &[SealedBlock], chain: &[SealedBlock]) -> Result<()> {
    if obtained.len() != chain.len() {
        bail!(
            "obtained {} blocks, {} were published",
            obtained.len(),
            chain.len()
        );
    }
    if let Some((index, _)) = obtained
        .iter()
        .zip(chain)
        .enumerate()
        .find(|(_, (got, want))| got.id() != want.id())
    {
        bail!("obtained block {} is not the published one", index + 1);
    }
    Ok(())
}

/// Verifies and commits `blocks` into a fresh chain of `spec`, one after another through the
/// importer port, as `poa-core` imports reconciled blocks; one sample per block.
async fn import(
    spec: ChainSpec,
    durability: CommitDurability,
    data_dir: &Path,
    blocks: &[SealedBlock],
) -> Result<Latencies> {
    let path = data_dir.to_path_buf();
    let store = tokio::task::spawn_blocking(move || {
        ChainStore::open_with_durability(spec, &path, durability)
    })
    .await
    .context("the chain store task failed")?
    .context("cannot open the importing chain")?;
    let importer = Arc::new(RedbBlockImporter::new(
        store,
        MemoryTransactionPool::new(PoolLimits::standard()),
    ));
    let mut latencies = Latencies::new();
    for block in blocks {
        let started = Instant::now();
        importer
            .verify(block)
            .await
            .with_context(|| format!("height {} does not verify", block.height()))?;
        importer
            .commit(block.clone())
            .await
            .with_context(|| format!("height {} does not commit", block.height()))?;
        latencies.record(started.elapsed());
    }
    Ok(latencies)
}
