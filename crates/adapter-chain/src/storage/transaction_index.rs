//! [`TransactionIndex`]: which height committed each transaction, in a database file of its own
//! beside the chain file ([`TRANSACTION_INDEX_FILE_NAME`]), derived from the chain's blocks.
//!
//! Why a file of its own: transaction ids are hashes, so one block's entries land on as many
//! pages of an id-keyed index as it has transactions. Inside the chain file every commit's fsync
//! carried those pages (about four times the bytes of the block itself); here they are written
//! beside the commit, not inside it.
//!
//! A commit hands the block's transaction ids to the index ([`TransactionIndex::add`]): they are
//! pending, and a lookup finds them at once. The index's writer thread writes pending blocks into
//! the file in batches, at most one durable transaction per [`WRITE_INTERVAL`], each recording
//! the height and id of the last block it holds (the watermark). A lookup asks the pending blocks
//! first and the file after, so it finds every committed block whichever step it is at. The
//! writer writes only blocks the chain file has made durable, so the file never holds a block
//! that a crash could take from the chain.
//!
//! The file holds nothing the chain does not. When the store opens, the index checks that its
//! watermark block is the chain's block at that height and writes the blocks above it; a file
//! that is missing, damaged, of another chain or version, or ahead of the chain is removed and
//! built again from every block. At run time it shares the chain file's handling of I/O errors
//! and damage ([`GuardedDatabase`]), and its health is published with the chain's.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use poa_ports::{BlockHeight, BlockId, TransactionId};
use redb::{Database, Durability, TableDefinition};

use crate::SealedBlock;
use crate::error::StorageError;
use crate::genesis::ChainSpec;
use crate::metrics::StorageMetrics;
use crate::storage::OpenCheck;
use crate::storage::backend::FailureSlot;
use crate::storage::database::{GuardedDatabase, OpenSettings, open_database};
use crate::storage::file;
use crate::storage::health::{HealthBoard, StoreFile};
use crate::storage::tables::{
    BLOCKS, GENESIS_ID_KEY, METADATA, SCHEMA_VERSION_KEY, block_id_from, block_in,
    schema_version_from,
};

/// Name of the transaction index file inside the data directory.
pub const TRANSACTION_INDEX_FILE_NAME: &str = "transactions.redb";

/// Version of the index file's layout; a file of another version is built again.
const INDEX_SCHEMA_VERSION: u64 = 1;

/// The height of the block that committed each transaction, by transaction id.
pub(crate) const HEIGHT_BY_TRANSACTION_ID: TableDefinition<&[u8; 32], u64> =
    TableDefinition::new("height_by_transaction_id");

/// Metadata key of the watermark: the height (8 bytes, big-endian) and id (32 bytes) of the
/// last block the file holds.
pub(crate) const INDEXED_THROUGH_KEY: &str = "indexed_through";

/// The least time between two writes of the index file. Each write is one fsync of its own; a
/// batch of many blocks writes a page that several of them touched once, not once per block.
const WRITE_INTERVAL: Duration = Duration::from_millis(100);

/// The most blocks one write of the index file holds (bounds a catch-up's transactions).
const BLOCKS_PER_WRITE: usize = 1024;

/// The transaction index of an open store. Dropping it stops its writer thread (after it wrote
/// what the chain made durable) and waits for it.
pub(crate) struct TransactionIndex {
    shared: Arc<IndexShared>,
    writer: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for TransactionIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransactionIndex")
            .field("path", &self.shared.db.path())
            .field("pending_blocks", &self.shared.lock_pending().blocks.len())
            .finish_non_exhaustive()
    }
}

struct IndexShared {
    db: GuardedDatabase,
    pending: Mutex<Pending>,
    /// Signalled when a block is added or the index stops.
    changed: Condvar,
}

/// Committed blocks the file does not hold yet.
#[derive(Default)]
struct Pending {
    /// Oldest first.
    blocks: VecDeque<IndexedBlock>,
    /// Every transaction of `blocks`, with its height.
    heights: HashMap<TransactionId, BlockHeight>,
    /// The highest height the chain file has made durable: the writer writes nothing above.
    durable_through: BlockHeight,
    stopping: bool,
}

