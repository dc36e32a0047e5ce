//! [`TransactionIndex`]: which height committed each transaction, in a database file of its own
//! beside the chain file ([`TRANSACTION_INDEX_FILE_NAME`]), derived from the chain's blocks.
//!
//! Why a file of its own: transaction ids are hashes, so one block's entries land on as many
//! pages of an id-keyed index as it has transactions. Inside the chain file every commit's fsync
//! carried those pages (about four times the bytes of the block itself); here they are written
//! beside the commit, not inside it.
//!
//! A commit hands the block's transaction ids to the index ([`TransactionIndex::add`]): they are
//! pending, and a lookup finds them at once. The index's writer thread (`writer`) writes pending
//! blocks into the file in batches, at most one durable transaction per `WRITE_INTERVAL`, each
//! recording the height and id of the last block it holds (the watermark). The writer writes
//! only blocks the chain file has made durable, so the file never holds a block that a crash
//! could take from the chain.
//!
//! The file holds nothing the chain does not, so no failure of it is the chain's: when the store
//! opens, a file that is missing, damaged, of another chain or version, or ahead of the chain is
//! removed and built again from every block; at run time any failure of the file (an I/O error
//! such as a full disk, an error or a panic of redb) is logged, the file is dropped and removed,
//! and the writer builds it again from the chain, retrying with a backoff while it cannot. The
//! store's health never changes for it.
//!
//! A lookup is always answered from the chain's committed blocks, whatever state the file is in:
//! it asks the pending blocks, then the file for the blocks up to its watermark, then reads the
//! blocks in between (none while the file is current; every block while it is built again) from
//! the chain file. While the file is being built a lookup is correct but slower, in proportion to
//! the blocks the file does not hold yet.

mod writer;

use std::collections::{HashMap, HashSet, VecDeque};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::{
    Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard,
};
use std::thread::JoinHandle;

use poa_ports::{BlockHeight, BlockId, TransactionId};
use redb::{Database, Durability, TableDefinition};

use crate::SealedBlock;
use crate::error::StorageError;
use crate::genesis::ChainSpec;
use crate::metrics::StorageMetrics;
use crate::storage::OpenCheck;
use crate::storage::backend::FailureSlot;
use crate::storage::database::{
    GuardedDatabase, OpenSettings, error_chain, open_database, panic_message,
};
use crate::storage::file;
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
            .field("path", &self.shared.path)
            .field("pending_blocks", &self.shared.lock_pending().blocks.len())
            .finish_non_exhaustive()
    }
}

/// What the store and the writer thread share.
struct IndexShared {
    path: PathBuf,
    spec: ChainSpec,
    settings: OpenSettings,
    /// The chain file, which every block the index holds comes from.
    chain: Arc<GuardedDatabase>,
    file: RwLock<IndexFile>,
    pending: Mutex<Pending>,
    metrics: StorageMetrics,
    /// Signalled when a block is added, the file is dropped, or the index stops.
    changed: Condvar,
}

/// The index file as the index has it open.
struct IndexFile {
    /// `None` while the file is being built again.
    db: Option<Database>,
    /// The file holds every block up to this height (genesis while there is no file).
    indexed_through: BlockHeight,
    /// How many files were dropped: a failure is acted on only for the file it happened to.
    generation: u64,
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
    /// The highest block the index knows of: the head at open, then every block added.
    added_through: BlockHeight,
    stopping: bool,
}

impl Pending {
    /// The last height that only the file or the chain can answer for: the blocks above it are
    /// pending.
    fn unpending_through(&self) -> BlockHeight {
        self.blocks.front().map_or(self.added_through, |block| {
            BlockHeight::new(block.height.get().saturating_sub(1))
        })
    }
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
    pub(crate) chain: &'a Arc<GuardedDatabase>,
    /// The chain's head when the store opened.
    pub(crate) head: &'a SealedBlock,
    pub(crate) settings: OpenSettings,
    pub(crate) check: OpenCheck,
    /// The chain file was created by this opening.
    pub(crate) chain_created: bool,
    pub(crate) metrics: StorageMetrics,
}

