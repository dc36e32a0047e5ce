//! [`ChainStore`]: the local chain, durable in a redb database file inside the data directory
//! ([`DATABASE_FILE_NAME`]), with the index of its transactions in a second one derived from it
//! ([`TRANSACTION_INDEX_FILE_NAME`], see `transaction_index`).
//!
//! The chain file's tables: sealed blocks by height (the wire encoding of `SealedBlock`), height
//! by block id, and metadata (schema version, genesis id, chain spec). The head is the last
//! entry of the blocks table, so there is no head pointer to get out of step.
//!
//! Every commit is one write transaction of the chain file that verifies the block against the
//! head it reads in that same transaction and then writes the block and its id: a crash leaves
//! either both or neither. Repeated transactions are looked up in the index before, under the
//! lock every commit holds, so no other commit comes between. By default every commit is
//! durable (fsync before `commit` returns); [`CommitDurability::Deferred`] fsyncs only every
//! n-th commit, for a producer whose committed blocks are also on a Redis quorum (see its
//! documentation for what a crash costs).
//!
//! The seal is checked once per block: `commit` skips the checks of a block's own contents
//! (transactions against the header, seal) when `verify` accepted that very block just before;
//! a seal the store's [`AuthoritySealVerifier`] found valid when the block was read from the
//! shared log is not checked again; and a stored head whose bytes are those the store last
//! checked is not checked again.
//!
//! Every method blocks on disk I/O. Async callers go through [`crate::RedbBlockImporter`] and
//! [`crate::PoolBlockProducer`], which run them under `spawn_blocking`.

mod backend;
mod database;
mod file;
mod health;
mod overlay;
pub(crate) mod tables;
pub(crate) mod transaction_index;

use std::collections::{HashSet, VecDeque};
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::SealedBlock;
use poa_ports::{BlockHeight, BlockId, ImportError, TransactionId};
use redb::{Durability, ReadableTable};
use tokio::sync::watch;

use crate::error::StorageError;
use crate::genesis::ChainSpec;
use crate::metrics::StorageMetrics;
use crate::seal_cache::SealCache;
use crate::seal_verifier::AuthoritySealVerifier;
use crate::verify::{verify_block_with_seals, verify_verified_block_extends};

pub use backend::BackendWrapper;
pub use database::RecoveryPolicy;
pub use health::StorageHealth;
pub use transaction_index::TRANSACTION_INDEX_FILE_NAME;

use backend::FailureSlot;
use database::{GuardedDatabase, OpenSettings, open_database};
use tables::{
    BLOCKS, HEIGHT_BY_BLOCK_ID, block_in, commit_genesis_or_check_it, decode_stored, insert_block,
};
use transaction_index::{IndexOpening, TransactionIndex};

/// Name of the database file inside the data directory.
pub const DATABASE_FILE_NAME: &str = "chain.redb";

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

/// How thoroughly an existing database is checked when the store opens it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OpenCheck {
    /// Every page checksum of the file (redb's integrity check: it reads the whole file, about
    /// 3 to 10 s per GiB of chain), then the head as below. The default.
    #[default]
    Full,
    /// Only the head: it decodes, its transactions match its header, its seal verifies and it
    /// links to the block below. Damage further down is still found when a block is read.
    Quick,
}

/// How a store opens its database: durability, cache, recovery from I/O errors, metrics.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// When committed blocks reach the disk.
    pub durability: CommitDurability,
    /// Upper bound of redb's page caches in bytes, three quarters for the chain file and one for
    /// the transaction index (a tenth of each buffers writes).
    pub cache_size_bytes: usize,
    /// Reopening after an I/O error.
    pub recovery: RecoveryPolicy,
    /// Builds the file backend of each opening of the chain file (tests inject faults here;
    /// the transaction index file always uses redb's own).
    pub backend: BackendWrapper,
    /// Where the store counts failures and reopens.
    pub metrics: StorageMetrics,
    /// How an existing database is checked at open.
    pub open_check: OpenCheck,
}

