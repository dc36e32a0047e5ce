//! The offline check of a data directory (`poa-node check-chain`): every page checksum of the
//! database file, then every block from genesis to the head: stored at its height, linked to
//! its parent, transactions matching the header, sealed by the chain's authority, and indexed
//! by its id and its transactions' ids at that height.
//!
//! It never writes the file: the database is opened through a copy-on-write overlay, and the
//! file's lock is taken, so a running node's file is refused rather than read half-written.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use poa_ports::{BlockHeight, BlockId};
use redb::{ReadableTable, ReadableTableMetadata};

use crate::error::StorageError;
use crate::genesis::ChainSpec;
use crate::keys::AuthorityPublicKey;
use crate::storage::tables::{
    BLOCKS, GENESIS_ID_KEY, HEIGHT_BY_BLOCK_ID, HEIGHT_BY_TRANSACTION_ID, METADATA, SPEC_KEY,
    block_id_from, decode_spec, decode_stored,
};
use crate::storage::{DATABASE_FILE_NAME, open_for_check};
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
    match catch_unwind(AssertUnwindSafe(|| db.check_integrity())) {
        Ok(Ok(true)) => {}
        Ok(Ok(false)) => {
            return Err(damaged(
                "page checksums or the allocator state do not match: the file needs a repair"
                    .to_owned(),
            ));
        }
        Ok(Err(error)) => return Err(damaged(format!("integrity check failed: {error}"))),
        Err(_) => {
            return Err(damaged(
                "the storage library panicked while checking it".to_owned(),
            ));
        }
    }
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
    let transaction_ids = txn.open_table(HEIGHT_BY_TRANSACTION_ID)?;
    let head = blocks
        .last()?
        .map(|(height, _)| height.value())
        .ok_or_else(|| damaged("no blocks".to_owned()))?;
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
            // Repeated transactions show up in the index check below, so the lookup says no.
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
        for transaction in &block.block.transactions {
            let indexed = transaction_ids
                .get(transaction.id().as_bytes())?
                .map(|found| found.value());
            if indexed != Some(height) {
                return Err(at(&format!(
                    "transaction {} is indexed at {indexed:?}",
                    transaction.id()
                )));
            }
        }
        transactions += block.block.transactions.len() as u64;
        parent = Some(block.block.header);
        progress(height + 1, head + 1);
    }
    if block_ids.len()? != head + 1 || transaction_ids.len()? != transactions {
        return Err(damaged(format!(
            "the indexes hold {} block ids and {} transaction ids for {} blocks and {transactions} transactions",
            block_ids.len()?,
            transaction_ids.len()?,
            head + 1
        )));
    }
    let head_id = parent.map(|header| header.id()).unwrap_or(stored_genesis);
    Ok(ChainCheckReport {
        path,
        spec,
        head: BlockHeight::new(head),
        head_id,
        transactions,
    })
}