impl TransactionIndex {
    /// Opens the index file in the data directory (built from the chain when it is missing or
    /// unusable, see the module documentation), writes the blocks it lacks up to the head, and
    /// starts its writer thread. A file that cannot be built or written now is left to the
    /// writer, which keeps trying; lookups are answered from the chain meanwhile.
    ///
    /// # Errors
    ///
    /// [`StorageError::InUse`] when another process has the file open,
    /// [`StorageError::NotARegularFile`] when something other than a file is at the path,
    /// [`StorageError::Open`] when the writer thread cannot start, or an error reading the
    /// chain.
    pub(crate) fn open(opening: IndexOpening<'_>) -> Result<Self, StorageError> {
        let path = opening.data_dir.join(TRANSACTION_INDEX_FILE_NAME);
        let (db, indexed_through) = match open_usable(&path, &opening)? {
            Ok((db, indexed_through)) => (Some(db), indexed_through),
            Err(reason) => {
                // A chain created just now has no index yet: nothing for the operator to see.
                if opening.chain_created {
                    tracing::debug!(
                        path = %path.display(),
                        reason = %reason,
                        "transaction index unusable: building it again from the chain"
                    );
                } else {
                    tracing::warn!(
                        path = %path.display(),
                        reason = %reason,
                        "transaction index unusable: building it again from the chain"
                    );
                }
                (None, BlockHeight::GENESIS)
            }
        };
        let head = opening.head.height();
        let shared = Arc::new(IndexShared {
            path: path.clone(),
            spec: *opening.spec,
            settings: opening.settings,
            chain: Arc::clone(opening.chain),
            file: RwLock::new(IndexFile {
                db,
                indexed_through,
                generation: 0,
            }),
            pending: Mutex::new(Pending {
                durable_through: head,
                added_through: head,
                ..Pending::default()
            }),
            changed: Condvar::new(),
            metrics: opening.metrics,
        });
        writer::build_at_open(&shared)?;
        let writer = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("transaction-index".to_owned())
                .spawn(move || writer::write_pending_blocks(&shared))
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
        pending.added_through = indexed.height;
        pending.blocks.push_back(indexed);
        drop(pending);
        self.shared.changed.notify_all();
    }

    /// The height of the block that committed this transaction, if any.
    ///
    /// # Errors
    ///
    /// Reading the chain file failed (a failure of the index file is not an error: the chain
    /// answers instead).
    pub(crate) fn height_of(
        &self,
        id: &TransactionId,
    ) -> Result<Option<BlockHeight>, StorageError> {
        Ok(self.shared.heights_of(&[*id])?.remove(id))
    }

    /// Those of `ids` that a committed block holds.
    ///
    /// # Errors
    ///
    /// As [`TransactionIndex::height_of`].
    pub(crate) fn committed_among(
        &self,
        ids: &[TransactionId],
    ) -> Result<HashSet<TransactionId>, StorageError> {
        Ok(self.shared.heights_of(ids)?.into_keys().collect())
    }

    /// Whether the index file holds every block handed to the index.
    #[cfg(test)]
    pub(crate) fn holds_every_block(&self) -> bool {
        let file = self.shared.read_file();
        file.db.is_some() && file.indexed_through >= self.shared.lock_pending().added_through
    }

    /// The index file.
    pub(crate) fn path(&self) -> &Path {
        &self.shared.path
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

    fn read_file(&self) -> RwLockReadGuard<'_, IndexFile> {
        self.file.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_file(&self) -> RwLockWriteGuard<'_, IndexFile> {
        self.file.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The heights of those of `ids` that committed blocks hold: from the pending blocks, then
    /// the file up to its watermark, then the chain for the blocks between the two.
    fn heights_of(
        &self,
        ids: &[TransactionId],
    ) -> Result<HashMap<TransactionId, BlockHeight>, StorageError> {
        let mut found = HashMap::new();
        // The writer removes a block from pending only once the file's watermark covers it, and
        // moves the watermark only while no lookup holds the file: what pending did not have,
        // the file up to its watermark or the chain above it has.
        let file = self.read_file();
        let (mut unknown, unpending_through) = {
            let pending = self.lock_pending();
            let unknown: Vec<TransactionId> = ids
                .iter()
                .filter(|id| match pending.heights.get(id) {
                    Some(height) => {
                        found.insert(**id, *height);
                        false
                    }
                    None => true,
                })
                .copied()
                .collect();
            (unknown, pending.unpending_through())
        };
        if unknown.is_empty() {
            return Ok(found);
        }
        let mut chain_from = file.indexed_through.get().saturating_add(1);
        let failed = match &file.db {
            Some(db) => match guarded(|| heights_in_file(db, &unknown)) {
                Ok(in_file) => {
                    unknown.retain(|id| !in_file.contains_key(id));
                    found.extend(in_file);
                    None
                }
                Err(cause) => Some((file.generation, cause)),
            },
            None => None,
        };
        // The chain is read without holding the file, so the writer is not held up meanwhile.
        drop(file);
        if let Some((generation, cause)) = failed {
            self.drop_file(generation, &cause);
            chain_from = BlockHeight::GENESIS.get().saturating_add(1);
        }
        if !unknown.is_empty() && chain_from <= unpending_through.get() {
            self.heights_in_chain(chain_from, unpending_through.get(), &unknown, &mut found)?;
        }
        Ok(found)
    }

    /// Adds to `found` those of `ids` that the chain's blocks `from..=through` hold.
    fn heights_in_chain(
        &self,
        from: u64,
        through: u64,
        ids: &[TransactionId],
        found: &mut HashMap<TransactionId, BlockHeight>,
    ) -> Result<(), StorageError> {
        let mut wanted: HashSet<TransactionId> = ids.iter().copied().collect();
        self.chain.run(|chain| {
            let txn = chain.begin_read()?;
            let blocks = txn.open_table(BLOCKS)?;
            for height in from..=through {
                let height = BlockHeight::new(height);
                let block = block_in(&blocks, &self.spec, height)?.ok_or_else(|| {
                    StorageError::Inconsistent {
                        reason: format!("height {height} is missing below the head"),
                    }
                })?;
                for transaction in &block.block.transactions {
                    let id = transaction.id();
                    if wanted.remove(&id) {
                        found.insert(id, height);
                    }
                }
                if wanted.is_empty() {
                    break;
                }
            }
            Ok(())
        })
    }

    /// Drops the index file after it failed (`cause`), unless it is no longer the one of
    /// `generation`, and removes it; the writer builds it again.
    fn drop_file(&self, generation: u64, cause: &str) {
        let db = {
            let mut file = self.write_file();
            if file.generation != generation || file.db.is_none() {
                return;
            }
            file.generation = file.generation.saturating_add(1);
            file.indexed_through = BlockHeight::GENESIS;
            file.db.take()
        };
        tracing::warn!(
            path = %self.path.display(),
            error = %cause,
            "transaction index failed: building it again from the chain"
        );
        self.metrics.record_index_failure();
        // Removed before the database is dropped: whatever dropping it writes goes to the
        // removed file. A removal that fails is tried again before the file is built again.
        let _ = remove_index_file(&self.path);
        if let Some(db) = db {
            let _ = catch_unwind(AssertUnwindSafe(move || drop(db)));
        }
        self.changed.notify_all();
    }
}

/// Runs an operation on the index file with every failure, a panic of redb included, as text.
fn guarded<T>(operation: impl FnOnce() -> Result<T, StorageError>) -> Result<T, String> {
    match catch_unwind(AssertUnwindSafe(operation)) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(error_chain(&error)),
        Err(panic) => Err(panic_message(&*panic)),
    }
}

