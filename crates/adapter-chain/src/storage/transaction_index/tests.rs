//! Behaviour of the transaction index file beside the chain: what it holds after a close, and
//! how a store opens over an index file that is missing, behind, ahead, damaged, or was still
//! inside a chain file of schema 1.

use std::num::NonZeroU32;
use std::path::Path;

use poa_ports::ImportError;
use redb::{ReadableTableMetadata, TableHandle};
use tempfile::TempDir;

use super::*;
use crate::keys::AuthorityKey;
use crate::signer::Ed25519BlockSigner;
use crate::storage::tables::SCHEMA_VERSION;
use crate::storage::{ChainStore, CommitDurability, DATABASE_FILE_NAME};
use crate::test_support::{child_block, transactions};

/// A data directory with its spec and signer; the store is opened by each test.
struct Chain {
    dir: TempDir,
    spec: ChainSpec,
    signer: Ed25519BlockSigner,
}

impl Chain {
    fn new() -> Self {
        let key = AuthorityKey::generate();
        Self {
            dir: tempfile::tempdir().unwrap(),
            spec: ChainSpec::dev(key.public_key()),
            signer: Ed25519BlockSigner::new(key),
        }
    }

    fn open(&self) -> ChainStore {
        ChainStore::open(self.spec, self.dir.path()).unwrap()
    }

    /// Commits one block per entry of `rounds`, each holding those transactions; returns them.
    fn commit(&self, store: &ChainStore, rounds: &[&[&[u8]]]) -> Vec<SealedBlock> {
        rounds
            .iter()
            .map(|transactions| {
                let head = store.head().unwrap().block.header;
                let block = child_block(&self.signer, &head, transactions, |_| {});
                store.verify(&block).unwrap();
                store.commit(&block).unwrap();
                block
            })
            .collect()
    }

    /// Opens the store, commits `rounds` as [`Chain::commit`] does, and closes it again.
    fn commit_and_close(&self, rounds: &[&[&[u8]]]) -> Vec<SealedBlock> {
        let store = self.open();
        self.commit(&store, rounds)
    }

    fn index_file(&self) -> std::path::PathBuf {
        self.dir.path().join(TRANSACTION_INDEX_FILE_NAME)
    }

    fn chain_file(&self) -> std::path::PathBuf {
        self.dir.path().join(DATABASE_FILE_NAME)
    }
}

/// The watermark and the number of entries of a closed index file.
fn read_index_file(path: &Path) -> (BlockHeight, u64) {
    let db = Database::create(path).unwrap();
    let txn = db.begin_read().unwrap();
    let through = txn
        .open_table(METADATA)
        .unwrap()
        .get(INDEXED_THROUGH_KEY)
        .unwrap()
        .and_then(|bytes| decode_watermark(bytes.value()))
        .unwrap()
        .0;
    let entries = txn
        .open_table(HEIGHT_BY_TRANSACTION_ID)
        .unwrap()
        .len()
        .unwrap();
    (through, entries)
}

/// Asserts that every transaction of `blocks` is found at its block's height.
fn assert_every_transaction_found(store: &ChainStore, blocks: &[SealedBlock]) {
    for block in blocks {
        for transaction in &block.block.transactions {
            assert_eq!(
                store.transaction_height(&transaction.id()).unwrap(),
                Some(block.height()),
                "a transaction of the block at height {}",
                block.height()
            );
        }
    }
}

#[test]
fn drop__when_committed_blocks_are_pending__then_the_index_file_holds_them_up_to_the_head() {
    // given
    let chain = Chain::new();
    let store = chain.open();
    chain.commit(&store, &[&[b"a", b"b"], &[b"c"], &[b"d", b"e"]]);

    // when
    drop(store);

    // then
    assert_eq!(
        read_index_file(&chain.index_file()),
        (BlockHeight::new(3), 5)
    );
}

#[test]
fn drop__when_the_chain_has_not_fsynced_its_last_commits__then_the_index_file_stops_at_the_last_fsynced_block()
 {
    // given
    let chain = Chain::new();
    drop(chain.open());
    let durability = CommitDurability::Deferred {
        fsync_every: NonZeroU32::new(2).unwrap(),
    };
    let store = ChainStore::open_with_durability(chain.spec, chain.dir.path(), durability).unwrap();

    // when
    let blocks = chain.commit(&store, &[&[b"a"], &[b"b"], &[b"c"]]);
    assert_every_transaction_found(&store, &blocks);
    drop(store);

    // then
    assert_eq!(
        read_index_file(&chain.index_file()),
        (BlockHeight::new(2), 2),
        "the third commit was not fsynced: a crash could have taken it from the chain"
    );
    assert_every_transaction_found(&chain.open(), &blocks);
}