/// One block as the index sees it.
#[derive(Clone)]
struct IndexedBlock {
    height: BlockHeight,
    id: BlockId,
    transactions: Vec<TransactionId>,
}

impl IndexedBlock {
    fn of(block: &SealedBlock) -> Self {
        Self {
            height: block.height(),
            id: block.id(),
            transactions: block
                .block
                .transactions
                .iter()
                .map(|transaction| transaction.id())
                .collect(),
        }
    }
}

/// What opening the index needs from the store.
pub(crate) struct IndexOpening<'a> {
    pub(crate) data_dir: &'a Path,
    pub(crate) spec: &'a ChainSpec,
    /// The chain file, to read the blocks the index lacks.
    pub(crate) chain: &'a GuardedDatabase,
    /// The chain's head when the store opened.
    pub(crate) head: &'a SealedBlock,
    pub(crate) settings: OpenSettings,
    pub(crate) check: OpenCheck,
    pub(crate) health: Arc<HealthBoard>,
    pub(crate) metrics: StorageMetrics,
}

impl TransactionIndex {
    /// Opens the index file in the data directory (built from the chain when it is missing or
    /// unusable, see the module documentation), writes the blocks it lacks up to the head, and
    /// starts its writer thread.
    ///
    /// # Errors
    ///
    /// [`StorageError::Open`] when the file system refuses, [`StorageError::NotARegularFile`]
    /// when something else is at the path, or an error reading the chain.
    pub(crate) fn open(opening: IndexOpening<'_>) -> Result<Self, StorageError> {
        let path = opening.data_dir.join(TRANSACTION_INDEX_FILE_NAME);
        let failure = FailureSlot::default();
        let (opened, indexed_through) = match open_usable(&path, &opening, &failure)? {
            Ok(usable) => usable,
            Err(reason) => {
                tracing::warn!(
                    path = %path.display(),
                    reason = %reason,
                    "transaction index unusable: building it again from the chain"
                );
                (create(&path, &opening, &failure)?, BlockHeight::GENESIS)
            }
        };
        let db = GuardedDatabase::new(
            path.clone(),
            opened,
            opening.settings.clone(),
            failure,
            (opening.health.clone(), StoreFile::TransactionIndex),
            opening.metrics.clone(),
        );
        catch_up(&db, &opening, indexed_through)?;
        let shared = Arc::new(IndexShared {
            db,
            pending: Mutex::new(Pending {
                durable_through: opening.head.height(),
                ..Pending::default()
            }),
            changed: Condvar::new(),
        });
        let writer = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("transaction-index".to_owned())
                .spawn(move || write_pending_blocks(&shared))
                .map_err(|error| StorageError::Open {
                    path,
                    source: Box::new(redb::Error::Io(error)),
                })?
        };
        Ok(Self {
            shared,
            writer: Some(writer),
        })
    }

    /// Adds a block the chain just committed; `durable` when that commit was fsynced (which
    /// makes every commit before it durable too). Call it in commit order.
    pub(crate) fn add(&self, block: &SealedBlock, durable: bool) {
        let indexed = IndexedBlock::of(block);
        let mut pending = self.shared.lock_pending();
        for id in &indexed.transactions {
            pending.heights.insert(*id, indexed.height);
        }
        if durable {
            pending.durable_through = indexed.height;
        }
        pending.blocks.push_back(indexed);
        drop(pending);
        self.shared.changed.notify_all();
    }

    /// The height of the block that committed this transaction, if any.
    ///
    /// # Errors
    ///
    /// The index file failed.
    pub(crate) fn height_of(
        &self,
        id: &TransactionId,
    ) -> Result<Option<BlockHeight>, StorageError> {
        // Pending first, the file after: the writer removes a block from pending only once the
        // file holds it, so a block missed in one is found in the other.
        if let Some(height) = self.shared.lock_pending().heights.get(id) {
            return Ok(Some(*height));
        }
        self.shared.db.run(|db| {
            let txn = db.begin_read()?;
            let height = txn
                .open_table(HEIGHT_BY_TRANSACTION_ID)?
                .get(id.as_bytes())?
                .map(|height| BlockHeight::new(height.value()));
            Ok(height)
        })
    }

    /// Those of `ids` that a committed block holds.
    ///
    /// # Errors
    ///
    /// The index file failed.
    pub(crate) fn committed_among(
        &self,
        ids: &[TransactionId],
    ) -> Result<HashSet<TransactionId>, StorageError> {
        let mut committed = HashSet::new();
        let mut unknown = Vec::new();
        {
            let pending = self.shared.lock_pending();
            for id in ids {
                if pending.heights.contains_key(id) {
                    committed.insert(*id);
                } else {
                    unknown.push(*id);
                }
            }
        }
        if unknown.is_empty() {
            return Ok(committed);
        }
        self.shared.db.run(|db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(HEIGHT_BY_TRANSACTION_ID)?;
            for id in unknown {
                if table.get(id.as_bytes())?.is_some() {
                    committed.insert(id);
                }
            }
            Ok(committed)
        })
    }

    /// Whether the index file holds every block handed to the index.
    #[cfg(test)]
    pub(crate) fn holds_every_block(&self) -> bool {
        self.shared.lock_pending().blocks.is_empty()
    }

    /// The index file.
    pub(crate) fn path(&self) -> &Path {
        self.shared.db.path()
    }
}

