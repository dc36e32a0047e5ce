//! The offline check of a data directory (`poa-node check-chain`): every page checksum of the
//! chain file, then every block from genesis to the head: stored at its height, linked to its
//! parent, transactions matching the header, sealed by the chain's authority, and indexed by
//! its id at that height. Then the transaction index file, when it indexes this chain: its
//! page checksums, and every transaction of every block up to its watermark indexed at that
//! block's height. An index file that is missing, behind or of another chain is no damage: the
//! node builds it again from the chain when it starts.
//!
//! It never writes the files: the databases are opened through a copy-on-write overlay, and the
//! files' lock is taken, so a running node's file is refused rather than read half-written.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use poa_ports::{BlockHeight, BlockId};
use redb::{ReadableTable, ReadableTableMetadata};

use crate::error::StorageError;
use crate::genesis::ChainSpec;
use crate::keys::AuthorityPublicKey;
use crate::storage::tables::{
    BLOCKS, GENESIS_ID_KEY, HEIGHT_BY_BLOCK_ID, METADATA, SPEC_KEY, block_id_from, decode_spec,
    decode_stored,
};
use crate::storage::transaction_index::{HEIGHT_BY_TRANSACTION_ID, stored_watermark};
use crate::storage::{DATABASE_FILE_NAME, TRANSACTION_INDEX_FILE_NAME, open_for_check};
use crate::verify::verify_block;

/// What a check of a sound data directory found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainCheckReport {
    /// The database file.
    pub path: PathBuf,
    /// The chain's spec, as recorded in the file (or given).
    pub spec: ChainSpec,
    /// The head's height.
    pub head: BlockHeight,
    /// The head's id.
    pub head_id: BlockId,
    /// Transactions in all blocks.
    pub transactions: u64,
}

