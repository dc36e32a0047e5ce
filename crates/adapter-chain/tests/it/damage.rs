//! A damaged chain file: truncated, a zeroed page under committed blocks, one flipped byte in a
//! committed transaction. The store refuses to open it (naming the file and the fix) or refuses
//! to serve the damaged block, never panics, and the offline check finds the damage. The
//! offline check also finds a transaction index file that disagrees with the chain.

#![allow(non_snake_case)]

use std::path::Path;

use adapter_chain::{
    ChainStore, DATABASE_FILE_NAME, OpenCheck, StorageError, StoreOptions,
    TRANSACTION_INDEX_FILE_NAME, check_chain,
};
use poa_ports::BlockHeight;

use crate::support::{Node, assert_chain_links, fresh_authority};

/// A payload that appears in the file only inside the transaction of the block at height 3.
const MARKER: &[u8] = b"committed-transaction-marker-at-height-three";

/// A closed data directory holding a chain of 8 blocks; the block at height 3 carries
/// [`MARKER`]. Returns the spec to open it with.
async fn chain_of_eight(dir: &Path) -> adapter_chain::ChainSpec {
    let (spec, signer) = fresh_authority();
    let node = Node::open(spec, dir);
    for round in 1..=8u8 {
        if round == 3 {
            node.submit(&[MARKER]);
        } else {
            node.submit(&[&[round; 16]]);
        }
        node.produce_and_commit(&signer).await;
    }
    spec
}

/// Applies `damage` to every copy of [`MARKER`] in the file (redb copies pages on write, so
/// older copies may sit in free pages; one of them is the live one).
fn damage_marker(data_dir: &Path, damage: impl Fn(&mut [u8], usize)) {
    let path = data_dir.join(DATABASE_FILE_NAME);
    let mut bytes = std::fs::read(&path).unwrap();
    let found: Vec<usize> = bytes
        .windows(MARKER.len())
        .enumerate()
        .filter(|(_, window)| *window == MARKER)
        .map(|(offset, _)| offset)
        .collect();
    assert!(!found.is_empty(), "the marker is in the file");
    for offset in found {
        damage(&mut bytes, offset);
    }
    std::fs::write(&path, bytes).unwrap();
}

fn assert_names_the_file_and_the_fix(error: &StorageError, data_dir: &Path) {
    let message = error.to_string();
    assert!(
        message.contains(&data_dir.join(DATABASE_FILE_NAME).display().to_string()),
        "{message}"
    );
    assert!(
        message.contains("restore the file from a backup"),
        "{message}"
    );
    assert!(message.contains("move it aside"), "{message}");
}

#[tokio::test]
async fn open__when_the_file_is_truncated__then_refuses_naming_the_file_and_the_fix() {
    // given
    let dir = tempfile::tempdir().unwrap();
    let spec = chain_of_eight(dir.path()).await;
    let path = dir.path().join(DATABASE_FILE_NAME);
    let length = std::fs::metadata(&path).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(length / 2)
        .unwrap();

    // when
    let error = ChainStore::open(spec, dir.path()).unwrap_err();

    // then
    assert!(matches!(error, StorageError::Corrupted { .. }), "{error:?}");
    assert_names_the_file_and_the_fix(&error, dir.path());
}

#[tokio::test]
async fn open__when_a_page_under_committed_blocks_is_zeroed__then_refuses_naming_the_file_and_the_fix()
 {
    // given
    let dir = tempfile::tempdir().unwrap();
    let spec = chain_of_eight(dir.path()).await;
    damage_marker(dir.path(), |bytes, offset| {
        let page = offset / 4096 * 4096;
        bytes[page..page + 4096].fill(0);
    });

    // when
    let error = ChainStore::open(spec, dir.path()).unwrap_err();

    // then
    assert!(matches!(error, StorageError::Corrupted { .. }), "{error:?}");
    assert_names_the_file_and_the_fix(&error, dir.path());
}