impl StoreOptions {
    /// The default cache bound. The hot data is the head and a few recent blocks, so a small
    /// cache serves it and keeps several processes on one machine from each claiming redb's
    /// own default of a gigabyte.
    pub const DEFAULT_CACHE_SIZE_BYTES: usize = 64 * 1024 * 1024;
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            durability: CommitDurability::Immediate,
            cache_size_bytes: Self::DEFAULT_CACHE_SIZE_BYTES,
            recovery: RecoveryPolicy::default(),
            backend: BackendWrapper::plain(),
            metrics: StorageMetrics::default(),
            open_check: OpenCheck::Full,
        }
    }
}

/// The local chain of one spec. Cheap to clone: clones share one open database.
#[derive(Debug, Clone)]
pub struct ChainStore {
    shared: Arc<Shared>,
}

/// How many blocks `verify` accepted that the store remembers until they are committed: the
/// domain service commits the block it verified last, a pipelined one a block or two later.
const VERIFIED_BLOCKS_REMEMBERED: usize = 4;

// Fields drop in order: the index (its writer thread and file) before the data directory lock.
#[derive(Debug)]
struct Shared {
    index: TransactionIndex,
    db: Arc<GuardedDatabase>,
    /// Held while the store is open: one process per data directory.
    _data_dir_lock: std::fs::File,
    spec: ChainSpec,
    genesis_id: BlockId,
    durability: CommitDurability,
    /// Commits since the last fsynced one (only with [`CommitDurability::Deferred`]), held
    /// for a whole commit so the count and the fsync decision never interleave with another.
    commits_since_fsync: Mutex<u32>,
    /// Blocks `verify` accepted, newest last, so that their commit does not check their
    /// contents and seal again. Compared whole: a block that differs in one byte is checked.
    verified: Mutex<VecDeque<SealedBlock>>,
    /// The head as last read or committed, with its stored bytes: a head read whose bytes are
    /// these is not decoded and checked again.
    head: Mutex<Option<CheckedHead>>,
    /// Seals found valid, shared with the store's [`AuthoritySealVerifier`].
    seals: Arc<SealCache>,
}

/// A stored head block with the bytes it was decoded from and checked.
#[derive(Debug)]
struct CheckedHead {
    bytes: Vec<u8>,
    block: SealedBlock,
}

impl ChainStore {
    /// Opens the chain in `data_dir` (created if missing), in the file
    /// [`DATABASE_FILE_NAME`], with the default [`StoreOptions`]. A new database is built under a
    /// temporary name with the spec's genesis block, committed durably, and renamed into place;
    /// an existing one is checked ([`OpenCheck`]) and must hold the same genesis. A database left
    /// by a crash is repaired by redb before this returns.
    ///
    /// # Errors
    ///
    /// [`StorageError::InUse`] when another process has the data directory;
    /// [`StorageError::DataDirNotADirectory`], [`StorageError::NotARegularFile`],
    /// [`StorageError::EmptyFile`] or [`StorageError::NotADatabase`] for a path that holds no
    /// chain (never replaced by a new one); [`StorageError::Corrupted`] for a damaged file;
    /// [`StorageError::ForeignChain`] when the data directory holds another chain;
    /// [`StorageError::UnsupportedSchema`] or [`StorageError::Inconsistent`] for a database this
    /// build cannot read; [`StorageError::Open`] when the file system refuses.
    pub fn open(spec: ChainSpec, data_dir: &Path) -> Result<Self, StorageError> {
        Self::open_with(spec, data_dir, StoreOptions::default())
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
        Self::open_with(
            spec,
            data_dir,
            StoreOptions {
                durability,
                ..StoreOptions::default()
            },
        )
    }

    /// Like [`ChainStore::open`], with `options`.
    ///
    /// # Errors
    ///
    /// As [`ChainStore::open`].
    pub fn open_with(
        spec: ChainSpec,
        data_dir: &Path,
        options: StoreOptions,
    ) -> Result<Self, StorageError> {
        Self::open_with_index_backend(spec, data_dir, options, BackendWrapper::plain())
    }

