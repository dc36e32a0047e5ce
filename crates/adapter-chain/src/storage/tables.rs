//! The tables of the chain database and the row-level helpers every store operation shares:
//! genesis and metadata, writing a block with its id, reading and decoding blocks.
//!
//! Only `storage` uses this module; it knows nothing of opening, reopening or health. Which
//! height committed each transaction is not here: `transaction_index` keeps it in a file of its
//! own, derived from these blocks.

use std::path::Path;

use crate::SealedBlock;
use poa_ports::{BlockHeight, BlockId, ChainId, Timestamp};
use redb::{Database, Durability, ReadableTable, ReadableTableMetadata, TableDefinition};

use crate::error::StorageError;
use crate::genesis::ChainSpec;
use crate::keys::AuthorityPublicKey;
use crate::verify::stored_block_problem;

/// Version of the table layout below; a database with another version is refused, not guessed.
/// Version 1 also held the transaction index ([`SCHEMA_1_TRANSACTIONS`]); opening such a file
/// drops that table and moves it to version 2 (the index file is built from the blocks).
pub(crate) const SCHEMA_VERSION: u64 = 2;

/// The schema version that kept the transaction index in the chain file.
const SCHEMA_1: u64 = 1;

pub(crate) const BLOCKS: TableDefinition<u64, &[u8]> = TableDefinition::new("blocks_by_height");
pub(crate) const HEIGHT_BY_BLOCK_ID: TableDefinition<&[u8; 32], u64> =
    TableDefinition::new("height_by_block_id");
/// The transaction index of schema 1, dropped when such a file is opened: every commit wrote one
/// entry per transaction at a random key, so its fsync carried a page per transaction.
const SCHEMA_1_TRANSACTIONS: TableDefinition<&[u8; 32], u64> =
    TableDefinition::new("height_by_transaction_id");
pub(crate) const METADATA: TableDefinition<&str, &[u8]> = TableDefinition::new("metadata");

pub(crate) const SCHEMA_VERSION_KEY: &str = "schema_version";
pub(crate) const GENESIS_ID_KEY: &str = "genesis_id";
/// When the store last reopened the database after an I/O error (unix milliseconds): written
/// to prove a reopened database takes durable writes.
pub(crate) const REOPENED_AT_KEY: &str = "reopened_at";
/// The chain spec (chain id, authority public key, genesis time): recorded so an offline check
/// can verify seals, and a foreign chain can be told apart by the setting that differs. It
/// certifies itself: the genesis id is derived from it.
pub(crate) const SPEC_KEY: &str = "chain_spec";

/// The spec as stored: chain id (8 bytes, big-endian), authority (32), genesis time (8).
pub(crate) fn encode_spec(spec: &ChainSpec) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(48);
    bytes.extend_from_slice(&spec.chain_id.get().to_be_bytes());
    bytes.extend_from_slice(spec.authority.as_bytes());
    bytes.extend_from_slice(&spec.genesis_time.as_unix_millis().to_be_bytes());
    bytes
}

/// The stored spec, or `None` when the bytes are not one.
pub(crate) fn decode_spec(bytes: &[u8]) -> Option<ChainSpec> {
    let bytes = <&[u8; 48]>::try_from(bytes).ok()?;
    let chain_id = u64::from_be_bytes(bytes[..8].try_into().ok()?);
    let authority = AuthorityPublicKey::from_bytes(bytes[8..40].try_into().ok()?).ok()?;
    let genesis_time = u64::from_be_bytes(bytes[40..].try_into().ok()?);
    Some(ChainSpec {
        chain_id: ChainId::new(chain_id),
        authority,
        genesis_time: Timestamp::from_unix_millis(genesis_time),
    })
}

/// Which settings of `stored` differ from `expected`, for an operator.
fn spec_difference(stored: Option<&ChainSpec>, expected: &ChainSpec) -> String {
    let Some(stored) = stored else {
        return "its chain id, authority and genesis time are not recorded in the file".to_owned();
    };
    let mut differences = Vec::new();
    if stored.chain_id != expected.chain_id {
        differences.push(format!(
            "chain id {} there, {} here",
            stored.chain_id, expected.chain_id
        ));
    }
    if stored.authority != expected.authority {
        differences.push(format!(
            "authority {} there, {} here",
            stored.authority, expected.authority
        ));
    }
    if stored.genesis_time != expected.genesis_time {
        differences.push(format!(
            "genesis time {} ms there, {} ms here",
            stored.genesis_time.as_unix_millis(),
            expected.genesis_time.as_unix_millis()
        ));
    }
    differences.join("; ")
}

