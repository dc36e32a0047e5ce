//! Pool transactions through production and commit: removed on commit, kept when a block is not
//! committed, never included twice.

#![allow(non_snake_case)]

use std::collections::HashSet;

use adapter_chain::BlockLimits;
use poa_ports::BlockImporter;
use poa_ports::Transaction;

use crate::support::{Node, assert_chain_links, chain_transactions, fresh_authority};

#[tokio::test]
async fn commit__when_block_holds_pool_transactions__then_they_leave_the_pool() {
    // given
    let dir = tempfile::tempdir().unwrap();
    let (spec, signer) = fresh_authority();
    let node = Node::open(spec, dir.path());
    node.submit(&[b"a", b"b"]);

    // when
    let block = node.produce_and_commit(&signer).await;

    // then
    assert_eq!(block.block.transactions.len(), 2);
    assert_eq!(node.pool.pending_count(), 0);
}

#[tokio::test]
async fn produce__when_previous_block_was_not_committed__then_next_block_carries_the_same_transactions()
 {
    // given
    let dir = tempfile::tempdir().unwrap();
    let (spec, signer) = fresh_authority();
    let node = Node::open(spec, dir.path());
    node.submit(&[b"a", b"b"]);
    let unpublished = node.produce_sealed(&signer).await;

    // when
    let retried = node.produce_and_commit(&signer).await;

    // then
    assert_eq!(retried.block.transactions, unpublished.block.transactions);
    assert_eq!(node.pool.pending_count(), 0);
}

#[tokio::test]
async fn produce__when_committed_transaction_is_resubmitted__then_it_is_dropped_not_included() {
    // given
    let dir = tempfile::tempdir().unwrap();
    let (spec, signer) = fresh_authority();
    let node = Node::open(spec, dir.path());
    node.submit(&[b"a"]);
    node.produce_and_commit(&signer).await;
    node.submit(&[b"a", b"b"]);

    // when
    let next = node.produce_and_commit(&signer).await;

    // then
    assert_eq!(
        next.block.transactions,
        vec![Transaction::new(b"b".to_vec())]
    );
    assert_eq!(node.pool.pending_count(), 0);
}

#[tokio::test]
async fn produce__when_pool_exceeds_block_limits__then_every_transaction_is_included_exactly_once()
{
    // given
    let dir = tempfile::tempdir().unwrap();
    let (spec, signer) = fresh_authority();
    let limits = BlockLimits {
        max_transactions: 4,
        max_bytes: 64,
    };
    let node = Node::open_with_block_limits(spec, dir.path(), limits);
    let submitted: Vec<Vec<u8>> = (0..20u8).map(|index| vec![index; 10]).collect();
    for bytes in &submitted {
        node.submit(&[bytes]);
    }

    // when
    let mut blocks = 0;
    while node.pool.pending_count() > 0 {
        let block = node.produce_and_commit(&signer).await;
        assert!(block.block.transactions.len() <= limits.max_transactions);
        blocks += 1;
        assert!(blocks <= 20, "production made no progress");
    }

    // then
    let included = chain_transactions(&assert_chain_links(&node.store));
    let expected: Vec<Transaction> = submitted.into_iter().map(Transaction::new).collect();
    assert_eq!(
        included, expected,
        "every transaction once, in arrival order"
    );
    let distinct: HashSet<_> = included.iter().map(Transaction::id).collect();
    assert_eq!(distinct.len(), included.len());
    assert_eq!(node.importer.latest_header().await.unwrap().height.get(), 5);
}
