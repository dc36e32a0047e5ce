//! Producing, sealing, verifying and committing a chain, and continuing it after a reopen.

#![allow(non_snake_case)]

use poa_ports::{BlockHeight, BlockImporter};

use crate::support::{Node, assert_chain_links, chain_transactions, fresh_authority};

#[tokio::test]
async fn produce_seal_verify_commit__when_repeated__then_chain_links_from_genesis_to_head() {
    // given
    let dir = tempfile::tempdir().unwrap();
    let (spec, signer) = fresh_authority();
    let node = Node::open(spec, dir.path());

    // when
    let mut produced = Vec::new();
    for round in 0..5u8 {
        node.submit(&[&[round, 1], &[round, 2]]);
        produced.push(node.produce_and_commit(&signer).await);
    }

    // then
    let chain = assert_chain_links(&node.store);
    assert_eq!(chain[1..], produced[..]);
    assert_eq!(
        node.importer.head().await.unwrap().height(),
        BlockHeight::new(5)
    );
    assert_eq!(
        node.importer.latest_header().await.unwrap(),
        produced[4].block.header
    );
    assert_eq!(chain_transactions(&chain).len(), 10);
    for transaction in chain_transactions(&chain) {
        assert!(node.importer.is_committed(transaction.id()).await.unwrap());
    }
    for pair in chain.windows(2) {
        assert!(pair[1].block.header.timestamp >= pair[0].block.header.timestamp);
    }
}

#[tokio::test]
async fn open__when_reopened__then_production_continues_from_the_head() {
    // given
    let dir = tempfile::tempdir().unwrap();
    let (spec, signer) = fresh_authority();
    let first_run = Node::open(spec, dir.path());
    for round in 0..3u8 {
        first_run.submit(&[&[round]]);
        first_run.produce_and_commit(&signer).await;
    }
    let head_before = first_run.importer.head().await.unwrap();
    drop(first_run);

    // when
    let second_run = Node::open(spec, dir.path());
    let head_after_reopen = second_run.importer.head().await.unwrap();
    second_run.submit(&[b"after reopen"]);
    let next = second_run.produce_and_commit(&signer).await;

    // then
    assert_eq!(head_after_reopen, head_before);
    assert_eq!(next.height(), BlockHeight::new(4));
    assert_eq!(next.block.header.parent_id, head_before.id());
    assert_eq!(assert_chain_links(&second_run.store).len(), 5);
}