    /// Like [`ChainStore::open_with`], with `index_backend` building the backend of each
    /// opening of the transaction index file (the crate's tests inject faults there).
    pub(crate) fn open_with_index_backend(
        spec: ChainSpec,
        data_dir: &Path,
        options: StoreOptions,
        index_backend: BackendWrapper,
    ) -> Result<Self, StorageError> {
        let path = data_dir.join(DATABASE_FILE_NAME);
        let data_dir_lock = file::lock_data_dir(data_dir, &path)?;
        let index_cache = options.cache_size_bytes / 4;
        let chain_settings = OpenSettings {
            cache_size_bytes: options.cache_size_bytes - index_cache,
            backend: options.backend,
            recovery: options.recovery,
        };
        let index_settings = OpenSettings {
            cache_size_bytes: index_cache,
            backend: index_backend,
            recovery: options.recovery,
        };
        let failure = FailureSlot::default();
        let existed = file::existing_database(&path)?;
        if !existed {
            // Loud on purpose: expected on the first start of a data directory, anywhere else it
            // means the chain file was lost and this node starts over from genesis.
            tracing::warn!(
                path = %path.display(),
                genesis = %spec.genesis_block().id(),
                "no chain database at the path: creating a new chain from genesis"
            );
            file::create_atomically(&path, |creating| {
                let (db, _) =
                    open_database(creating, &chain_settings, &FailureSlot::default(), true)?;
                commit_genesis_or_check_it(&db, creating, &spec)
            })?;
        }
        let (mut db, identity) = open_database(&path, &chain_settings, &failure, false)?;
        if existed && options.open_check == OpenCheck::Full {
            check_integrity(&mut db, &path)?;
        }
        commit_genesis_or_check_it(&db, &path, &spec)?;
        let db = Arc::new(GuardedDatabase::new(
            path,
            (db, identity),
            chain_settings,
            failure,
            options.metrics.clone(),
        ));
        let head = db.run(|db| {
            let txn = db.begin_read()?;
            let blocks = txn.open_table(BLOCKS)?;
            let (height, bytes) = last_block(&blocks)?;
            decode_stored(&spec, height, bytes.value())
        })?;
        check_head_links(&db, &spec, &head)?;
        let index = TransactionIndex::open(IndexOpening {
            data_dir,
            spec: &spec,
            chain: &db,
            head: &head,
            settings: index_settings,
            check: options.open_check,
            chain_created: !existed,
            metrics: options.metrics,
        })?;
        // At `debug`: the embedding process tells the opening with what it knows beside.
        tracing::debug!(
            path = %db.path().display(),
            index = %index.path().display(),
            height = %head.height(),
            id = %head.id(),
            "chain store opened"
        );
        Ok(Self {
            shared: Arc::new(Shared {
                index,
                db,
                _data_dir_lock: data_dir_lock,
                spec,
                genesis_id: spec.genesis_block().id(),
                durability: options.durability,
                commits_since_fsync: Mutex::new(0),
                verified: Mutex::new(VecDeque::with_capacity(VERIFIED_BLOCKS_REMEMBERED)),
                head: Mutex::new(None),
                seals: Arc::new(SealCache::new(spec.authority)),
            }),
        })
    }

    /// The spec this chain was opened with.
    pub fn spec(&self) -> &ChainSpec {
        &self.shared.spec
    }

    /// The id of the genesis block.
    pub fn genesis_id(&self) -> BlockId {
        self.shared.genesis_id
    }

    /// The seal verifier of this chain for the shared log, sharing the seals it finds valid
    /// with this store: a block it checked when read from the log is not sealed-checked again
    /// when the store verifies it for import.
    pub fn seal_verifier(&self) -> AuthoritySealVerifier {
        AuthoritySealVerifier::sharing(self.shared.spec, Arc::clone(&self.shared.seals))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        self.shared.db.path()
    }

