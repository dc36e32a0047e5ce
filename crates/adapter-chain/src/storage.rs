//! [`ChainStore`]: the local chain, durable in one redb database file inside the data directory.
//!
//! Tables: sealed blocks by height (the wire encoding of `SealedBlock`), height by block id,
//! height by committed transaction id, and metadata (schema version and genesis id). The head
//! is the last entry of the blocks table, so there is no head pointer to get out of step.
//!
//! Every commit is one write transaction that verifies the block against the head it reads in
//! that same transaction and then writes the block and all its index entries: a crash leaves
//! either all of it or none. By default every commit is durable (fsync before `commit`
//! returns); [`CommitDurability::Deferred`] fsyncs only every n-th commit, for a producer whose
//! committed blocks are also on a Redis quorum (see its documentation for what a crash costs).
//!
//! Every method blocks on disk I/O. Async callers go through [`crate::RedbBlockImporter`] and
//! [`crate::PoolBlockProducer`], which run them under `spawn_blocking`.

use std::collections::HashSet;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use poa_ports::{BlockHeight, BlockId, ImportError, SealedBlock, TransactionId};
use redb::{Database, Durability, ReadableTable, ReadableTableMetadata, TableDefinition};

use crate::error::StorageError;
use crate::genesis::ChainSpec;
use crate::verify::verify_block;

/// Name of the database file inside the data directory.
pub const DATABASE_FILE_NAME: &str = "chain.redb";

/// Version of the table layout below; a database with another version is refused, not guessed.
const SCHEMA_VERSION: u64 = 1;

/// Upper bound of redb's page cache (its own default is 1 GiB). The hot data is the head and a
/// few recent blocks, so a small cache serves it and keeps several processes on one machine
/// from each claiming a gigabyte.
const CACHE_SIZE_BYTES: usize = 64 * 1024 * 1024;

const BLOCKS: TableDefinition<u64, &[u8]> = TableDefinition::new("blocks_by_height");
const HEIGHT_BY_BLOCK_ID: TableDefinition<&[u8; 32], u64> =
    TableDefinition::new("height_by_block_id");
const HEIGHT_BY_TRANSACTION_ID: TableDefinition<&[u8; 32], u64> =
    TableDefinition::new("height_by_transaction_id");
const METADATA: TableDefinition<&str, &[u8]> = TableDefinition::new("metadata");

const SCHEMA_VERSION_KEY: &str = "schema_version";
const GENESIS_ID_KEY: &str = "genesis_id";

/// When a committed block reaches the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CommitDurability {
    /// Every commit is fsynced before it returns: a crash loses nothing committed. The default.
    #[default]
    Immediate,
    /// Only every `fsync_every`-th commit is fsynced, and it makes every commit before it
    /// durable too; the others return as soon as readers see them, without waiting for the
    /// disk. A crash of the process or the machine can lose the last `fsync_every - 1`
    /// committed blocks: the chain reopens at an older head and imports them again.
    ///
    /// Only for a producer whose every committed block is also on a quorum of coordination
    /// nodes (it publishes before it commits, and imports only blocks found on a quorum), so
    /// that the lost tail can be imported again; never for a single node, whose lost tail
    /// would be gone for good and produced again differently. A clean shutdown loses nothing
    /// (closing the database makes every commit durable).
    Deferred {
        /// Fsync every this many commits (1 is the same as [`CommitDurability::Immediate`]).
        fsync_every: NonZeroU32,
    },
}

/// The local chain of one spec. Cheap to clone: clones share one open database.
#[derive(Debug, Clone)]
pub struct ChainStore {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    db: Database,
    spec: ChainSpec,
    genesis_id: BlockId,
    path: PathBuf,
    durability: CommitDurability,
    /// Commits since the last fsynced one (only with [`CommitDurability::Deferred`]), held
    /// for a whole commit so the count and the fsync decision never interleave with another.
    commits_since_fsync: Mutex<u32>,
}

impl ChainStore {
    /// Opens the chain in `data_dir` (created if missing), in the file
    /// [`DATABASE_FILE_NAME`]. A new database gets the spec's genesis block, committed durably;
    /// an existing one must hold the same genesis. A database left by a crash is repaired by
    /// redb before this returns.
    ///
    /// # Errors
    ///
    /// [`StorageError::Open`] when the directory or file cannot be created or opened (also when
    /// another process has it open); [`StorageError::ForeignChain`] when the data directory
    /// holds another chain; [`StorageError::UnsupportedSchema`] or
    /// [`StorageError::Inconsistent`] for a database this build cannot read.
    pub fn open(spec: ChainSpec, data_dir: &Path) -> Result<Self, StorageError> {
        Self::open_with_durability(spec, data_dir, CommitDurability::Immediate)
    }

