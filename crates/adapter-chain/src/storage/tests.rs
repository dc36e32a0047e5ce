//! Behaviour of the redb chain store: genesis, commit checks, reopen, foreign chains.

use std::num::NonZeroU32;

use crate::Header;
use poa_ports::ChainId;
use tempfile::TempDir;

use super::*;
use crate::keys::AuthorityKey;
use crate::signer::Ed25519BlockSigner;
use crate::test_support::{child_block, transactions};
use redb::Database;
use tables::{METADATA, SCHEMA_VERSION_KEY};

/// A fresh store in a temporary data directory and the signer of its chain.
struct Fixture {
    dir: TempDir,
    spec: ChainSpec,
    signer: Ed25519BlockSigner,
    store: ChainStore,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let key = AuthorityKey::generate();
        let spec = ChainSpec::dev(key.public_key());
        let store = ChainStore::open(spec, dir.path()).unwrap();
        Self {
            dir,
            spec,
            signer: Ed25519BlockSigner::new(key),
            store,
        }
    }

    fn head_header(&self) -> Header {
        self.store.head().unwrap().block.header
    }

    fn next_block(&self, transactions: &[&[u8]]) -> SealedBlock {
        child_block(&self.signer, &self.head_header(), transactions, |_| {})
    }

    /// Drops the store, keeping its data directory.
    fn close(self) -> TempDir {
        let Self { dir, store, .. } = self;
        drop(store);
        dir
    }
}

#[test]
fn open__when_data_dir_is_new__then_genesis_is_the_head() {
    // given
    let dir = tempfile::tempdir().unwrap();
    let spec = ChainSpec::dev(AuthorityKey::dev().public_key());

    // when
    let store = ChainStore::open(spec, &dir.path().join("nested")).unwrap();

    // then
    let head = store.head().unwrap();
    assert_eq!(head, spec.genesis_block());
    assert_eq!(store.genesis_id(), head.id());
    assert_eq!(store.block_by_id(head.id()).unwrap(), Some(head));
    assert_eq!(
        store.path(),
        dir.path().join("nested").join(DATABASE_FILE_NAME)
    );
}

#[test]
fn commit__when_block_extends_head__then_every_read_finds_it() {
    // given
    let fixture = Fixture::new();
    let block = fixture.next_block(&[b"a", b"b"]);
    let a = transactions(&[b"a"])[0].id();

    // when
    fixture.store.commit(&block).unwrap();

    // then
    let store = &fixture.store;
    assert_eq!(store.head().unwrap(), block);
    assert_eq!(
        store.block_at(BlockHeight::new(1)).unwrap(),
        Some(block.clone())
    );
    assert_eq!(store.block_by_id(block.id()).unwrap(), Some(block));
    assert_eq!(
        store.transaction_height(&a).unwrap(),
        Some(BlockHeight::new(1))
    );
    assert!(store.is_committed(&a).unwrap());
    assert_eq!(store.block_at(BlockHeight::new(2)).unwrap(), None);
}

#[test]
fn commit__when_block_is_refused__then_nothing_is_written() {
    // Each case prepares the fixture and returns the block its commit must refuse.
    type RefusedBlock = fn(&Fixture) -> SealedBlock;
    let cases: Vec<(&str, RefusedBlock)> = vec![
        ("same block twice", |fixture| {
            let block = fixture.next_block(&[b"a"]);
            fixture.store.commit(&block).unwrap();
            block
        }),
        ("repeats a committed transaction", |fixture| {
            fixture.store.commit(&fixture.next_block(&[b"a"])).unwrap();
            fixture.next_block(&[b"b", b"a"])
        }),
        ("wrong chain", |fixture| {
            child_block(&fixture.signer, &fixture.head_header(), &[b"x"], |header| {
                header.chain_id = ChainId::new(42);
            })
        }),
        ("sealed by another key", |fixture| {
            let other = Ed25519BlockSigner::new(AuthorityKey::generate());
            child_block(&other, &fixture.head_header(), &[b"x"], |_| {})
        }),
    ];
    for (name, refused_block) in cases {
        // given
        let fixture = Fixture::new();
        let block = refused_block(&fixture);
        let head_before = fixture.store.head().unwrap();

        // when
        let result = fixture.store.commit(&block);

        // then
        assert!(result.is_err(), "case: {name}");
        assert_eq!(fixture.store.head().unwrap(), head_before, "case: {name}");
        let fresh_ids: Vec<TransactionId> = block
            .block
            .transactions
            .iter()
            .map(|transaction| transaction.id())
            .filter(|id| head_before.block.transactions.iter().all(|t| t.id() != *id))
            .collect();
        for id in &fresh_ids {
            let committed_at = fixture.store.transaction_height(id).unwrap();
            assert_ne!(committed_at, Some(block.height()), "case: {name}");
        }
    }
}

#[test]
fn commit__when_two_blocks_race_for_one_height__then_exactly_one_is_committed() {
    // given
    let fixture = Fixture::new();
    let first = fixture.next_block(&[b"a"]);
    let second = fixture.next_block(&[b"b"]);
    assert_ne!(first.id(), second.id());

    // when
    let results: Vec<Result<(), ImportError>> = std::thread::scope(|scope| {
        let racers: Vec<_> = [&first, &second]
            .map(|block| scope.spawn(|| fixture.store.commit(block)))
            .into_iter()
            .collect();
        racers
            .into_iter()
            .map(|racer| racer.join().unwrap())
            .collect()
    });

    // then
    let winners = results.iter().filter(|result| result.is_ok()).count();
    assert_eq!(winners, 1, "{results:?}");
    let loser = results
        .iter()
        .find_map(|result| result.as_ref().err())
        .unwrap();
    assert!(
        matches!(loser, ImportError::WrongHeight { .. }),
        "{loser:?}"
    );
    let head = fixture.store.head().unwrap();
    assert!(head == first || head == second);
    assert_eq!(head.height(), BlockHeight::new(1));
}