impl Drop for TransactionIndex {
    fn drop(&mut self) {
        self.shared.lock_pending().stopping = true;
        self.shared.changed.notify_all();
        if let Some(writer) = self.writer.take() {
            // The writer only ends its current write (one fsync at most) and what the chain
            // made durable, so this wait is bounded by the disk.
            let _ = writer.join();
        }
    }
}

impl IndexShared {
    fn lock_pending(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The writer thread: writes the durable pending blocks in batches, at most one write per
/// [`WRITE_INTERVAL`], until the index stops (then once more without waiting).
fn write_pending_blocks(shared: &IndexShared) {
    let mut last_write: Option<Instant> = None;
    loop {
        let batch = {
            let mut pending = shared.lock_pending();
            loop {
                let ready = pending
                    .blocks
                    .front()
                    .is_some_and(|block| block.height <= pending.durable_through);
                if pending.stopping && !ready {
                    return;
                }
                let wait = last_write.map_or(Duration::ZERO, |last| {
                    WRITE_INTERVAL.saturating_sub(last.elapsed())
                });
                if ready && (pending.stopping || wait.is_zero()) {
                    break;
                }
                pending = if ready {
                    shared
                        .changed
                        .wait_timeout(pending, wait)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                } else {
                    shared
                        .changed
                        .wait(pending)
                        .unwrap_or_else(PoisonError::into_inner)
                };
            }
            let durable_through = pending.durable_through;
            pending
                .blocks
                .iter()
                .take_while(|block| block.height <= durable_through)
                .take(BLOCKS_PER_WRITE)
                .cloned()
                .collect::<Vec<_>>()
        };
        let written = shared.db.run(|db| write_blocks(db, &batch));
        last_write = Some(Instant::now());
        match written {
            Ok(()) => {
                let mut pending = shared.lock_pending();
                for block in &batch {
                    pending.blocks.pop_front();
                    for id in &block.transactions {
                        pending.heights.remove(id);
                    }
                }
            }
            // The guard logged the failure and reopens the file at a later write; the blocks
            // stay pending, so lookups still find them. A stopping index leaves them to the
            // next open, which writes every block above the watermark.
            Err(StorageError::Failed { .. }) => return,
            Err(_) if shared.lock_pending().stopping => return,
            Err(_) => {}
        }
    }
}

/// Writes `blocks` (consecutive, oldest first) and the watermark in one durable transaction.
fn write_blocks(db: &Database, blocks: &[IndexedBlock]) -> Result<(), StorageError> {
    let Some(last) = blocks.last() else {
        return Ok(());
    };
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate);
    {
        let mut table = txn.open_table(HEIGHT_BY_TRANSACTION_ID)?;
        for block in blocks {
            for id in &block.transactions {
                table.insert(id.as_bytes(), block.height.get())?;
            }
        }
        txn.open_table(METADATA)?.insert(
            INDEXED_THROUGH_KEY,
            encode_watermark(last.height, last.id).as_slice(),
        )?;
    }
    txn.commit()?;
    Ok(())
}

/// An opened index file that can serve the chain, with the height it holds every block up to.
type UsableIndex = ((Database, file::FileIdentity), BlockHeight);

/// The index file at `path` and its watermark when it can serve this chain, or why not (the
/// caller builds it again). Only what the caller cannot fix by building the file again is an
/// error: a file system that refuses, or something other than a file at the path.
fn open_usable(
    path: &Path,
    opening: &IndexOpening<'_>,
    failure: &FailureSlot,
) -> Result<Result<UsableIndex, String>, StorageError> {
    match file::existing_database(path) {
        Ok(true) => {}
        Ok(false) => return Ok(Err("there is no index file".to_owned())),
        Err(error @ (StorageError::EmptyFile { .. } | StorageError::NotADatabase { .. })) => {
            return Ok(Err(error.to_string()));
        }
        Err(error) => return Err(error),
    }
    let (mut db, identity) = match open_database(path, &opening.settings, failure, false) {
        Ok(opened) => opened,
        Err(StorageError::Open { source, .. })
            if matches!(
                *source,
                redb::Error::Io(_) | redb::Error::DatabaseAlreadyOpen
            ) =>
        {
            return Err(StorageError::Open {
                path: path.to_path_buf(),
                source,
            });
        }
        Err(error @ StorageError::InUse { .. }) => return Err(error),
        Err(error) => return Ok(Err(error.to_string())),
    };
    if opening.check == OpenCheck::Full
        && let Err(error) = super::check_integrity(&mut db, path)
    {
        return Ok(Err(error.to_string()));
    }
    let (height, id) = match stored_watermark(&db, opening.spec) {
        Ok(Ok(watermark)) => watermark,
        Ok(Err(reason)) => return Ok(Err(reason)),
        Err(error) => return Ok(Err(error.to_string())),
    };
    if height > opening.head.height() {
        return Ok(Err(format!(
            "it holds blocks up to height {height}, above the chain's head at {}",
            opening.head.height()
        )));
    }
    let on_chain = opening.chain.run(|chain| {
        let txn = chain.begin_read()?;
        block_in(&txn.open_table(BLOCKS)?, opening.spec, height)
    })?;
    if on_chain.as_ref().map(SealedBlock::id) != Some(id) {
        return Ok(Err(format!(
            "its block at height {height} is {id}, not the chain's"
        )));
    }
    Ok(Ok(((db, identity), height)))
}

/// The watermark of the index file, or why the file cannot index the chain of `spec`.
pub(crate) fn stored_watermark(
    db: &Database,
    spec: &ChainSpec,
) -> Result<Result<(BlockHeight, BlockId), String>, StorageError> {
    let txn = db.begin_read()?;
    let metadata = match txn.open_table(METADATA) {
        Ok(metadata) => metadata,
        Err(redb::TableError::TableDoesNotExist(_)) => {
            return Ok(Err("it holds no metadata".to_owned()));
        }
        Err(error) => return Err(error.into()),
    };
    let schema = metadata
        .get(SCHEMA_VERSION_KEY)?
        .and_then(|bytes| schema_version_from(bytes.value()));
    if schema != Some(INDEX_SCHEMA_VERSION) {
        return Ok(Err(format!(
            "its schema version is {schema:?}, this build writes {INDEX_SCHEMA_VERSION}"
        )));
    }
    let genesis = metadata
        .get(GENESIS_ID_KEY)?
        .and_then(|bytes| block_id_from(bytes.value()));
    let expected = spec.genesis_block().id();
    if genesis != Some(expected) {
        return Ok(Err(format!(
            "it indexes the chain with genesis {genesis:?}, this chain's genesis is {expected}"
        )));
    }
    Ok(metadata
        .get(INDEXED_THROUGH_KEY)?
        .and_then(|bytes| decode_watermark(bytes.value()))
        .ok_or_else(|| "it records no watermark".to_owned()))
}

/// Creates an empty index file at `path` (removing what is there) for this chain, holding the
/// genesis block (which has no transactions).
fn create(
    path: &Path,
    opening: &IndexOpening<'_>,
    failure: &FailureSlot,
) -> Result<(Database, file::FileIdentity), StorageError> {
    let refused = |error: std::io::Error| StorageError::Open {
        path: path.to_path_buf(),
        source: Box::new(redb::Error::Io(error)),
    };
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(refused(error)),
    }
    let (db, identity) = open_database(path, &opening.settings, failure, true)?;
    let genesis = opening.spec.genesis_block();
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate);
    {
        txn.open_table(HEIGHT_BY_TRANSACTION_ID)?;
        let mut metadata = txn.open_table(METADATA)?;
        metadata.insert(SCHEMA_VERSION_KEY, &INDEX_SCHEMA_VERSION.to_be_bytes()[..])?;
        metadata.insert(GENESIS_ID_KEY, &genesis.id().as_bytes()[..])?;
        metadata.insert(
            INDEXED_THROUGH_KEY,
            encode_watermark(genesis.height(), genesis.id()).as_slice(),
        )?;
    }
    txn.commit()?;
    Ok((db, identity))
}