    /// Like [`ChainStore::open`], committing blocks with `durability` (genesis is always
    /// committed durably).
    ///
    /// # Errors
    ///
    /// As [`ChainStore::open`].
    pub fn open_with_durability(
        spec: ChainSpec,
        data_dir: &Path,
        durability: CommitDurability,
    ) -> Result<Self, StorageError> {
        let path = data_dir.join(DATABASE_FILE_NAME);
        std::fs::create_dir_all(data_dir).map_err(|source| StorageError::Open {
            path: path.clone(),
            source: Box::new(redb::Error::Io(source)),
        })?;
        let repair_path = path.clone();
        let db = Database::builder()
            .set_cache_size(CACHE_SIZE_BYTES)
            .set_repair_callback(move |session| {
                // A full repair walks the whole file: on a long chain the operator should know
                // why startup is slow.
                tracing::warn!(
                    path = %repair_path.display(),
                    progress = session.progress(),
                    "repairing chain database after unclean shutdown"
                );
            })
            .create(&path)
            .map_err(|source| StorageError::Open {
                path: path.clone(),
                source: Box::new(source.into()),
            })?;
        let genesis = spec.genesis_block();
        let genesis_id = genesis.id();
        commit_genesis_or_check_it(&db, &path, &genesis)?;
        let store = Self {
            shared: Arc::new(Shared {
                db,
                spec,
                genesis_id,
                path,
                durability,
                commits_since_fsync: Mutex::new(0),
            }),
        };
        let head = store.head()?;
        tracing::info!(
            path = %store.path().display(),
            height = %head.height(),
            id = %head.id(),
            "chain store opened"
        );
        Ok(store)
    }

    /// The spec this chain was opened with.
    pub fn spec(&self) -> &ChainSpec {
        &self.shared.spec
    }

