//! Producing, sealing, verifying and committing a chain, and continuing it after a reopen.

#![allow(non_snake_case)]

use poa_ports::{BlockHeight, BlockImporter, Clock, ImportError};

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

#[tokio::test]
async fn verify__when_a_block_is_dated_beyond_the_clock_plus_the_allowed_skew__then_refuses_it() {
    // given: an importer that allows 2 s of skew, and blocks from a producer whose clock ran
    // ahead by a day and by one second
    let dir = tempfile::tempdir().unwrap();
    let (spec, signer) = fresh_authority();
    let node = Node::open(spec, dir.path());
    let importer = node.importer.clone().with_max_clock_skew(
        std::sync::Arc::new(adapter_chain::SystemClock),
        std::time::Duration::from_secs(2),
    );
    let parent = node.importer.latest_header().await.unwrap();
    let now = adapter_chain::SystemClock.now().as_unix_millis();
    let dated = |ahead_millis: u64| {
        let block = adapter_chain::Block {
            header: adapter_chain::Header {
                chain_id: parent.chain_id,
                height: parent.height.next().unwrap(),
                parent_id: parent.id(),
                timestamp: poa_ports::Timestamp::from_unix_millis(now + ahead_millis),
                transactions_root: adapter_chain::block::transactions_root(&[]),
                transaction_count: 0,
            },
            transactions: vec![],
        };
        poa_ports::BlockSigner::seal(&signer, block).unwrap()
    };

    // when
    let a_day_ahead = importer.verify(&dated(24 * 3_600_000)).await;
    let a_second_ahead = importer.verify(&dated(1_000)).await;

    // then
    assert!(
        matches!(
            a_day_ahead,
            Err(poa_ports::ImportError::TimestampInFuture { .. })
        ),
        "{a_day_ahead:?}"
    );
    a_second_ahead.unwrap();
}

#[tokio::test]
async fn verify_on_committing__when_the_parent_commit_has_not_ended__then_accepts_the_child_and_commits_in_order()
 {
    // given: block 1 (with "a") verified and published, its commit not begun; "b" pending too
    let dir = tempfile::tempdir().unwrap();
    let (spec, signer) = fresh_authority();
    let node = Node::open(spec, dir.path());
    node.submit(&[b"a"]);
    let one = node.produce_sealed(&signer).await;
    node.importer.verify(&one).await.unwrap();
    node.submit(&[b"b"]);

    // when: block 2 is produced and verified on block 1 before block 1 is committed, then
    // both are committed in height order
    let two = node.produce_sealed_on_committing(&signer, &one).await;
    let verified_before_the_commit = node.importer.verify_on_committing(&two, &one).await;
    node.importer.commit(one.clone()).await.unwrap();
    let verified_after_the_commit = node.importer.verify_on_committing(&two, &one).await;
    node.importer.commit(two.clone()).await.unwrap();

    // then: block 2 left "a" to block 1, and the chain links 0, 1, 2
    verified_before_the_commit.unwrap();
    verified_after_the_commit.unwrap();
    assert_eq!(two.block.header.parent_id, one.id());
    assert_eq!(
        two.block.transactions,
        vec![poa_ports::Transaction::new(b"b".to_vec())]
    );
    assert_eq!(assert_chain_links(&node.store)[1..], [one, two]);
}

#[tokio::test]
async fn verify_on_committing__when_the_child_repeats_a_transaction_of_the_parent__then_refuses_it()
{
    // given: block 1 with "a", not yet committed, and a block 2 on it that includes "a" again
    // (a producer that did not leave the parent's transactions out)
    let dir = tempfile::tempdir().unwrap();
    let (spec, signer) = fresh_authority();
    let node = Node::open(spec, dir.path());
    node.submit(&[b"a"]);
    let one = node.produce_sealed(&signer).await;
    let repeat = {
        let header = adapter_chain::Header {
            height: BlockHeight::new(2),
            parent_id: one.id(),
            ..one.block.header.clone()
        };
        let block = adapter_chain::Block {
            header,
            transactions: one.block.transactions.clone(),
        };
        poa_ports::BlockSigner::seal(&signer, block).unwrap()
    };

    // when
    let verified = node.importer.verify_on_committing(&repeat, &one).await;

    // then
    assert!(
        matches!(verified, Err(ImportError::DuplicateTransaction { .. })),
        "{verified:?}"
    );
}

#[tokio::test]
async fn verify_on_committing__when_the_parent_does_not_extend_the_local_head__then_refuses_the_child()
 {
    // given: block 1 committed, then a "committing" block that claims height 1 again
    let dir = tempfile::tempdir().unwrap();
    let (spec, signer) = fresh_authority();
    let node = Node::open(spec, dir.path());
    let stale = node.produce_sealed(&signer).await;
    node.submit(&[b"x"]);
    node.produce_and_commit(&signer).await;
    let child = node.produce_sealed_on_committing(&signer, &stale).await;

    // when
    let verified = node.importer.verify_on_committing(&child, &stale).await;

    // then
    assert!(
        matches!(verified, Err(ImportError::WrongParent { .. })),
        "{verified:?}"
    );
}