/// Writes every block of the chain above `indexed_through` up to the head into the index, in
/// batches of [`BLOCKS_PER_WRITE`].
fn catch_up(
    db: &GuardedDatabase,
    opening: &IndexOpening<'_>,
    indexed_through: BlockHeight,
) -> Result<(), StorageError> {
    let head = opening.head.height().get();
    let mut next = indexed_through.get().saturating_add(1);
    if next > head {
        return Ok(());
    }
    let started = Instant::now();
    let missing = head - next + 1;
    // A few blocks are the normal start; more mean a rebuild, which the operator should see.
    let loud = missing > BLOCKS_PER_WRITE as u64;
    if loud {
        tracing::info!(
            path = %db.path().display(),
            from = next,
            to = head,
            "building the transaction index from the chain"
        );
    }
    while next <= head {
        let last = head.min(next.saturating_add(BLOCKS_PER_WRITE as u64 - 1));
        let blocks = opening.chain.run(|chain| {
            let txn = chain.begin_read()?;
            let table = txn.open_table(BLOCKS)?;
            (next..=last)
                .map(|height| {
                    let height = BlockHeight::new(height);
                    block_in(&table, opening.spec, height)?
                        .map(|block| IndexedBlock::of(&block))
                        .ok_or_else(|| StorageError::Inconsistent {
                            reason: format!("height {height} is missing below the head"),
                        })
                })
                .collect::<Result<Vec<_>, _>>()
        })?;
        db.run(|index| write_blocks(index, &blocks))?;
        next = last.saturating_add(1);
    }
    if loud {
        tracing::info!(
            path = %db.path().display(),
            blocks = missing,
            elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "transaction index built"
        );
    }
    Ok(())
}

/// The watermark as stored: height (8 bytes, big-endian) then block id (32).
fn encode_watermark(height: BlockHeight, id: BlockId) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(40);
    bytes.extend_from_slice(&height.get().to_be_bytes());
    bytes.extend_from_slice(id.as_bytes());
    bytes
}

/// The stored watermark, or `None` when the bytes are not one.
fn decode_watermark(bytes: &[u8]) -> Option<(BlockHeight, BlockId)> {
    let bytes = <&[u8; 40]>::try_from(bytes).ok()?;
    let height = u64::from_be_bytes(bytes[..8].try_into().ok()?);
    let id = block_id_from(&bytes[8..])?;
    Some((BlockHeight::new(height), id))
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests;