    /// The id of the genesis block.
    pub fn genesis_id(&self) -> BlockId {
        self.shared.genesis_id
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// When commits reach the disk.
    pub fn durability(&self) -> CommitDurability {
        self.shared.durability
    }

    /// The block with the greatest height (genesis at least).
    ///
    /// # Errors
    ///
    /// The database failed or holds an undecodable head.
    pub fn head(&self) -> Result<SealedBlock, StorageError> {
        let txn = self.shared.db.begin_read()?;
        head_in(&txn.open_table(BLOCKS)?)
    }

    /// The block at `height`, if committed.
    ///
    /// # Errors
    ///
    /// The database failed or holds an undecodable block there.
    pub fn block_at(&self, height: BlockHeight) -> Result<Option<SealedBlock>, StorageError> {
        let txn = self.shared.db.begin_read()?;
        block_in(&txn.open_table(BLOCKS)?, height)
    }

    /// The committed block with this id, if any.
    ///
    /// # Errors
    ///
    /// The database failed or is inconsistent.
    pub fn block_by_id(&self, id: BlockId) -> Result<Option<SealedBlock>, StorageError> {
        let txn = self.shared.db.begin_read()?;
        let Some(height) = txn.open_table(HEIGHT_BY_BLOCK_ID)?.get(id.as_bytes())? else {
            return Ok(None);
        };
        let height = BlockHeight::new(height.value());
        match block_in(&txn.open_table(BLOCKS)?, height)? {
            Some(block) => Ok(Some(block)),
            None => Err(StorageError::Inconsistent {
                reason: format!("block {id} is indexed at height {height}, which is empty"),
            }),
        }
    }

    /// The height of the block that committed this transaction, if any.
    ///
    /// # Errors
    ///
    /// The database failed.
    pub fn transaction_height(
        &self,
        id: &TransactionId,
    ) -> Result<Option<BlockHeight>, StorageError> {
        let txn = self.shared.db.begin_read()?;
        let height = txn
            .open_table(HEIGHT_BY_TRANSACTION_ID)?
            .get(id.as_bytes())?
            .map(|height| BlockHeight::new(height.value()));
        Ok(height)
    }

    /// Whether a committed block holds this transaction.
    ///
    /// # Errors
    ///
    /// The database failed.
    pub fn is_committed(&self, id: &TransactionId) -> Result<bool, StorageError> {
        Ok(self.transaction_height(id)?.is_some())
    }

    /// Those of `ids` that a committed block holds, read in one transaction.
    ///
    /// # Errors
    ///
    /// The database failed.
    pub fn committed_among(
        &self,
        ids: &[TransactionId],
    ) -> Result<HashSet<TransactionId>, StorageError> {
        let txn = self.shared.db.begin_read()?;
        let table = txn.open_table(HEIGHT_BY_TRANSACTION_ID)?;
        let mut committed = HashSet::new();
        for id in ids {
            if table.get(id.as_bytes())?.is_some() {
                committed.insert(*id);
            }
        }
        Ok(committed)
    }

    /// Verifies `block` as the next block on the current head (see
    /// [`crate::verify::verify_block`]). Changes nothing.
    ///
    /// # Errors
    ///
    /// Why the block is not acceptable, or [`ImportError::Storage`].
    pub fn verify(&self, block: &SealedBlock) -> Result<(), ImportError> {
        let txn = self.shared.db.begin_read().map_err(StorageError::from)?;
        let head = head_in(&txn.open_table(BLOCKS).map_err(StorageError::from)?)?;
        let transactions = txn
            .open_table(HEIGHT_BY_TRANSACTION_ID)
            .map_err(StorageError::from)?;
        verify_block(&self.shared.spec, &head.block.header, block, |id| {
            is_committed_in(&transactions, id)
        })
    }

    /// Verifies `block` against the head read inside one write transaction, then writes the
    /// block, its id index and its transaction index in that transaction and commits it with
    /// the store's [`CommitDurability`]. A block that no longer extends the head (another commit
    /// won the race) is refused like any invalid block.
    ///
    /// # Errors
    ///
    /// Why the block is not acceptable, or [`ImportError::Storage`]; either way nothing was
    /// written.
    pub fn commit(&self, block: &SealedBlock) -> Result<(), ImportError> {
        // Every commit holds this lock; redb admits one writer at a time anyway.
        let mut commits_since_fsync = self
            .shared
            .commits_since_fsync
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let fsync = match self.shared.durability {
            CommitDurability::Immediate => true,
            CommitDurability::Deferred { fsync_every } => {
                commits_since_fsync.saturating_add(1) >= fsync_every.get()
            }
        };
        let mut txn = self.shared.db.begin_write().map_err(StorageError::from)?;
        txn.set_durability(if fsync {
            Durability::Immediate
        } else {
            Durability::None
        });
        {
            let mut blocks = txn.open_table(BLOCKS).map_err(StorageError::from)?;
            let mut block_ids = txn
                .open_table(HEIGHT_BY_BLOCK_ID)
                .map_err(StorageError::from)?;
            let mut transactions = txn
                .open_table(HEIGHT_BY_TRANSACTION_ID)
                .map_err(StorageError::from)?;
            let head = head_in(&blocks)?;
            verify_block(&self.shared.spec, &head.block.header, block, |id| {
                is_committed_in(&transactions, id)
            })?;
            let insertion = insert_block(&mut blocks, &mut block_ids, &mut transactions, block)?;
            if insertion == Insertion::RepeatsCommittedTransaction {
                return Err(ImportError::DuplicateTransaction {
                    height: block.height(),
                });
            }
        }
        // Dropping the transaction on any error above aborts it: nothing is written.
        txn.commit().map_err(StorageError::from)?;
        *commits_since_fsync = if fsync {
            0
        } else {
            commits_since_fsync.saturating_add(1)
        };
        Ok(())
    }

    /// Runs a blocking store operation on tokio's blocking pool, so async callers never block a
    /// runtime worker on disk I/O. The operation completes even if the caller stops waiting.
    pub(crate) async fn run_blocking<T, E>(
        &self,
        operation: impl FnOnce(&ChainStore) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StorageError> + Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || operation(&store))
            .await
            .map_err(|error| E::from(StorageError::TaskFailed(error)))?
    }
}

impl From<StorageError> for ImportError {
    fn from(error: StorageError) -> Self {
        ImportError::Storage(Box::new(error))
    }
}