    /// When commits reach the disk.
    pub fn durability(&self) -> CommitDurability {
        self.shared.durability
    }

    /// A receiver of the store's health: every change (an I/O error, a reopen, giving up) is
    /// published on it.
    pub fn health(&self) -> watch::Receiver<StorageHealth> {
        self.shared.db.health()
    }

    /// The block with the greatest height (genesis at least).
    ///
    /// # Errors
    ///
    /// The database failed or holds an undecodable head.
    pub fn head(&self) -> Result<SealedBlock, StorageError> {
        // The head is read every cycle: a good moment to notice a deleted file, even on a node
        // that commits nothing. The open file still serves reads.
        let _detached = self.shared.db.ensure_attached();
        self.shared.db.run(|db| {
            let txn = db.begin_read()?;
            self.head_in(&txn.open_table(BLOCKS)?)
        })
    }

    /// The block with the greatest height in `blocks`, checked like every block read unless its
    /// bytes are those of the head the store last checked or committed.
    fn head_in(
        &self,
        blocks: &impl ReadableTable<u64, &'static [u8]>,
    ) -> Result<SealedBlock, StorageError> {
        let (height, bytes) = last_block(blocks)?;
        let bytes = bytes.value();
        if let Some(checked) = &*self.lock_head()
            && checked.bytes == bytes
        {
            return Ok(checked.block.clone());
        }
        let block = decode_stored(&self.shared.spec, height, bytes)?;
        self.remember_head(bytes.to_vec(), &block);
        Ok(block)
    }

    fn remember_head(&self, bytes: Vec<u8>, block: &SealedBlock) {
        *self.lock_head() = Some(CheckedHead {
            bytes,
            block: block.clone(),
        });
    }

    fn lock_head(&self) -> MutexGuard<'_, Option<CheckedHead>> {
        self.shared
            .head
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_verified(&self) -> MutexGuard<'_, VecDeque<SealedBlock>> {
        self.shared
            .verified
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The block at `height`, if committed.
    ///
    /// # Errors
    ///
    /// The database failed or holds an undecodable block there.
    pub fn block_at(&self, height: BlockHeight) -> Result<Option<SealedBlock>, StorageError> {
        self.shared.db.run(|db| {
            let txn = db.begin_read()?;
            block_in(&txn.open_table(BLOCKS)?, &self.shared.spec, height)
        })
    }

    /// The committed block with this id, if any.
    ///
    /// # Errors
    ///
    /// The database failed or is inconsistent.
    pub fn block_by_id(&self, id: BlockId) -> Result<Option<SealedBlock>, StorageError> {
        self.shared.db.run(|db| {
            let txn = db.begin_read()?;
            let Some(height) = txn.open_table(HEIGHT_BY_BLOCK_ID)?.get(id.as_bytes())? else {
                return Ok(None);
            };
            let height = BlockHeight::new(height.value());
            match block_in(&txn.open_table(BLOCKS)?, &self.shared.spec, height)? {
                Some(block) if block.id() == id => Ok(Some(block)),
                Some(block) => Err(StorageError::Inconsistent {
                    reason: format!(
                        "block {id} is indexed at height {height}, which holds block {}",
                        block.id()
                    ),
                }),
                None => Err(StorageError::Inconsistent {
                    reason: format!("block {id} is indexed at height {height}, which is empty"),
                }),
            }
        })
    }

    /// The height of the block that committed this transaction, if any. Answered from the
    /// transaction index, and from the chain's blocks while its file is built again (slower,
    /// never wrong).
    ///
    /// # Errors
    ///
    /// Reading the chain file failed (a failure of the index file is never an error: the index
    /// is built again from the chain).
    pub fn transaction_height(
        &self,
        id: &TransactionId,
    ) -> Result<Option<BlockHeight>, StorageError> {
        self.shared.index.height_of(id)
    }

