//! The index's writer: builds the index file when there is none, copies into it the chain's
//! blocks it lacks, and writes the pending blocks in batches. It runs on the index's own thread,
//! and once at open (so a store normally opens with its index current).
//!
//! A failure of the file (an error or a panic of redb) drops it (`IndexShared::drop_file`); the
//! writer then builds it again, waiting [`RETRY_FIRST`] after a failed attempt and twice as long
//! after each further one, up to [`RETRY_MAX`] (a full disk costs a few attempts a minute, not a
//! busy loop). The writer never fails the store: a chain it cannot read is the chain file's
//! failure, handled there, and only waited out here.

use std::time::{Duration, Instant};

use poa_ports::BlockHeight;

use super::{
    BLOCKS_PER_WRITE, IndexShared, IndexedBlock, create, guarded, remove_index_file, write_blocks,
};
use crate::error::StorageError;
use crate::storage::tables::{BLOCKS, block_in};

/// The least time between two writes of pending blocks. Each write is one fsync of its own; a
/// batch of many blocks writes a page that several of them touched once, not once per block.
const WRITE_INTERVAL: Duration = Duration::from_millis(100);

/// The wait after the first failed attempt to build the file or read the chain.
const RETRY_FIRST: Duration = Duration::from_millis(100);

/// The longest wait between two attempts.
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Builds the file when there is none and copies the chain's blocks it lacks, at open. A file
/// that fails meanwhile is left to the writer thread.
///
/// # Errors
///
/// Reading the chain failed.
pub(super) fn build_at_open(shared: &IndexShared) -> Result<(), StorageError> {
    if shared.read_file().db.is_none() && !build_file(shared) {
        return Ok(());
    }
    let mut progress = Progress::default();
    while let Copied::Some = copy_chain_blocks(shared, &mut progress)? {}
    Ok(())
}

/// The writer thread: see the module documentation. Returns once the index stops, after it
/// wrote the durable pending blocks (unless the file lacks older blocks too: the next open
/// copies them all from the chain).
pub(super) fn write_pending_blocks(shared: &IndexShared) {
    let mut retry = Retry::default();
    let mut progress = Progress::default();
    let mut last_write: Option<Instant> = None;
    while let Some(job) = next_job(shared, &retry, last_write) {
        match job {
            Job::Build => {
                if build_file(shared) {
                    retry = Retry::default();
                } else {
                    retry.failed();
                }
            }
            Job::CopyChainBlocks => match copy_chain_blocks(shared, &mut progress) {
                Ok(Copied::Some | Copied::None) => {}
                Ok(Copied::FileFailed) => retry.failed(),
                Err(error) => {
                    tracing::debug!(
                        path = %shared.path.display(),
                        error = %error,
                        "transaction index cannot read the chain: trying again"
                    );
                    retry.failed();
                }
            },
            Job::WritePending { generation, blocks } => {
                last_write = Some(Instant::now());
                if !write_into_file(shared, generation, &blocks) {
                    retry.failed();
                }
            }
        }
    }
}

/// What the writer does next.
enum Job {
    /// There is no file: build one.
    Build,
    /// The file lacks blocks below the pending ones: copy them from the chain.
    CopyChainBlocks,
    /// Write these pending blocks into the file of `generation`.
    WritePending {
        generation: u64,
        blocks: Vec<IndexedBlock>,
    },
}

/// Waits for the next job; `None` once the index stops.
fn next_job(shared: &IndexShared, retry: &Retry, last_write: Option<Instant>) -> Option<Job> {
    loop {
        let (has_file, indexed_through, generation) = {
            let file = shared.read_file();
            (file.db.is_some(), file.indexed_through, file.generation)
        };
        let pending = shared.lock_pending();
        let lacks_chain_blocks = indexed_through < pending.unpending_through();
        let ready = pending
            .blocks
            .front()
            .is_some_and(|block| block.height <= pending.durable_through);
        if pending.stopping {
            // Building the file or copying the chain into it can take long; the next open
            // does it instead.
            if !has_file || lacks_chain_blocks || !ready {
                return None;
            }
        }
        let wait = if !has_file || lacks_chain_blocks {
            Some(retry.wait())
        } else if ready {
            let since_write = last_write.map_or(Duration::ZERO, |last| {
                WRITE_INTERVAL.saturating_sub(last.elapsed())
            });
            if pending.stopping {
                Some(Duration::ZERO)
            } else {
                Some(since_write)
            }
        } else {
            None
        };
        match wait {
            Some(wait) if wait.is_zero() => {
                return Some(if !has_file {
                    Job::Build
                } else if lacks_chain_blocks {
                    Job::CopyChainBlocks
                } else {
                    let durable_through = pending.durable_through;
                    Job::WritePending {
                        generation,
                        blocks: pending
                            .blocks
                            .iter()
                            .take_while(|block| block.height <= durable_through)
                            .take(BLOCKS_PER_WRITE)
                            .cloned()
                            .collect(),
                    }
                });
            }
            Some(wait) => {
                drop(
                    shared
                        .changed
                        .wait_timeout(pending, wait)
                        .unwrap_or_else(std::sync::PoisonError::into_inner),
                );
            }
            None => {
                drop(
                    shared
                        .changed
                        .wait(pending)
                        .unwrap_or_else(std::sync::PoisonError::into_inner),
                );
            }
        }
    }
}