/// Those of `ids` the file holds, with their heights.
fn heights_in_file(
    db: &Database,
    ids: &[TransactionId],
) -> Result<HashMap<TransactionId, BlockHeight>, StorageError> {
    let txn = db.begin_read()?;
    let table = txn.open_table(HEIGHT_BY_TRANSACTION_ID)?;
    let mut found = HashMap::new();
    for id in ids {
        if let Some(height) = table.get(id.as_bytes())? {
            found.insert(*id, BlockHeight::new(height.value()));
        }
    }
    Ok(found)
}

/// Removes the index file at `path`; a missing one is removed already.
fn remove_index_file(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
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

/// The index file at `path` and its watermark when it can serve this chain, or why not (it is
/// built again). Only what building the file again cannot fix is an error: another process
/// with the file open, something other than a file at the path, or the chain failing.
fn open_usable(
    path: &Path,
    opening: &IndexOpening<'_>,
) -> Result<Result<(Database, BlockHeight), String>, StorageError> {
    match file::existing_database(path) {
        Ok(true) => {}
        Ok(false) => return Ok(Err("there is no index file".to_owned())),
        Err(error @ StorageError::NotARegularFile { .. }) => return Err(error),
        Err(error) => return Ok(Err(error_chain(&error))),
    }
    let (mut db, _) = match open_database(path, &opening.settings, &FailureSlot::default(), false) {
        Ok(opened) => opened,
        Err(error @ StorageError::InUse { .. }) => return Err(error),
        Err(StorageError::Open { source, .. })
            if matches!(*source, redb::Error::DatabaseAlreadyOpen) =>
        {
            return Err(StorageError::InUse {
                path: path.to_path_buf(),
            });
        }
        Err(error) => return Ok(Err(error_chain(&error))),
    };
    if opening.check == OpenCheck::Full
        && let Err(error) = super::check_integrity(&mut db, path)
    {
        return Ok(Err(error.to_string()));
    }
    let (height, id) = match guarded(|| stored_watermark(&db, opening.spec)) {
        Ok(Ok(watermark)) => watermark,
        Ok(Err(reason)) | Err(reason) => return Ok(Err(reason)),
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
    Ok(Ok((db, height)))
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

/// Creates an empty index file at `path` (removing what is there) for the chain of `spec`,
/// holding the genesis block (which has no transactions).
fn create(
    path: &Path,
    settings: &OpenSettings,
    spec: &ChainSpec,
) -> Result<Database, StorageError> {
    remove_index_file(path).map_err(|error| StorageError::Open {
        path: path.to_path_buf(),
        source: Box::new(redb::Error::Io(error)),
    })?;
    let (db, _) = open_database(path, settings, &FailureSlot::default(), true)?;
    let genesis = spec.genesis_block();
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
    Ok(db)
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