    /// Whether a committed block holds this transaction.
    ///
    /// # Errors
    ///
    /// As [`ChainStore::transaction_height`].
    pub fn is_committed(&self, id: &TransactionId) -> Result<bool, StorageError> {
        Ok(self.transaction_height(id)?.is_some())
    }

    /// Those of `ids` that a committed block holds, read in one transaction.
    ///
    /// # Errors
    ///
    /// As [`ChainStore::transaction_height`].
    pub fn committed_among(
        &self,
        ids: &[TransactionId],
    ) -> Result<HashSet<TransactionId>, StorageError> {
        self.shared.index.committed_among(ids)
    }

    /// Verifies `block` as the next block on the current head (see
    /// [`crate::verify::verify_block`]). Changes nothing on disk; an accepted block is
    /// remembered, so that its commit checks only what depends on the head.
    ///
    /// # Errors
    ///
    /// Why the block is not acceptable, or [`ImportError::Storage`].
    pub fn verify(&self, block: &SealedBlock) -> Result<(), ImportError> {
        let repeated = self.committed_among(&transaction_ids(block))?;
        self.shared.db.run(|db| {
            let txn = db.begin_read()?;
            let head = self.head_in(&txn.open_table(BLOCKS)?)?;
            Ok(verify_block_with_seals(
                &self.shared.spec,
                &self.shared.seals,
                &head.block.header,
                block,
                |id| Ok(repeated.contains(id)),
            ))
        })??;
        let mut verified = self.lock_verified();
        if !verified.contains(block) {
            if verified.len() == VERIFIED_BLOCKS_REMEMBERED {
                verified.pop_front();
            }
            verified.push_back(block.clone());
        }
        Ok(())
    }

