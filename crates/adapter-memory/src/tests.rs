//! The fake's own contract, driven through the port as a producer would: the lease and its
//! epochs, fenced publish, reconciliation, and every fault switch.

use std::time::Duration;

use adapter_chain::block::transactions_root;
use adapter_chain::{Block, Header, ReferenceChain, Seal, SealedBlock};
use poa_ports::{
    BlockHeight, BlockId, BlockReconciliationPort, ChainHead, ChainId, Epoch, LeaderState,
    ReconciliationError, Signature, Timestamp,
};

use crate::{AppendError, MemoryBlockLog};

const GENESIS: ChainHead = ChainHead {
    height: BlockHeight::GENESIS,
    id: BlockId::from_bytes([0; 32]),
};

/// An empty block on `parent`; `salt` tells apart two blocks at one height.
fn block_on(parent: ChainHead, salt: u64) -> SealedBlock {
    let header = Header {
        chain_id: ChainId::new(1),
        height: parent.next_height().unwrap(),
        parent_id: parent.id,
        timestamp: Timestamp::from_unix_millis(salt),
        transactions_root: transactions_root(&[]),
        transaction_count: 0,
    };
    SealedBlock {
        block: Block {
            header,
            transactions: vec![],
        },
        seal: Seal::Authority(Signature::from_bytes([7; 64])),
    }
}

fn head_of(block: &SealedBlock) -> ChainHead {
    ChainHead::of(&block.block.header)
}

/// Blocks 1..=`to` linked from genesis.
fn chain_to(to: u64) -> Vec<SealedBlock> {
    let mut head = GENESIS;
    let mut blocks = Vec::new();
    for _ in 0..to {
        let block = block_on(head, 1);
        head = head_of(&block);
        blocks.push(block);
    }
    blocks
}

fn epoch(value: u64) -> Option<Epoch> {
    Some(Epoch::new(value))
}

#[tokio::test]
async fn leader_state__when_the_lease_is_free__then_the_first_producer_leads_at_epoch_one_and_the_other_follows()
 {
    // given
    let log = MemoryBlockLog::<ReferenceChain>::new();
    let first = log.producer();
    let second = log.producer();

    // when
    let first_state = first.leader_state(GENESIS).await.unwrap();
    let second_state = second.leader_state(GENESIS).await.unwrap();

    // then
    assert_eq!(first_state, LeaderState::ReconciledLeader);
    assert_eq!(second_state, LeaderState::ReconciledFollower);
    assert_eq!(first.lease_status().epoch, epoch(1));
    assert_eq!(second.lease_status().epoch, None);
    assert_eq!(log.lease_holder(), Some(first.id()));
}

#[tokio::test]
async fn leader_state__when_the_leader_cycles_again__then_renews_and_keeps_its_epoch() {
    // given
    let log = MemoryBlockLog::<ReferenceChain>::new();
    let leader = log.producer();
    leader.leader_state(GENESIS).await.unwrap();

    // when
    let state = leader.leader_state(GENESIS).await.unwrap();

    // then
    assert_eq!(state, LeaderState::ReconciledLeader);
    assert_eq!(leader.lease_status().epoch, epoch(1));
    assert_eq!(log.epoch(), Epoch::new(1));
}

#[tokio::test]
async fn leader_state__when_leadership_changes_hands__then_every_new_leadership_gets_a_higher_epoch()
 {
    // given
    let log = MemoryBlockLog::<ReferenceChain>::new();
    let first = log.producer();
    let second = log.producer();
    let mut epochs = Vec::new();

    // when: first, second, then first again lead, each releasing
    for producer in [&first, &second, &first] {
        assert_eq!(
            producer.leader_state(GENESIS).await.unwrap(),
            LeaderState::ReconciledLeader
        );
        epochs.push(producer.lease_status().epoch);
        producer.release().await.unwrap();
    }

    // then
    assert_eq!(epochs, vec![epoch(1), epoch(2), epoch(3)]);
    assert_eq!(log.lease_holder(), None);
    assert_eq!(first.lease_status().epoch, None);
}

#[tokio::test]
async fn publish__when_not_leading__then_is_no_epoch_and_a_genesis_block_is_exempt() {
    // given
    let log = MemoryBlockLog::<ReferenceChain>::new();
    let follower = log.producer();
    let block = block_on(GENESIS, 1);
    let mut genesis_sealed = SealedBlock {
        seal: Seal::Genesis,
        ..block.clone()
    };
    genesis_sealed.block.header.height = BlockHeight::GENESIS;

    // when
    let refused = follower.publish_produced_block(&block).await;
    let exempt = follower.publish_produced_block(&genesis_sealed).await;

    // then
    assert!(matches!(refused, Err(ReconciliationError::NoEpoch)));
    assert!(exempt.is_ok());
    assert_eq!(log.blocks(), vec![]);
}