#[tokio::test]
async fn open__when_a_byte_of_a_committed_transaction_is_flipped__then_refuses_and_the_check_finds_it()
 {
    // given
    let dir = tempfile::tempdir().unwrap();
    let spec = chain_of_eight(dir.path()).await;
    damage_marker(dir.path(), |bytes, offset| bytes[offset] ^= 0x01);

    // when
    let opened = ChainStore::open(spec, dir.path());
    let checked = check_chain(dir.path(), None, &mut |_, _| {});

    // then
    let error = opened.unwrap_err();
    assert!(matches!(error, StorageError::Corrupted { .. }), "{error:?}");
    assert_names_the_file_and_the_fix(&error, dir.path());
    let error = checked.unwrap_err();
    assert!(matches!(error, StorageError::Corrupted { .. }), "{error:?}");
}

#[tokio::test]
async fn block_at__when_a_flipped_transaction_byte_escapes_the_open_check__then_is_never_served_and_nothing_more_is_committed()
 {
    // given: the quick open check reads only the head, so the damage at height 3 gets past it
    let dir = tempfile::tempdir().unwrap();
    let spec = chain_of_eight(dir.path()).await;
    damage_marker(dir.path(), |bytes, offset| bytes[offset] ^= 0x01);
    let options = StoreOptions {
        open_check: OpenCheck::Quick,
        ..StoreOptions::default()
    };
    let store = ChainStore::open_with(spec, dir.path(), options).unwrap();

    // when
    let read = store.block_at(BlockHeight::new(3));

    // then
    let error = read.unwrap_err();
    assert!(matches!(error, StorageError::Corrupted { .. }), "{error:?}");
    assert!(error.to_string().contains("height 3"), "{error}");
    assert!(store.health().borrow().is_failed());
    assert!(matches!(store.head(), Err(StorageError::Failed { .. })));
}

#[tokio::test]
async fn check_chain__when_the_data_dir_is_sound__then_reports_the_head_and_every_transaction() {
    // given
    let dir = tempfile::tempdir().unwrap();
    let spec = chain_of_eight(dir.path()).await;
    let head = {
        let store = ChainStore::open(spec, dir.path()).unwrap();
        assert_chain_links(&store).pop().unwrap()
    };
    let before = std::fs::read(dir.path().join(DATABASE_FILE_NAME)).unwrap();
    let mut reported = Vec::new();

    // when
    let report = check_chain(dir.path(), None, &mut |done, total| {
        reported.push((done, total));
    })
    .unwrap();

    // then
    assert_eq!(report.head, BlockHeight::new(8));
    assert_eq!(report.head_id, head.id());
    assert_eq!(report.transactions, 8);
    assert_eq!(report.spec, spec);
    assert_eq!(reported.last(), Some(&(9, 9)));
    let after = std::fs::read(dir.path().join(DATABASE_FILE_NAME)).unwrap();
    assert!(before == after, "the check changed the file");
}

#[tokio::test]
async fn check_chain__when_a_node_has_the_file_open__then_refuses_naming_it() {
    // given
    let dir = tempfile::tempdir().unwrap();
    let spec = chain_of_eight(dir.path()).await;
    let _running = ChainStore::open(spec, dir.path()).unwrap();

    // when
    let error = check_chain(dir.path(), None, &mut |_, _| {}).unwrap_err();

    // then
    assert!(matches!(error, StorageError::InUse { .. }), "{error:?}");
}

#[tokio::test]
async fn check_chain__when_the_transaction_index_disagrees_with_the_chain__then_names_the_index_file_and_the_fix()
 {
    // given: one entry of the index file moved to another height, checksums intact
    const INDEX: redb::TableDefinition<&[u8; 32], u64> =
        redb::TableDefinition::new("height_by_transaction_id");
    let dir = tempfile::tempdir().unwrap();
    let spec = chain_of_eight(dir.path()).await;
    let moved = {
        let store = ChainStore::open(spec, dir.path()).unwrap();
        let chain = assert_chain_links(&store);
        chain[3].block.transactions[0].id()
    };
    let index = dir.path().join(TRANSACTION_INDEX_FILE_NAME);
    {
        let db = redb::Database::create(&index).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(INDEX)
            .unwrap()
            .insert(moved.as_bytes(), 5)
            .unwrap();
        txn.commit().unwrap();
    }

    // when
    let error = check_chain(dir.path(), None, &mut |_, _| {}).unwrap_err();

    // then
    assert!(matches!(error, StorageError::Corrupted { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains(&index.display().to_string()), "{message}");
    assert!(message.contains("height 3"), "{message}");
    assert!(message.contains("rm "), "{message}");
}
