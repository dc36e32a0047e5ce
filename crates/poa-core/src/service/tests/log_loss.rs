//! A new leadership that finds the shared log behind its head: it asks every peer before it
//! produces on that head, imports what a peer holds above it, republishes the head when every
//! peer confirms it is the highest, and otherwise stands aside until they answer or an operator
//! vouches for it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use adapter_chain::SealedBlock;
use poa_ports::{BlockHeight, EverySource, LeaderState, ReconciliationError};

use super::history::MockHistory;
use super::{Doubles, assert_standing_aside, chain_to, let_time_pass};
use crate::config::Trigger;
use crate::service::log_loss::LOG_LOSS_RECHECK;

/// A local chain at height 2 (the chain of `chain_to`), as a process that committed it holds.
fn doubles_at_two() -> (Doubles, Vec<SealedBlock>) {
    let (_, blocks) = chain_to(3);
    let doubles = Doubles::new().with_local_chain();
    *doubles.head.lock().unwrap() = blocks[1].block.header.clone();
    (doubles, blocks)
}

fn log_behind_head() -> Result<LeaderState<SealedBlock>, ReconciliationError> {
    Err(ReconciliationError::LogBehindHead {
        head: BlockHeight::new(2),
        log_top: None,
    })
}

#[tokio::test(start_paused = true)]
async fn log_loss__when_a_peer_holds_a_block_above_the_head__then_releases_and_imports_it_and_produces_nothing()
 {
    // given
    let (mut doubles, blocks) = doubles_at_two();
    doubles
        .reconciliation
        .expect_leader_state()
        .times(1)
        .returning(|_| log_behind_head());
    doubles
        .reconciliation
        .expect_leader_state()
        .returning(|_| Ok(LeaderState::ReconciledFollower));
    let mut history = MockHistory::new();
    let above = blocks[2].clone();
    history
        .expect_ask_every_source()
        .withf(|height, _| height.get() == 3)
        .times(1)
        .returning(move |_, _| Ok(EverySource::Blocks(vec![above.clone()])));
    doubles.expect_import_in_order(&[&blocks[2]]);
    let releases = doubles.counting_releases();
    doubles.producer.expect_produce_on().never();
    doubles
        .reconciliation
        .expect_publish_produced_block()
        .never();
    doubles.history = Some(Arc::new(history));
    let running = doubles.start(Trigger::Manual);

    // when
    running.handle.produce_block().await.unwrap();

    // then
    assert_eq!(running.head_height(), 3);
    assert!(releases.load(Ordering::SeqCst) >= 1);
    running.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn log_loss__when_every_peer_confirms_none_holds_more__then_republishes_the_head_before_producing()
 {
    // given
    let (mut doubles, blocks) = doubles_at_two();
    let mut order = mockall::Sequence::new();
    doubles
        .reconciliation
        .expect_leader_state()
        .times(1)
        .in_sequence(&mut order)
        .returning(|_| log_behind_head());
    let head = blocks[1].clone();
    let head_id = head.id();
    doubles
        .importer
        .expect_block_at()
        .withf(|height| height.get() == 2)
        .returning(move |_| Ok(Some(head.clone())));
    doubles
        .reconciliation
        .expect_publish_produced_block()
        .withf(move |block| block.id() == head_id)
        .times(1)
        .in_sequence(&mut order)
        .returning(|_| Ok(()));
    doubles
        .reconciliation
        .expect_leader_state()
        .times(1)
        .in_sequence(&mut order)
        .returning(|_| Ok(LeaderState::ReconciledLeader));
    let mut history = MockHistory::new();
    history
        .expect_ask_every_source()
        .times(1)
        .returning(|_, _| Ok(EverySource::NoneHolds));
    doubles.publishing_and_committing();
    doubles.counting_releases();
    doubles.history = Some(Arc::new(history));
    let running = doubles.start(Trigger::Manual);

    // when: the cycle that finds the log behind, then one that produces
    running.handle.produce_block().await.unwrap();
    running.handle.produce_block().await.unwrap();

    // then
    assert_eq!(running.head_height(), 3);
    assert_eq!(running.handle.status().standing_aside, None);
    running.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn log_loss__when_a_peer_does_not_answer__then_stands_aside_names_it_and_asks_again_later() {
    // given
    let (mut doubles, _) = doubles_at_two();
    doubles
        .reconciliation
        .expect_leader_state()
        .returning(|_| log_behind_head());
    doubles
        .reconciliation
        .expect_follower_state()
        .returning(|_| Ok(LeaderState::ReconciledFollower));
    let asked = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&asked);
    let mut history = MockHistory::new();
    history.expect_ask_every_source().returning(move |_, _| {
        counted.fetch_add(1, Ordering::SeqCst);
        Ok(EverySource::Unanswered(vec![
            "http://peer-b:4000".to_owned(),
        ]))
    });
    let releases = doubles.counting_releases();
    doubles.producer.expect_produce_on().never();
    doubles
        .reconciliation
        .expect_publish_produced_block()
        .never();
    doubles.history = Some(Arc::new(history));
    let running = doubles.start(Trigger::Interval {
        block_time: Duration::from_millis(100),
    });

    // when
    let_time_pass(Duration::from_millis(500)).await;

    // then: it released, says which peer it waits for, and did not ask again at once
    let status = running.handle.status();
    assert!(
        status
            .standing_aside
            .as_deref()
            .is_some_and(|reason| reason.starts_with("log: the shared log lost blocks")),
        "{status:?}"
    );
    assert!(
        status
            .standing_aside
            .as_deref()
            .is_some_and(|reason| reason.contains("http://peer-b:4000")),
        "{status:?}"
    );
    assert!(releases.load(Ordering::SeqCst) >= 1);
    assert_eq!(asked.load(Ordering::SeqCst), 1);

    // and after the recheck period it asks again
    let_time_pass(LOG_LOSS_RECHECK + Duration::from_millis(500)).await;
    assert!(asked.load(Ordering::SeqCst) >= 2);
    running.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn log_loss__when_no_peer_is_configured__then_stands_aside_until_an_operator_vouches_for_the_head()
 {
    // given: no history source at all
    let (mut doubles, blocks) = doubles_at_two();
    let vouched = Arc::new(AtomicUsize::new(0));
    doubles
        .reconciliation
        .expect_leader_state()
        .returning(|_| log_behind_head());
    doubles
        .reconciliation
        .expect_follower_state()
        .returning(|_| Ok(LeaderState::ReconciledFollower));
    let head = blocks[1].clone();
    doubles
        .importer
        .expect_block_at()
        .returning(move |_| Ok(Some(head.clone())));
    let published = Arc::clone(&vouched);
    doubles
        .reconciliation
        .expect_publish_produced_block()
        .returning(move |_| {
            published.fetch_add(1, Ordering::SeqCst);
            Ok(())
        });
    doubles.counting_releases();
    doubles.producer.expect_produce_on().never();
    let running = doubles.start(Trigger::Manual);
    running.handle.produce_block().await.unwrap();
    assert_standing_aside(&running.handle.status(), "log: the shared log lost blocks");
    assert!(
        running
            .handle
            .status()
            .standing_aside
            .is_some_and(
                |reason| reason.contains("no peer is configured") && !reason.contains("--")
            )
    );
    assert_eq!(vouched.load(Ordering::SeqCst), 0);

    // when
    running.handle.vouch_for_head().await.unwrap();

    // then: the head went back to the log at once
    assert_eq!(vouched.load(Ordering::SeqCst), 1);
    running.shutdown().await;
}