/// Checks the chain database in `data_dir`. `authority` is needed only for a file written
/// before the spec was recorded in it. `progress` is called with (checked, total) heights.
///
/// # Errors
///
/// [`StorageError::Corrupted`] naming the first problem (and its height), or the error that
/// kept the file from being read (missing, in use by a running node, not a database).
pub fn check_chain(
    data_dir: &Path,
    authority: Option<AuthorityPublicKey>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<ChainCheckReport, StorageError> {
    let path = data_dir.join(DATABASE_FILE_NAME);
    let damaged = |detail: String| StorageError::Corrupted {
        path: path.clone(),
        detail,
    };
    let mut db = open_for_check(&path)?;
    check_page_checksums(&mut db, &damaged)?;
    let txn = db.begin_read()?;
    let metadata = txn.open_table(METADATA)?;
    let stored_genesis = metadata
        .get(GENESIS_ID_KEY)?
        .and_then(|bytes| block_id_from(bytes.value()))
        .ok_or_else(|| damaged("no genesis id in the metadata".to_owned()))?;
    let recorded = metadata
        .get(SPEC_KEY)?
        .and_then(|bytes| decode_spec(bytes.value()));
    let blocks = txn.open_table(BLOCKS)?;
    let genesis = blocks
        .get(0)?
        .map(|bytes| crate::SealedBlock::decode(bytes.value()))
        .transpose()
        .map_err(|error| damaged(format!("the genesis block does not decode: {error}")))?
        .ok_or_else(|| damaged("no genesis block".to_owned()))?;
    let spec = match (recorded, authority) {
        (Some(spec), _) => spec,
        (None, Some(authority)) => ChainSpec {
            chain_id: genesis.block.header.chain_id,
            authority,
            genesis_time: genesis.block.header.timestamp,
        },
        (None, None) => {
            return Err(StorageError::Inconsistent {
                reason: format!(
                    "{} does not record its authority (written by an older build): give the authority public key",
                    path.display()
                ),
            });
        }
    };
    // The genesis id is derived from the spec: a recorded spec that does not derive it is damage.
    if spec.genesis_block().id() != stored_genesis {
        return Err(damaged(
            "the recorded chain spec does not derive the stored genesis id".to_owned(),
        ));
    }
    let block_ids = txn.open_table(HEIGHT_BY_BLOCK_ID)?;
    let head = blocks
        .last()?
        .map(|(height, _)| height.value())
        .ok_or_else(|| damaged("no blocks".to_owned()))?;
    let mut index = IndexCheck::open(data_dir, &spec, head)?;
    let mut parent = None;
    let mut transactions: u64 = 0;
    for height in 0..=head {
        let at = |problem: &str| damaged(format!("at height {height}: {problem}"));
        let bytes = blocks
            .get(height)?
            .ok_or_else(|| at("the block is missing below the head"))?;
        let block = decode_stored(&spec, BlockHeight::new(height), bytes.value())
            .map_err(|error| at(&error.to_string()))?;
        if let Some(parent) = &parent {
            // A repeated transaction shows up in the index check (it is indexed at one height
            // only), so the lookup says no.
            verify_block(&spec, parent, &block, |_| Ok(false)).map_err(|refusal| {
                at(&format!("the block does not extend its parent: {refusal}"))
            })?;
        }
        let indexed = block_ids
            .get(block.id().as_bytes())?
            .map(|found| found.value());
        if indexed != Some(height) {
            return Err(at(&format!("the block id index says {indexed:?}")));
        }
        transactions += block.block.transactions.len() as u64;
        index.check_block(&block)?;
        parent = Some(block.block.header);
        progress(height + 1, head + 1);
    }
    if block_ids.len()? != head + 1 {
        return Err(damaged(format!(
            "the block id index holds {} ids for {} blocks",
            block_ids.len()?,
            head + 1
        )));
    }
    index.finish()?;
    let head_id = parent.map(|header| header.id()).unwrap_or(stored_genesis);
    Ok(ChainCheckReport {
        path,
        spec,
        head: BlockHeight::new(head),
        head_id,
        transactions,
    })
}

/// redb's integrity check of an opened file; `damaged` words what it found.
fn check_page_checksums(
    db: &mut redb::Database,
    damaged: &dyn Fn(String) -> StorageError,
) -> Result<(), StorageError> {
    match catch_unwind(AssertUnwindSafe(|| db.check_integrity())) {
        Ok(Ok(true)) => Ok(()),
        Ok(Ok(false)) => Err(damaged(
            "page checksums or the allocator state do not match: the file needs a repair"
                .to_owned(),
        )),
        Ok(Err(error)) => Err(damaged(format!("integrity check failed: {error}"))),
        Err(_) => Err(damaged(
            "the storage library panicked while checking it".to_owned(),
        )),
    }
}

/// The check of the transaction index file, fed the chain's blocks in height order; see the
/// module documentation.
struct IndexCheck {
    path: PathBuf,
    /// The open file and its watermark, while it may index this chain.
    file: Option<(redb::Database, BlockHeight, BlockId)>,
    /// The first entry that does not match, reported only if the watermark block is the
    /// chain's (otherwise the file indexes another chain and is built again at start).
    mismatch: Option<String>,
    /// Transactions in the blocks up to the watermark.
    indexed: u64,
}

impl IndexCheck {
    /// Opens the index file in `data_dir`, when there is one that indexes the chain of `spec` up
    /// to at most `head`, and checks its page checksums.
    fn open(data_dir: &Path, spec: &ChainSpec, head: u64) -> Result<Self, StorageError> {
        let path = data_dir.join(TRANSACTION_INDEX_FILE_NAME);
        let mut check = Self {
            path,
            file: None,
            mismatch: None,
            indexed: 0,
        };
        let mut db = match open_for_check(&check.path) {
            Ok(db) => db,
            // Missing or not a database: the node builds it when it starts.
            Err(
                StorageError::Open { .. }
                | StorageError::EmptyFile { .. }
                | StorageError::NotADatabase { .. }
                | StorageError::Corrupted { .. },
            ) => return Ok(check),
            Err(error) => return Err(error),
        };
        check_page_checksums(&mut db, &|detail| check.damaged(detail))?;
        if let Ok((through, id)) = stored_watermark(&db, spec)?
            && through.get() <= head
        {
            check.file = Some((db, through, id));
        }
        Ok(check)
    }

    /// Checks that every transaction of `block` is indexed at its height, if the file holds it.
    fn check_block(&mut self, block: &crate::SealedBlock) -> Result<(), StorageError> {
        let Some((db, through, id)) = &self.file else {
            return Ok(());
        };
        let height = block.height();
        if height > *through {
            return Ok(());
        }
        if height == *through && block.id() != *id {
            // Another chain's index: the node builds it again.
            self.file = None;
            return Ok(());
        }
        let txn = db.begin_read()?;
        let table = txn.open_table(HEIGHT_BY_TRANSACTION_ID)?;
        for transaction in &block.block.transactions {
            let id = transaction.id();
            let found = table.get(id.as_bytes())?.map(|found| found.value());
            if found != Some(height.get()) && self.mismatch.is_none() {
                self.mismatch = Some(format!(
                    "transaction {id} of the block at height {height} is indexed at {found:?}"
                ));
            }
        }
        self.indexed += block.block.transactions.len() as u64;
        Ok(())
    }

    /// Reports the first mismatch, or a count of entries that differs from the transactions up
    /// to the watermark, when the file indexes this chain.
    fn finish(self) -> Result<(), StorageError> {
        let Some((db, through, _)) = &self.file else {
            return Ok(());
        };
        if let Some(mismatch) = &self.mismatch {
            return Err(self.damaged(mismatch.clone()));
        }
        let stored = db
            .begin_read()?
            .open_table(HEIGHT_BY_TRANSACTION_ID)?
            .len()?;
        if stored != self.indexed {
            return Err(self.damaged(format!(
                "it holds {stored} transaction ids for the {} transactions up to height {through}",
                self.indexed
            )));
        }
        Ok(())
    }

    fn damaged(&self, detail: String) -> StorageError {
        StorageError::Corrupted {
            path: self.path.clone(),
            detail: format!(
                "{detail}; the index holds nothing the chain does not: remove it (rm {}) and the node builds it again when it starts",
                self.path.display()
            ),
        }
    }
}