#[tokio::test]
async fn publish__when_a_second_block_comes_at_a_height__then_is_height_taken_and_the_same_block_again_is_stored()
 {
    // given
    let log = MemoryBlockLog::<ReferenceChain>::new();
    let leader = log.producer();
    leader.leader_state(GENESIS).await.unwrap();
    let block = block_on(GENESIS, 1);
    leader.publish_produced_block(&block).await.unwrap();

    // when
    let again = leader.publish_produced_block(&block).await;
    let other = leader.publish_produced_block(&block_on(GENESIS, 2)).await;

    // then
    assert!(again.is_ok());
    assert!(matches!(
        other,
        Err(ReconciliationError::HeightTaken { height }) if height == BlockHeight::new(1)
    ));
    assert_eq!(log.blocks(), vec![block]);
    assert_eq!(log.epoch_at(BlockHeight::new(1)), Some(Epoch::new(1)));
}

#[tokio::test]
async fn publish__when_the_lease_lapsed_and_another_leads__then_the_old_leader_is_fenced_and_the_log_keeps_one_block_per_height()
 {
    // given: the first led, froze past its lease, and the second took over
    let log = MemoryBlockLog::<ReferenceChain>::new();
    let first = log.producer();
    let second = log.producer();
    first.leader_state(GENESIS).await.unwrap();
    log.expire_lease();
    assert_eq!(
        second.leader_state(GENESIS).await.unwrap(),
        LeaderState::ReconciledLeader
    );
    let winner = block_on(GENESIS, 2);
    second.publish_produced_block(&winner).await.unwrap();

    // when: the old leader, still believing it leads, publishes at the same height
    let late = first.publish_produced_block(&block_on(GENESIS, 1)).await;

    // then
    assert!(matches!(late, Err(ReconciliationError::Fenced { .. })));
    assert_eq!(log.blocks(), vec![winner]);
    assert_eq!(log.epoch_at(BlockHeight::new(1)), Some(Epoch::new(2)));
}

#[tokio::test]
async fn leader_state__when_another_producer_published__then_a_follower_gets_the_blocks_above_its_head_in_order()
 {
    // given
    let log = MemoryBlockLog::<ReferenceChain>::new();
    let leader = log.producer();
    let follower = log.producer();
    leader.leader_state(GENESIS).await.unwrap();
    let blocks = chain_to(3);
    for block in &blocks {
        leader.publish_produced_block(block).await.unwrap();
    }

    // when
    let from_genesis = follower.leader_state(GENESIS).await.unwrap();
    let from_one = follower.follower_state(head_of(&blocks[0])).await.unwrap();
    let from_top = follower.leader_state(head_of(&blocks[2])).await.unwrap();

    // then
    assert_eq!(
        from_genesis,
        LeaderState::UnreconciledBlocks(blocks.clone())
    );
    assert_eq!(
        from_one,
        LeaderState::UnreconciledBlocks(blocks[1..].to_vec())
    );
    assert_eq!(from_top, LeaderState::ReconciledFollower);
}

#[tokio::test]
async fn leader_state__when_a_new_leadership_finds_a_backlog__then_hands_it_back_before_it_may_produce()
 {
    // given: a producer the test does not run published two blocks and stopped
    let log = MemoryBlockLog::<ReferenceChain>::new();
    let blocks = chain_to(2);
    log.append_backlog(blocks.clone()).unwrap();
    let producer = log.producer();

    // when
    let first = producer.leader_state(GENESIS).await.unwrap();
    let after_import = producer.leader_state(head_of(&blocks[1])).await.unwrap();

    // then
    assert_eq!(first, LeaderState::UnreconciledBlocks(blocks));
    assert_eq!(after_import, LeaderState::ReconciledLeader);
    assert_eq!(producer.lease_status().epoch, epoch(2));
}

#[tokio::test]
async fn leader_state__when_the_next_block_does_not_extend_the_head__then_reports_the_divergence() {
    // given: the log holds a chain, the producer's head at height 1 is another block
    let log = MemoryBlockLog::<ReferenceChain>::new();
    let blocks = chain_to(2);
    log.append_backlog(blocks.clone()).unwrap();
    let own_head = head_of(&block_on(GENESIS, 9));
    let producer = log.producer();

    // when
    let as_leader = producer.leader_state(own_head).await;
    let as_follower = log.producer().follower_state(own_head).await;

    // then
    for answer in [as_leader, as_follower] {
        assert!(matches!(
            answer,
            Err(ReconciliationError::Diverged { height, block })
                if height == BlockHeight::new(2) && block == blocks[1].id()
        ));
    }
}