/// Creates an empty file for the index; whether it did (a failure is logged and the file
/// removed again).
fn build_file(shared: &IndexShared) -> bool {
    match guarded(|| create(&shared.path, &shared.settings, &shared.spec)) {
        Ok(db) => {
            let mut file = shared.write_file();
            file.db = Some(db);
            file.indexed_through = BlockHeight::GENESIS;
            true
        }
        Err(cause) => {
            tracing::warn!(
                path = %shared.path.display(),
                error = %cause,
                "transaction index could not be built: trying again"
            );
            let _ = remove_index_file(&shared.path);
            false
        }
    }
}

/// What one call of [`copy_chain_blocks`] did.
enum Copied {
    /// It copied blocks.
    Some,
    /// The file lacks no block (or there is none).
    None,
    /// The file failed and was dropped.
    FileFailed,
}

/// Copies the next batch of the chain's blocks that the file lacks below the pending blocks.
///
/// # Errors
///
/// Reading the chain failed.
fn copy_chain_blocks(
    shared: &IndexShared,
    progress: &mut Progress,
) -> Result<Copied, StorageError> {
    let (generation, indexed_through) = {
        let file = shared.read_file();
        if file.db.is_none() {
            return Ok(Copied::None);
        }
        (file.generation, file.indexed_through.get())
    };
    let through = shared.lock_pending().unpending_through().get();
    if indexed_through >= through {
        return Ok(Copied::None);
    }
    let from = indexed_through.saturating_add(1);
    let last = through.min(indexed_through.saturating_add(BLOCKS_PER_WRITE as u64));
    progress.starting(shared, from, through);
    let blocks = shared.chain.run(|chain| {
        let txn = chain.begin_read()?;
        let table = txn.open_table(BLOCKS)?;
        (from..=last)
            .map(|height| {
                let height = BlockHeight::new(height);
                block_in(&table, &shared.spec, height)?
                    .map(|block| IndexedBlock::of(&block))
                    .ok_or_else(|| StorageError::Inconsistent {
                        reason: format!("height {height} is missing below the head"),
                    })
            })
            .collect::<Result<Vec<_>, _>>()
    })?;
    if !write_into_file(shared, generation, &blocks) {
        progress.started = None;
        return Ok(Copied::FileFailed);
    }
    if last == through {
        progress.done(shared, through);
    }
    Ok(Copied::Some)
}

/// Writes `blocks` into the file of `generation`, moves its watermark and removes them from
/// pending; whether it did (a failure drops the file).
fn write_into_file(shared: &IndexShared, generation: u64, blocks: &[IndexedBlock]) -> bool {
    let Some(last) = blocks.last().map(|block| block.height) else {
        return true;
    };
    let written = {
        let file = shared.read_file();
        match &file.db {
            Some(db) if file.generation == generation => guarded(|| write_blocks(db, blocks)),
            _ => return false,
        }
    };
    if let Err(cause) = written {
        shared.drop_file(generation, &cause);
        return false;
    }
    let mut file = shared.write_file();
    if file.generation != generation {
        return false;
    }
    file.indexed_through = last;
    let mut pending = shared.lock_pending();
    while pending
        .blocks
        .front()
        .is_some_and(|block| block.height <= last)
    {
        if let Some(block) = pending.blocks.pop_front() {
            for id in &block.transactions {
                pending.heights.remove(id);
            }
        }
    }
    true
}

/// When the writer may try again after a failure.
struct Retry {
    next_attempt: Instant,
    delay: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Self {
            next_attempt: Instant::now(),
            delay: RETRY_FIRST,
        }
    }
}

impl Retry {
    fn failed(&mut self) {
        self.next_attempt = Instant::now() + self.delay;
        self.delay = self.delay.saturating_mul(2).min(RETRY_MAX);
    }

    /// How long until the next attempt (zero when it is due).
    fn wait(&self) -> Duration {
        self.next_attempt.saturating_duration_since(Instant::now())
    }
}

/// A copy of many blocks from the chain, told to the operator when it starts and ends.
#[derive(Default)]
struct Progress {
    started: Option<Instant>,
}

impl Progress {
    fn starting(&mut self, shared: &IndexShared, from: u64, through: u64) {
        // A few blocks are the normal start; more mean a rebuild, which the operator should see.
        if self.started.is_none() && through - from >= BLOCKS_PER_WRITE as u64 {
            tracing::info!(
                path = %shared.path.display(),
                from,
                to = through,
                "building the transaction index from the chain"
            );
            self.started = Some(Instant::now());
        }
    }

    fn done(&mut self, shared: &IndexShared, through: u64) {
        if let Some(started) = self.started.take() {
            tracing::info!(
                path = %shared.path.display(),
                height = through,
                elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                "transaction index built"
            );
        }
    }
}