/// On a new database, writes the genesis block, its index and the metadata in one durable
/// transaction; on an existing one, checks the schema version and that the genesis matches, and
/// moves a schema 1 file to the current schema.
pub(crate) fn commit_genesis_or_check_it(
    db: &Database,
    path: &Path,
    spec: &ChainSpec,
) -> Result<(), StorageError> {
    let genesis = &spec.genesis_block();
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate);
    {
        let mut metadata = txn.open_table(METADATA)?;
        let mut blocks = txn.open_table(BLOCKS)?;
        let mut block_ids = txn.open_table(HEIGHT_BY_BLOCK_ID)?;
        let stored_schema = metadata
            .get(SCHEMA_VERSION_KEY)?
            .map(|bytes| schema_version_from(bytes.value()));
        let stored_genesis = metadata
            .get(GENESIS_ID_KEY)?
            .map(|bytes| block_id_from(bytes.value()));
        match (stored_schema, stored_genesis) {
            (None, None) if blocks.is_empty()? => {
                insert_block(&mut blocks, &mut block_ids, genesis, &genesis.encode())?;
                metadata.insert(SCHEMA_VERSION_KEY, &SCHEMA_VERSION.to_be_bytes()[..])?;
                metadata.insert(GENESIS_ID_KEY, &genesis.id().as_bytes()[..])?;
                metadata.insert(SPEC_KEY, encode_spec(spec).as_slice())?;
                tracing::info!(path = %path.display(), id = %genesis.id(), "genesis committed");
            }
            (Some(Some(version @ (SCHEMA_1 | SCHEMA_VERSION))), Some(Some(stored)))
                if stored == genesis.id() =>
            {
                // Files written before the spec was recorded get it now.
                if metadata.get(SPEC_KEY)?.is_none() {
                    metadata.insert(SPEC_KEY, encode_spec(spec).as_slice())?;
                }
                if version == SCHEMA_1 {
                    drop((metadata, blocks, block_ids));
                    upgrade_from_schema_1(&txn, path)?;
                }
            }
            (Some(Some(SCHEMA_1 | SCHEMA_VERSION)), Some(Some(stored))) => {
                let stored_spec = metadata
                    .get(SPEC_KEY)?
                    .and_then(|bytes| decode_spec(bytes.value()));
                return Err(StorageError::ForeignChain {
                    path: path.to_path_buf(),
                    stored,
                    expected: genesis.id(),
                    difference: spec_difference(stored_spec.as_ref(), spec),
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

/// Drops the transaction index of a schema 1 file and records the current schema, inside the
/// caller's transaction. The index file is built from the blocks when the store opens it.
fn upgrade_from_schema_1(txn: &redb::WriteTransaction, path: &Path) -> Result<(), StorageError> {
    txn.delete_table(SCHEMA_1_TRANSACTIONS)?;
    txn.open_table(METADATA)?
        .insert(SCHEMA_VERSION_KEY, &SCHEMA_VERSION.to_be_bytes()[..])?;
    // Once per data directory: the operator sees why the first start after the upgrade reads
    // every block.
    tracing::info!(
        path = %path.display(),
        from = SCHEMA_1,
        to = SCHEMA_VERSION,
        "chain database upgraded: the transaction index moves to its own file"
    );
    Ok(())
}

/// Writes a block (as `encoded`) and its id. The caller has verified the block.
pub(crate) fn insert_block(
    blocks: &mut redb::Table<'_, u64, &'static [u8]>,
    block_ids: &mut redb::Table<'_, &'static [u8; 32], u64>,
    block: &SealedBlock,
    encoded: &[u8],
) -> Result<(), StorageError> {
    let height = block.height().get();
    blocks.insert(height, encoded)?;
    block_ids.insert(block.id().as_bytes(), height)?;
    Ok(())
}

/// The block at `height`, if any, checked like every block read.
pub(crate) fn block_in(
    blocks: &impl ReadableTable<u64, &'static [u8]>,
    spec: &ChainSpec,
    height: BlockHeight,
) -> Result<Option<SealedBlock>, StorageError> {
    blocks
        .get(height.get())?
        .map(|bytes| decode_stored(spec, height, bytes.value()))
        .transpose()
}

/// Decodes a stored block and checks that it is what was committed there (see
/// [`stored_block_problem`]): a damaged block is an error, never served.
pub(crate) fn decode_stored(
    spec: &ChainSpec,
    height: BlockHeight,
    bytes: &[u8],
) -> Result<SealedBlock, StorageError> {
    let block = SealedBlock::decode(bytes)
        .map_err(|source| StorageError::UndecodableBlock { height, source })?;
    match stored_block_problem(spec, height, &block) {
        None => Ok(block),
        Some(problem) => Err(StorageError::DamagedBlock { height, problem }),
    }
}

/// The stored schema version, or `None` when the bytes are not one.
pub(crate) fn schema_version_from(bytes: &[u8]) -> Option<u64> {
    <[u8; 8]>::try_from(bytes).ok().map(u64::from_be_bytes)
}

/// The stored genesis id, or `None` when the bytes are not one.
pub(crate) fn block_id_from(bytes: &[u8]) -> Option<BlockId> {
    <[u8; 32]>::try_from(bytes).ok().map(BlockId::from_bytes)
}
