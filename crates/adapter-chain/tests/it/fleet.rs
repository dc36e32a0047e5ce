//! The fleet property: a block produced on one process's store verifies and commits on every
//! other store of the same spec, and on no store of another spec.

#![allow(non_snake_case)]

use adapter_chain::{AuthorityKey, ChainSpec};
use poa_ports::{BlockImporter, ImportError};

use crate::support::{Node, assert_chain_links, fresh_authority};

#[tokio::test]
async fn commit__when_block_comes_from_another_store_of_the_same_spec__then_both_hold_one_chain() {
    // given
    let (leader_dir, follower_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (spec, signer) = fresh_authority();
    let leader = Node::open(spec, leader_dir.path());
    let follower = Node::open(spec, follower_dir.path());
    assert_eq!(leader.store.genesis_id(), follower.store.genesis_id());

    // when
    for round in 0..3u8 {
        leader.submit(&[&[round]]);
        // The follower's pool also received the transaction (clients may send to any node).
        follower.submit(&[&[round]]);
        let block = leader.produce_and_commit(&signer).await;
        follower.importer.verify(&block).await.unwrap();
        follower.importer.commit(block).await.unwrap();
    }

    // then
    assert_eq!(
        assert_chain_links(&leader.store),
        assert_chain_links(&follower.store)
    );
    assert_eq!(follower.pool.pending_count(), 0);
}

#[tokio::test]
async fn verify__when_store_has_another_authority_with_same_chain_id_and_time__then_refuses() {
    // given
    let (dir, other_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (spec, signer) = fresh_authority();
    let other_spec = ChainSpec::dev(AuthorityKey::generate().public_key());
    let node = Node::open(spec, dir.path());
    let other = Node::open(other_spec, other_dir.path());
    let block = node.produce_and_commit(&signer).await;

    // when
    let verified = other.importer.verify(&block).await;
    let committed = other.importer.commit(block).await;

    // then
    assert_ne!(node.store.genesis_id(), other.store.genesis_id());
    assert!(
        matches!(verified, Err(ImportError::WrongParent { .. })),
        "{verified:?}"
    );
    assert!(
        matches!(committed, Err(ImportError::WrongParent { .. })),
        "{committed:?}"
    );
    assert_eq!(assert_chain_links(&other.store).len(), 1);
}