#[tokio::test]
async fn leader_state__when_the_next_height_is_missing_below_blocks_of_the_log__then_reports_the_gap()
 {
    // given: the log holds heights 1 and 3 only
    let log = MemoryBlockLog::<ReferenceChain>::new();
    let blocks = chain_to(3);
    log.append_backlog([blocks[0].clone(), blocks[2].clone()])
        .unwrap();
    let producer = log.producer();

    // when
    let at_one = producer.leader_state(head_of(&blocks[0])).await;

    // then
    assert!(matches!(
        at_one,
        Err(ReconciliationError::HistoryGap { next_height }) if next_height == BlockHeight::new(2)
    ));
}

#[tokio::test]
async fn leader_state__when_a_new_leadership_is_ahead_of_the_log__then_reports_that_the_log_lost_blocks()
 {
    // given: the local chain reaches height 2, the log only height 1
    let log = MemoryBlockLog::<ReferenceChain>::new();
    let blocks = chain_to(2);
    log.append_backlog([blocks[0].clone()]).unwrap();
    let producer = log.producer();

    // when
    let answer = producer.leader_state(head_of(&blocks[1])).await;
    let as_follower = log.producer().follower_state(head_of(&blocks[1])).await;

    // then: the leader is told, a follower has nothing to import
    assert!(matches!(
        answer,
        Err(ReconciliationError::LogBehindHead { head, log_top })
            if head == BlockHeight::new(2) && log_top == Some(BlockHeight::new(1))
    ));
    assert_eq!(as_follower.unwrap(), LeaderState::ReconciledFollower);
}

#[tokio::test]
async fn lose_lease_before_next_publish__when_armed__then_the_publish_is_fenced_writes_nothing_and_the_next_leadership_has_a_higher_epoch()
 {
    // given
    let log = MemoryBlockLog::<ReferenceChain>::new();
    let leader = log.producer();
    leader.leader_state(GENESIS).await.unwrap();
    leader.lose_lease_before_next_publish();

    // when
    let fenced = leader.publish_produced_block(&block_on(GENESIS, 1)).await;
    let next = leader.leader_state(GENESIS).await.unwrap();

    // then
    assert!(matches!(fenced, Err(ReconciliationError::Fenced { .. })));
    assert_eq!(log.blocks(), vec![]);
    assert_eq!(next, LeaderState::ReconciledLeader);
    assert_eq!(leader.lease_status().epoch, epoch(2));
    leader
        .publish_produced_block(&block_on(GENESIS, 1))
        .await
        .unwrap();
}

#[tokio::test]
async fn refuse_next_publish__when_armed__then_one_publish_fails_without_a_quorum_and_writes_nothing()
 {
    // given
    let log = MemoryBlockLog::<ReferenceChain>::new();
    let leader = log.producer();
    leader.leader_state(GENESIS).await.unwrap();
    leader.refuse_next_publish();
    let block = block_on(GENESIS, 1);

    // when
    let refused = leader.publish_produced_block(&block).await;
    let empty_after_refusal = log.blocks().is_empty();
    let retried = leader.publish_produced_block(&block).await;

    // then
    assert!(matches!(
        refused,
        Err(ReconciliationError::NoQuorum {
            operation: "publish",
            ..
        })
    ));
    assert!(empty_after_refusal);
    assert!(retried.is_ok());
    assert_eq!(log.blocks(), vec![block]);
}

#[tokio::test]
async fn lose_next_publish_reply__when_armed__then_the_block_is_on_the_log_and_the_next_cycle_hands_it_back()
 {
    // given
    let log = MemoryBlockLog::<ReferenceChain>::new();
    let leader = log.producer();
    leader.leader_state(GENESIS).await.unwrap();
    leader.lose_next_publish_reply();
    let block = block_on(GENESIS, 1);

    // when: the outcome is unknown, so the producer commits nothing and asks again
    let unknown = leader.publish_produced_block(&block).await;
    let next = leader.leader_state(GENESIS).await.unwrap();

    // then
    assert!(matches!(unknown, Err(ReconciliationError::NoQuorum { .. })));
    assert_eq!(log.blocks(), vec![block.clone()]);
    assert_eq!(next, LeaderState::UnreconciledBlocks(vec![block]));
}

#[tokio::test]
async fn time_out_next_call__when_armed_on_a_leader__then_the_cycle_fails_and_the_next_leadership_gets_a_higher_epoch()
 {
    // given
    let log = MemoryBlockLog::<ReferenceChain>::new();
    let leader = log.producer();
    let other = log.producer();
    leader.leader_state(GENESIS).await.unwrap();
    leader.time_out_next_call();

    // when
    let timed_out = leader.leader_state(GENESIS).await;
    let not_leading = leader.publish_produced_block(&block_on(GENESIS, 1)).await;
    let other_state = other.leader_state(GENESIS).await.unwrap();
    let again = leader.leader_state(GENESIS).await.unwrap();

    // then: the renewal was lost with the call; the lease stayed on the log, so the same
    // producer leads again, in a new leadership
    assert!(matches!(
        timed_out,
        Err(ReconciliationError::NoQuorum { .. })
    ));
    assert!(matches!(not_leading, Err(ReconciliationError::NoEpoch)));
    assert_eq!(other_state, LeaderState::ReconciledFollower);
    assert_eq!(again, LeaderState::ReconciledLeader);
    assert_eq!(leader.lease_status().epoch, epoch(2));
}