    /// Verifies `block` against the head read inside one write transaction, then writes the
    /// block and its id in that transaction and commits it with the store's
    /// [`CommitDurability`]; the transaction index has it at once. A block that no longer
    /// extends the head (another commit won the race) is refused like any invalid block. The
    /// block's own contents and seal are checked only if [`ChainStore::verify`] did not accept
    /// this very block before.
    ///
    /// # Errors
    ///
    /// Why the block is not acceptable, or [`ImportError::Storage`]; either way nothing was
    /// written.
    pub fn commit(&self, block: &SealedBlock) -> Result<(), ImportError> {
        // Every commit holds this lock; redb admits one writer at a time anyway. Holding it
        // across the lookup of repeated transactions and the index's update after the write
        // means no commit comes between the two.
        let mut commits_since_fsync = self
            .shared
            .commits_since_fsync
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.shared.db.ensure_attached()?;
        let fsync = match self.shared.durability {
            CommitDurability::Immediate => true,
            CommitDurability::Deferred { fsync_every } => {
                commits_since_fsync.saturating_add(1) >= fsync_every.get()
            }
        };
        let already_verified = {
            let mut verified = self.lock_verified();
            let position = verified.iter().position(|candidate| candidate == block);
            position
                .and_then(|position| verified.remove(position))
                .is_some()
        };
        let repeated = self.committed_among(&transaction_ids(block))?;
        let is_committed = |id: &TransactionId| Ok(repeated.contains(id));
        let encoded = block.encode();
        self.shared.db.run(|db| {
            let mut txn = db.begin_write()?;
            txn.set_durability(if fsync {
                Durability::Immediate
            } else {
                Durability::None
            });
            {
                let mut blocks = txn.open_table(BLOCKS)?;
                let mut block_ids = txn.open_table(HEIGHT_BY_BLOCK_ID)?;
                let head = self.head_in(&blocks)?;
                let verified = if already_verified {
                    verify_verified_block_extends(&head.block.header, block, is_committed)
                } else {
                    verify_block_with_seals(
                        &self.shared.spec,
                        &self.shared.seals,
                        &head.block.header,
                        block,
                        is_committed,
                    )
                };
                if verified.is_err() {
                    // Dropping the transaction aborts it: nothing is written.
                    return Ok(verified);
                }
                insert_block(&mut blocks, &mut block_ids, block, &encoded)?;
            }
            txn.commit()?;
            Ok(Ok(()))
        })??;
        self.shared.index.add(block, fsync);
        self.remember_head(encoded, block);
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

/// The ids of the block's transactions, in order.
fn transaction_ids(block: &SealedBlock) -> Vec<TransactionId> {
    block
        .block
        .transactions
        .iter()
        .map(|transaction| transaction.id())
        .collect()
}

/// The last entry of the blocks table: the head's height and its stored bytes.
fn last_block<'table>(
    blocks: &'table impl ReadableTable<u64, &'static [u8]>,
) -> Result<(BlockHeight, redb::AccessGuard<'table, &'static [u8]>), StorageError> {
    let Some((height, bytes)) = blocks.last()? else {
        return Err(StorageError::Inconsistent {
            reason: "no genesis block".to_owned(),
        });
    };
    Ok((BlockHeight::new(height.value()), bytes))
}

/// Checks that the head links to the block below it (the head itself is checked by every
/// read), so a store never produces on a head whose parent is missing or damaged.
fn check_head_links(
    db: &GuardedDatabase,
    spec: &ChainSpec,
    head: &SealedBlock,
) -> Result<(), StorageError> {
    let Some(below) = head.height().get().checked_sub(1) else {
        return Ok(());
    };
    let parent = db.run(|db| {
        let txn = db.begin_read()?;
        block_in(&txn.open_table(BLOCKS)?, spec, BlockHeight::new(below))
    })?;
    if parent.as_ref().map(SealedBlock::id) == Some(head.block.header.parent_id) {
        return Ok(());
    }
    Err(StorageError::Corrupted {
        path: db.path().to_path_buf(),
        detail: format!(
            "the head at height {} does not link to the block below it",
            head.height()
        ),
    })
}

/// redb's full integrity check, with a damaged file reported as [`StorageError::Corrupted`]
/// (a panic of redb included) and a repaired one logged.
fn check_integrity(db: &mut redb::Database, path: &Path) -> Result<(), StorageError> {
    let started = std::time::Instant::now();
    let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| db.check_integrity()));
    let damaged = |detail: String| StorageError::Corrupted {
        path: path.to_path_buf(),
        detail,
    };
    match checked {
        Ok(Ok(clean)) => {
            if !clean {
                tracing::warn!(
                    path = %path.display(),
                    "chain database failed its integrity check and was repaired: the newest blocks may be gone and are imported again"
                );
            }
            tracing::info!(
                path = %path.display(),
                elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                "chain database integrity checked"
            );
            Ok(())
        }
        Ok(Err(redb::DatabaseError::Storage(redb::StorageError::Corrupted(detail)))) => {
            Err(damaged(detail))
        }
        Ok(Err(error)) => Err(StorageError::Open {
            path: path.to_path_buf(),
            source: Box::new(error.into()),
        }),
        Err(_) => Err(damaged(
            "the storage library panicked while checking its integrity".to_owned(),
        )),
    }
}

/// Opens the database at `path` for the offline check: never created, never written (a
/// copy-on-write overlay keeps redb's writes in memory), refused while a node has it open.
pub(crate) fn open_for_check(path: &Path) -> Result<redb::Database, StorageError> {
    let settings = OpenSettings {
        cache_size_bytes: StoreOptions::DEFAULT_CACHE_SIZE_BYTES,
        backend: BackendWrapper::new(|file| Box::new(overlay::OverlayBackend::new(Box::new(file)))),
        recovery: RecoveryPolicy::default(),
    };
    if !file::existing_database(path)? {
        return Err(StorageError::Open {
            path: path.to_path_buf(),
            source: Box::new(redb::Error::Io(std::io::Error::from(
                std::io::ErrorKind::NotFound,
            ))),
        });
    }
    open_database(path, &settings, &FailureSlot::default(), false).map(|(db, _)| db)
}

impl From<StorageError> for ImportError {
    fn from(error: StorageError) -> Self {
        ImportError::Storage(Box::new(error))
    }
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests;