#[test]
fn commit__when_a_verified_block_lost_its_height_to_another__then_refuses_it() {
    // given: both blocks verified on the same head, so both are remembered as verified
    let fixture = Fixture::new();
    let first = fixture.next_block(&[b"a"]);
    let second = fixture.next_block(&[b"b"]);
    fixture.store.verify(&first).unwrap();
    fixture.store.verify(&second).unwrap();
    fixture.store.commit(&first).unwrap();

    // when
    let result = fixture.store.commit(&second);

    // then
    assert!(
        matches!(result, Err(ImportError::WrongHeight { .. })),
        "{result:?}"
    );
    assert_eq!(fixture.store.head().unwrap(), first);
}

#[test]
fn verify__when_block_extends_head__then_accepts_and_writes_nothing() {
    // given
    let fixture = Fixture::new();
    let block = fixture.next_block(&[b"a"]);

    // when
    let result = fixture.store.verify(&block);

    // then
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(fixture.store.head().unwrap().height(), BlockHeight::GENESIS);
}

#[test]
fn committed_among__when_some_ids_are_committed__then_returns_exactly_those() {
    // given
    let fixture = Fixture::new();
    fixture
        .store
        .commit(&fixture.next_block(&[b"a", b"b"]))
        .unwrap();
    let ids: Vec<TransactionId> = transactions(&[b"a", b"c", b"b"])
        .iter()
        .map(|transaction| transaction.id())
        .collect();

    // when
    let committed = fixture.store.committed_among(&ids).unwrap();

    // then
    assert_eq!(committed, HashSet::from([ids[0], ids[2]]));
}

#[test]
fn open__when_reopened_with_the_same_spec__then_continues_from_the_head() {
    // given
    let fixture = Fixture::new();
    let spec = fixture.spec;
    let block = fixture.next_block(&[b"a"]);
    fixture.store.commit(&block).unwrap();

    // when
    let dir = fixture.close();
    let store = ChainStore::open(spec, dir.path()).unwrap();

    // then
    assert_eq!(store.head().unwrap(), block);
    assert_eq!(store.genesis_id(), spec.genesis_block().id());
}

#[test]
fn commit__when_durability_is_deferred__then_blocks_are_read_at_once_and_survive_a_clean_reopen() {
    // given
    let Fixture {
        dir,
        spec,
        signer,
        store,
    } = Fixture::new();
    drop(store);
    let durability = CommitDurability::Deferred {
        fsync_every: NonZeroU32::new(3).unwrap(),
    };
    let store = ChainStore::open_with_durability(spec, dir.path(), durability).unwrap();

    // when
    let mut committed = Vec::new();
    for round in 0u8..5 {
        let head = store.head().unwrap().block.header;
        let block = child_block(&signer, &head, &[&[round]], |_| {});
        store.commit(&block).unwrap();
        assert_eq!(
            store.head().unwrap(),
            block,
            "round {round} reads its own commit"
        );
        committed.push(block);
    }
    drop(store);
    let reopened = ChainStore::open(spec, dir.path()).unwrap();

    // then
    assert_eq!(reopened.durability(), CommitDurability::Immediate);
    for block in &committed {
        assert_eq!(
            reopened.block_at(block.height()).unwrap().as_ref(),
            Some(block)
        );
    }
}

#[test]
fn open__when_data_dir_holds_another_chain__then_refuses_naming_the_path() {
    let base = ChainSpec::dev(AuthorityKey::dev().public_key());
    let others = [
        ChainSpec::dev(AuthorityKey::generate().public_key()),
        ChainSpec {
            chain_id: ChainId::new(5),
            ..base
        },
    ];
    for other in others {
        // given
        let dir = tempfile::tempdir().unwrap();
        drop(ChainStore::open(base, dir.path()).unwrap());

        // when
        let error = ChainStore::open(other, dir.path()).unwrap_err();

        // then
        assert!(
            matches!(error, StorageError::ForeignChain { .. }),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(message.contains("belongs to another chain"), "{message}");
        assert!(
            message.contains(&dir.path().display().to_string()),
            "{message}"
        );
    }
}

#[test]
fn open__when_already_open__then_refuses_naming_the_data_directory_and_no_flag() {
    // given
    let fixture = Fixture::new();

    // when
    let second = ChainStore::open(fixture.spec, fixture.dir.path());

    // then
    assert!(
        matches!(second, Err(StorageError::InUse { .. })),
        "{second:?}"
    );
    let message = second
        .err()
        .map(|error| error.to_string())
        .unwrap_or_default();
    assert!(message.contains("this data directory"), "{message}");
    assert!(!message.contains("--"), "{message}");
}

#[test]
fn open__when_schema_version_is_unknown__then_refuses() {
    // given
    let fixture = Fixture::new();
    let spec = fixture.spec;
    let path = fixture.store.path().to_path_buf();
    let dir = fixture.close();
    {
        let db = Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(METADATA)
            .unwrap()
            .insert(SCHEMA_VERSION_KEY, &99u64.to_be_bytes()[..])
            .unwrap();
        txn.commit().unwrap();
    }

    // when
    let result = ChainStore::open(spec, dir.path());

    // then
    assert!(
        matches!(
            result,
            Err(StorageError::UnsupportedSchema { found: 99, .. })
        ),
        "{result:?}"
    );
}