/// On a new database, writes the genesis block, its index and the metadata in one durable
/// transaction; on an existing one, checks the schema version and that the genesis matches.
fn commit_genesis_or_check_it(
    db: &Database,
    path: &Path,
    genesis: &SealedBlock,
) -> Result<(), StorageError> {
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate);
    {
        let mut metadata = txn.open_table(METADATA)?;
        let mut blocks = txn.open_table(BLOCKS)?;
        let mut block_ids = txn.open_table(HEIGHT_BY_BLOCK_ID)?;
        let mut transactions = txn.open_table(HEIGHT_BY_TRANSACTION_ID)?;
        let stored_schema = metadata
            .get(SCHEMA_VERSION_KEY)?
            .map(|bytes| schema_version_from(bytes.value()));
        let stored_genesis = metadata
            .get(GENESIS_ID_KEY)?
            .map(|bytes| block_id_from(bytes.value()));
        match (stored_schema, stored_genesis) {
            (None, None) if blocks.is_empty()? => {
                // Genesis has no transactions, so it cannot repeat one.
                insert_block(&mut blocks, &mut block_ids, &mut transactions, genesis)?;
                metadata.insert(SCHEMA_VERSION_KEY, &SCHEMA_VERSION.to_be_bytes()[..])?;
                metadata.insert(GENESIS_ID_KEY, &genesis.id().as_bytes()[..])?;
                tracing::info!(path = %path.display(), id = %genesis.id(), "genesis committed");
            }
            (Some(Some(SCHEMA_VERSION)), Some(Some(stored))) if stored == genesis.id() => {}
            (Some(Some(SCHEMA_VERSION)), Some(Some(stored))) => {
                return Err(StorageError::ForeignChain {
                    path: path.to_path_buf(),
                    stored,
                    expected: genesis.id(),
                });
            }
            (Some(Some(found)), _) => {
                return Err(StorageError::UnsupportedSchema {
                    path: path.to_path_buf(),
                    found,
                    supported: SCHEMA_VERSION,
                });
            }
            _ => {
                return Err(StorageError::Inconsistent {
                    reason: format!(
                        "{} has blocks but no valid genesis metadata",
                        path.display()
                    ),
                });
            }
        }
    }
    txn.commit()?;
    Ok(())
}

/// What writing a block into an open write transaction found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Insertion {
    /// The block and all its index entries are written.
    Written,
    /// A transaction id was already indexed: the transaction must be aborted, because
    /// committing it would rewrite where that transaction lives.
    RepeatsCommittedTransaction,
}

/// Writes a block and its index entries. The caller has verified the block; a transaction id
/// already indexed is still reported, as a last guard against rewriting history.
fn insert_block(
    blocks: &mut redb::Table<'_, u64, &'static [u8]>,
    block_ids: &mut redb::Table<'_, &'static [u8; 32], u64>,
    transactions: &mut redb::Table<'_, &'static [u8; 32], u64>,
    block: &SealedBlock,
) -> Result<Insertion, StorageError> {
    let height = block.height().get();
    blocks.insert(height, block.encode().as_slice())?;
    block_ids.insert(block.id().as_bytes(), height)?;
    for transaction in &block.block.transactions {
        if transactions
            .insert(transaction.id().as_bytes(), height)?
            .is_some()
        {
            return Ok(Insertion::RepeatsCommittedTransaction);
        }
    }
    Ok(Insertion::Written)
}

fn head_in(blocks: &impl ReadableTable<u64, &'static [u8]>) -> Result<SealedBlock, StorageError> {
    let Some((height, bytes)) = blocks.last()? else {
        return Err(StorageError::Inconsistent {
            reason: "no genesis block".to_owned(),
        });
    };
    decode_stored(BlockHeight::new(height.value()), bytes.value())
}

fn block_in(
    blocks: &impl ReadableTable<u64, &'static [u8]>,
    height: BlockHeight,
) -> Result<Option<SealedBlock>, StorageError> {
    blocks
        .get(height.get())?
        .map(|bytes| decode_stored(height, bytes.value()))
        .transpose()
}

fn is_committed_in(
    transactions: &impl ReadableTable<&'static [u8; 32], u64>,
    id: &TransactionId,
) -> Result<bool, ImportError> {
    let found = transactions
        .get(id.as_bytes())
        .map_err(StorageError::from)?;
    Ok(found.is_some())
}

fn decode_stored(height: BlockHeight, bytes: &[u8]) -> Result<SealedBlock, StorageError> {
    SealedBlock::decode(bytes).map_err(|source| StorageError::UndecodableBlock { height, source })
}

/// The stored schema version, or `None` when the bytes are not one.
fn schema_version_from(bytes: &[u8]) -> Option<u64> {
    <[u8; 8]>::try_from(bytes).ok().map(u64::from_be_bytes)
}

/// The stored genesis id, or `None` when the bytes are not one.
fn block_id_from(bytes: &[u8]) -> Option<BlockId> {
    <[u8; 32]>::try_from(bytes).ok().map(BlockId::from_bytes)
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests;
