//! Catching up from a history source when the shared block log reports a gap: fetched blocks
//! go through the import path (verify, then commit), a refused block commits nothing, and a
//! gap no source can fill fails the cycle without spinning.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use adapter_chain::{ReferenceChain, SealedBlock};
use async_trait::async_trait;
use mockall::mock;
use poa_ports::{
    BlockHeight, BlockHistorySource, EverySource, HistoryError, ImportError, LeaderState,
    ReconciliationError,
};

use super::{BLOCK_TIME, Doubles, assert_standing_aside, chain_to, let_time_pass};
use crate::config::Trigger;
use crate::service::CycleOutcome;
use crate::status::Role;

mock! {
    pub(super) History {}
    #[async_trait]
    impl BlockHistorySource<ReferenceChain> for History {
        async fn blocks_from(&self, next_height: BlockHeight, max: usize) -> Result<Vec<SealedBlock>, HistoryError>;
        async fn ask_every_source(&self, next_height: BlockHeight, max: usize) -> Result<EverySource<SealedBlock>, HistoryError>;
    }
}

fn gap_at(height: u64) -> Result<LeaderState<SealedBlock>, ReconciliationError> {
    Err(ReconciliationError::HistoryGap {
        next_height: BlockHeight::new(height),
    })
}

#[tokio::test(start_paused = true)]
async fn history__when_the_log_reports_a_gap__then_fetches_verifies_and_commits_then_follows_the_log()
 {
    // given: the log no longer holds height 1; a peer serves 1..=3
    let (_, blocks) = chain_to(3);
    let mut doubles = Doubles::new().with_local_chain();
    doubles
        .reconciliation
        .expect_leader_state()
        .withf(|head| head.height.get() == 0)
        .times(1)
        .returning(|_| gap_at(1));
    doubles
        .reconciliation
        .expect_follower_state()
        .withf(|head| head.height.get() == 3)
        .returning(|_| Ok(LeaderState::ReconciledFollower));
    let mut history = MockHistory::new();
    let served = blocks.clone();
    history
        .expect_blocks_from()
        .withf(|height, max| height.get() == 1 && *max > 0)
        .times(1)
        .returning(move |_, _| Ok(served.clone()));
    doubles.expect_import_in_order(&blocks.iter().collect::<Vec<_>>());
    doubles.producer.expect_produce_on().never();
    doubles.reconciliation.expect_release().returning(|| Ok(()));
    doubles.history = Some(Arc::new(history));
    let running = doubles.start(Trigger::Manual);

    // when
    let outcome = running.handle.produce_block().await.unwrap();

    // then: all three committed in order, then the next cycle asked the log again, as a
    // follower, and competes again once caught up
    assert_eq!(running.head_height(), 3);
    assert_eq!(outcome, CycleOutcome::Follower);
    assert_eq!(running.handle.status().blocks_imported, 3);
    assert_eq!(running.handle.status().standing_aside, None);
    running.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn history__when_a_leader_is_far_behind__then_releases_the_lease_before_catching_up_and_competes_again_once_current()
 {
    // given: leading, the log no longer holds height 1; a peer serves 1..=2
    let (_, blocks) = chain_to(2);
    let mut doubles = Doubles::new().with_local_chain();
    let mut order = mockall::Sequence::new();
    doubles
        .reconciliation
        .expect_leader_state()
        .times(1)
        .in_sequence(&mut order)
        .returning(|_| gap_at(1));
    doubles
        .reconciliation
        .expect_release()
        .times(1)
        .in_sequence(&mut order)
        .returning(|| Ok(()));
    let mut history = MockHistory::new();
    let served = blocks.clone();
    history
        .expect_blocks_from()
        .times(1)
        .returning(move |_, _| Ok(served.clone()));
    doubles.expect_import_in_order(&blocks.iter().collect::<Vec<_>>());
    doubles
        .reconciliation
        .expect_follower_state()
        .times(1)
        .in_sequence(&mut order)
        .returning(|_| Ok(LeaderState::ReconciledFollower));
    let competes_again = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&competes_again);
    doubles
        .reconciliation
        .expect_leader_state()
        .returning(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(LeaderState::ReconciledFollower)
        });
    doubles.producer.expect_produce_on().never();
    // the release at shutdown
    doubles.reconciliation.expect_release().returning(|| Ok(()));
    doubles.history = Some(Arc::new(history));
    let running = doubles.start(Trigger::Manual);

    // when: the catch-up, the follower cycle that finds it current, one more cycle
    running.handle.produce_block().await.unwrap();
    let_time_pass(Duration::from_millis(500)).await;

    // then
    assert_eq!(running.head_height(), 2);
    assert_eq!(running.handle.status().standing_aside, None);
    assert!(competes_again.load(Ordering::SeqCst) >= 1);
    running.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn history__when_a_peer_serves_a_forged_block__then_refuses_it_and_commits_nothing() {
    // given: the peer's block at height 1 does not carry the authority's seal
    let (_, blocks) = chain_to(2);
    let mut doubles = Doubles::new().with_local_chain();
    doubles
        .reconciliation
        .expect_leader_state()
        .returning(|_| gap_at(1));
    let mut history = MockHistory::new();
    history
        .expect_blocks_from()
        .returning(move |_, _| Ok(blocks.clone()));
    doubles.importer.expect_verify().returning(|block| {
        Err(ImportError::InvalidSeal {
            height: block.height(),
        })
    });
    doubles.importer.expect_commit().never();
    doubles.producer.expect_produce_on().never();
    doubles.reconciliation.expect_release().returning(|| Ok(()));
    doubles.history = Some(Arc::new(history));
    let running = doubles.start(Trigger::Manual);

    // when
    let outcome = running.handle.produce_block().await.unwrap();

    // then
    assert!(
        matches!(outcome, CycleOutcome::Failed { step: "import", .. }),
        "{outcome:?}"
    );
    assert_eq!(running.head_height(), 0);
    assert_eq!(running.handle.status().role, Role::Degraded);
    running.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn history__when_no_peer_holds_the_next_height__then_fails_the_cycle_and_never_spins() {
    // given: every peer answers, none holds height 1
    let mut doubles = Doubles::new().with_local_chain();
    doubles
        .reconciliation
        .expect_leader_state()
        .times(1)
        .returning(|_| gap_at(1));
    doubles
        .reconciliation
        .expect_follower_state()
        .returning(|_| gap_at(1));
    let asked = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&asked);
    let mut history = MockHistory::new();
    history.expect_blocks_from().returning(move |_, _| {
        counter.fetch_add(1, Ordering::SeqCst);
        Ok(Vec::new())
    });
    doubles.importer.expect_verify().never();
    doubles.importer.expect_commit().never();
    doubles.producer.expect_produce_on().never();
    let releases = doubles.counting_releases();
    doubles.history = Some(Arc::new(history));
    let running = doubles.start(Trigger::Interval {
        block_time: BLOCK_TIME,
    });

    // when
    let_time_pass(Duration::from_secs(1)).await;

    // then: about one request per retry period (100 ms), never a busy loop; the lease was
    // released once and never taken again (only the first cycle competed)
    let requests = asked.load(Ordering::SeqCst);
    assert!(
        (5..=15).contains(&requests),
        "asked {requests} times in 1 s"
    );
    let status = running.handle.status();
    assert_standing_aside(&status, "history: no source holds height 1");
    assert_eq!(releases.load(Ordering::SeqCst), 1);
    assert!(
        status
            .last_error
            .as_deref()
            .is_some_and(|error| error.starts_with("history:")),
        "{:?}",
        status.last_error
    );
    assert_eq!(running.head_height(), 0);
    running.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn history__when_no_source_is_configured__then_the_gap_fails_the_cycle_with_a_clear_error() {
    // given
    let mut doubles = Doubles::new().with_local_chain();
    doubles
        .reconciliation
        .expect_leader_state()
        .returning(|_| gap_at(1));
    doubles
        .reconciliation
        .expect_follower_state()
        .returning(|_| gap_at(1));
    doubles.importer.expect_commit().never();
    doubles.producer.expect_produce_on().never();
    doubles.reconciliation.expect_release().returning(|| Ok(()));
    let running = doubles.start(Trigger::Manual);

    // when
    let outcome = running.handle.produce_block().await.unwrap();

    // then
    match outcome {
        CycleOutcome::Failed { step, error } => {
            assert_eq!(step, "history");
            assert!(error.contains("no history source"), "{error}");
        }
        other => panic!("expected a failed cycle, got {other:?}"),
    }
    running.shutdown().await;
}