#[tokio::test]
async fn time_out_next_call__when_armed_before_a_release__then_the_lease_stays_until_it_lapses() {
    // given
    let log = MemoryBlockLog::<ReferenceChain>::new();
    let leader = log.producer();
    let other = log.producer();
    leader.leader_state(GENESIS).await.unwrap();
    leader.time_out_next_call();

    // when
    leader.release().await.unwrap();
    let before_expiry = other.leader_state(GENESIS).await.unwrap();
    log.expire_lease();
    let after_expiry = other.leader_state(GENESIS).await.unwrap();

    // then
    assert_eq!(leader.lease_status().epoch, None);
    assert_eq!(before_expiry, LeaderState::ReconciledFollower);
    assert_eq!(after_expiry, LeaderState::ReconciledLeader);
    assert_eq!(other.lease_status().epoch, epoch(2));
}

#[tokio::test(start_paused = true)]
async fn with_lease_ttl__when_the_leader_stops_renewing_for_the_ttl__then_another_producer_leads() {
    // given
    let ttl = Duration::from_secs(3);
    let log = MemoryBlockLog::<ReferenceChain>::new().with_lease_ttl(ttl);
    let leader = log.producer();
    let other = log.producer();
    leader.leader_state(GENESIS).await.unwrap();

    // when: the leader renews once inside the TTL, then stops
    tokio::time::advance(Duration::from_secs(2)).await;
    leader.leader_state(GENESIS).await.unwrap();
    tokio::time::advance(Duration::from_secs(2)).await;
    let still_held = other.leader_state(GENESIS).await.unwrap();
    let valid_for = leader.lease_status().valid_for;
    tokio::time::advance(Duration::from_secs(1)).await;
    let lapsed = other.leader_state(GENESIS).await.unwrap();

    // then
    assert_eq!(still_held, LeaderState::ReconciledFollower);
    assert_eq!(valid_for, Some(Duration::from_secs(1)));
    assert_eq!(lapsed, LeaderState::ReconciledLeader);
    assert!(matches!(
        leader.publish_produced_block(&block_on(GENESIS, 1)).await,
        Err(ReconciliationError::Fenced { .. })
    ));
}

#[tokio::test]
async fn append_backlog__when_a_leader_holds_the_lease__then_its_next_publish_is_fenced() {
    // given
    let log = MemoryBlockLog::<ReferenceChain>::new();
    let leader = log.producer();
    leader.leader_state(GENESIS).await.unwrap();
    let blocks = chain_to(1);

    // when
    log.append_backlog(blocks.clone()).unwrap();
    let fenced = leader
        .publish_produced_block(&block_on(head_of(&blocks[0]), 1))
        .await;
    let next = leader.leader_state(GENESIS).await.unwrap();

    // then
    assert!(matches!(fenced, Err(ReconciliationError::Fenced { .. })));
    assert_eq!(next, LeaderState::UnreconciledBlocks(blocks));
    assert_eq!(leader.lease_status().epoch, epoch(3));
}

#[tokio::test]
async fn append_backlog__when_the_log_holds_another_block_at_a_height__then_refuses_it() {
    // given
    let log = MemoryBlockLog::<ReferenceChain>::new();
    let blocks = chain_to(1);
    log.append_backlog(blocks.clone()).unwrap();

    // when
    let same = log.append_backlog(blocks.clone());
    let other = log.append_backlog([block_on(GENESIS, 2)]);

    // then
    assert_eq!(same, Ok(()));
    assert_eq!(
        other,
        Err(AppendError::HeightTaken {
            height: BlockHeight::new(1),
            stored: blocks[0].id(),
        })
    );
    assert_eq!(log.blocks(), blocks);
}

#[tokio::test]
async fn drop__when_the_last_clone_of_a_leader_is_dropped__then_the_lease_is_free() {
    // given
    let log = MemoryBlockLog::<ReferenceChain>::new();
    let leader = log.producer();
    let kept = leader.clone();
    leader.leader_state(GENESIS).await.unwrap();

    // when
    drop(leader);
    let held_by_the_clone = log.lease_holder();
    drop(kept);

    // then
    assert!(held_by_the_clone.is_some());
    assert_eq!(log.lease_holder(), None);
}