#[test]
fn open__when_the_index_file_is_unusable__then_builds_it_again_and_finds_every_transaction() {
    // Each case spoils the index file of a closed data directory.
    type Spoil = fn(&Chain);
    let cases: [(&str, Spoil); 4] = [
        ("missing", |chain| {
            std::fs::remove_file(chain.index_file()).unwrap();
        }),
        ("empty", |chain| {
            std::fs::write(chain.index_file(), b"").unwrap();
        }),
        ("not a database", |chain| {
            std::fs::write(chain.index_file(), vec![0x5a; 8192]).unwrap();
        }),
        ("of another chain", |chain| {
            let other = Chain::new();
            other.commit_and_close(&[&[b"a"]]);
            std::fs::copy(other.index_file(), chain.index_file()).unwrap();
        }),
    ];
    for (name, spoil) in cases {
        // given
        let chain = Chain::new();
        let blocks = chain.commit_and_close(&[&[b"a", b"b"], &[b"c"]]);
        spoil(&chain);

        // when
        let store = chain.open();

        // then
        assert_every_transaction_found(&store, &blocks);
        drop(store);
        assert_eq!(
            read_index_file(&chain.index_file()),
            (BlockHeight::new(2), 3),
            "{name}"
        );
    }
}

#[test]
fn open__when_the_index_file_is_behind_the_chain__then_finds_the_blocks_above_its_watermark() {
    // given
    let chain = Chain::new();
    let mut blocks = chain.commit_and_close(&[&[b"a"]]);
    let behind = std::fs::read(chain.index_file()).unwrap();
    blocks.extend(chain.commit_and_close(&[&[b"b", b"c"], &[b"d"]]));
    std::fs::write(chain.index_file(), behind).unwrap();
    assert_eq!(read_index_file(&chain.index_file()).0, BlockHeight::new(1));

    // when
    let store = chain.open();

    // then
    assert_every_transaction_found(&store, &blocks);
}

#[test]
fn commit__when_the_index_file_is_ahead_of_the_chain__then_transactions_above_the_head_are_not_committed()
 {
    // given: a chain file put back from before its second block, beside the index of both
    let chain = Chain::new();
    let first = chain.commit_and_close(&[&[b"a"]]);
    let older_chain = std::fs::read(chain.chain_file()).unwrap();
    chain.commit_and_close(&[&[b"b"]]);
    std::fs::write(chain.chain_file(), older_chain).unwrap();
    assert_eq!(read_index_file(&chain.index_file()).0, BlockHeight::new(2));

    // when
    let store = chain.open();
    let again = child_block(
        &chain.signer,
        &store.head().unwrap().block.header,
        &[b"b"],
        |_| {},
    );
    let committed = store.commit(&again);

    // then
    assert!(committed.is_ok(), "{committed:?}");
    assert_every_transaction_found(&store, &first);
    assert_every_transaction_found(&store, &[again]);
}

#[test]
fn commit__when_the_transaction_was_committed_before_a_reopen__then_refuses_the_repeat() {
    // given
    let chain = Chain::new();
    chain.commit_and_close(&[&[b"a"]]);
    let store = chain.open();
    let repeat = child_block(
        &chain.signer,
        &store.head().unwrap().block.header,
        &[b"b", b"a"],
        |_| {},
    );

    // when
    let verified = store.verify(&repeat);
    let committed = store.commit(&repeat);

    // then
    for result in [verified, committed] {
        assert!(
            matches!(result, Err(ImportError::DuplicateTransaction { .. })),
            "{result:?}"
        );
    }
    assert_eq!(store.head().unwrap().height(), BlockHeight::new(1));
    assert_eq!(
        store
            .transaction_height(&transactions(&[b"b"])[0].id())
            .unwrap(),
        None
    );
}

#[test]
fn open__when_the_chain_file_has_schema_1__then_upgrades_it_and_finds_every_transaction() {
    // given: a chain file as schema 1 wrote it, with the transaction index inside
    const SCHEMA_1_TRANSACTIONS: TableDefinition<&[u8; 32], u64> =
        TableDefinition::new("height_by_transaction_id");
    let chain = Chain::new();
    let blocks = chain.commit_and_close(&[&[b"a", b"b"], &[b"c"]]);
    std::fs::remove_file(chain.index_file()).unwrap();
    {
        let db = Database::create(chain.chain_file()).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(METADATA)
            .unwrap()
            .insert(SCHEMA_VERSION_KEY, &1u64.to_be_bytes()[..])
            .unwrap();
        {
            let mut table = txn.open_table(SCHEMA_1_TRANSACTIONS).unwrap();
            for block in &blocks {
                for transaction in &block.block.transactions {
                    table
                        .insert(transaction.id().as_bytes(), block.height().get())
                        .unwrap();
                }
            }
        }
        txn.commit().unwrap();
    }

    // when
    let store = chain.open();

    // then
    assert_every_transaction_found(&store, &blocks);
    drop(store);
    let db = Database::create(chain.chain_file()).unwrap();
    let txn = db.begin_read().unwrap();
    let schema = txn
        .open_table(METADATA)
        .unwrap()
        .get(SCHEMA_VERSION_KEY)
        .unwrap()
        .and_then(|bytes| schema_version_from(bytes.value()));
    assert_eq!(schema, Some(SCHEMA_VERSION));
    let tables: Vec<String> = txn
        .list_tables()
        .unwrap()
        .map(|table| table.name().to_owned())
        .collect();
    assert!(
        !tables.contains(&SCHEMA_1_TRANSACTIONS.name().to_owned()),
        "{tables:?}"
    );
}

mod faults;
