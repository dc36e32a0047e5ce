//! The chain file on disk under a running store: deleted or replaced while open.

#![allow(non_snake_case)]

use adapter_chain::{ChainStore, StorageError, StorageHealth};

use crate::support::{Node, assert_chain_links, fresh_authority};

#[tokio::test]
async fn commit__when_the_data_dir_is_deleted_while_open__then_refuses_commits_and_the_open_file_can_be_rescued()
 {
    // given
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let (spec, signer) = fresh_authority();
    let node = Node::open(spec, &data_dir);
    node.produce_and_commit(&signer).await;
    let chain = assert_chain_links(&node.store);
    let block = node.produce_sealed(&signer).await;

    // when
    std::fs::remove_dir_all(&data_dir).unwrap();
    let committed = node.store.commit(&block);

    // then
    let health = node.store.health().borrow().clone();
    let StorageHealth::Detached { cause } = &health else {
        panic!("expected a detached store, got {health:?}");
    };
    assert!(cause.contains("deleted"), "{cause}");
    let error = format!("{committed:?}");
    assert!(error.contains("Detached"), "{error}");
    assert_eq!(node.store.head().unwrap(), chain[1], "reads still served");
    // The runbook's rescue: copy the open file out of /proc, and it opens as the same chain.
    let proc_path = cause
        .split_whitespace()
        .find(|word| word.starts_with("/proc/"))
        .unwrap();
    let rescued = dir.path().join("rescued");
    std::fs::create_dir(&rescued).unwrap();
    std::fs::copy(proc_path, rescued.join(adapter_chain::DATABASE_FILE_NAME)).unwrap();
    let reopened = ChainStore::open(spec, &rescued).unwrap();
    assert_eq!(assert_chain_links(&reopened), chain);
}

#[tokio::test]
async fn commit__when_another_file_is_moved_over_the_path__then_refuses_commits() {
    // given
    let (dir, other_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (spec, signer) = fresh_authority();
    let node = Node::open(spec, dir.path());
    drop(ChainStore::open(spec, other_dir.path()).unwrap());
    let block = node.produce_sealed(&signer).await;

    // when
    std::fs::rename(
        other_dir.path().join(adapter_chain::DATABASE_FILE_NAME),
        node.store.path(),
    )
    .unwrap();
    let committed = node.store.commit(&block);

    // then
    assert!(
        matches!(&committed, Err(poa_ports::ImportError::Storage(error))
            if matches!(error.downcast_ref::<StorageError>(), Some(StorageError::Detached { .. }))),
        "{committed:?}"
    );
    let health = node.store.health().borrow().clone();
    assert!(
        matches!(&health, StorageHealth::Detached { cause } if cause.contains("another file")),
        "{health:?}"
    );
}
