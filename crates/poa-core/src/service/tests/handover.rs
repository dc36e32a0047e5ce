//! A leader whose blocks do not reach a quorum hands the lease over after the hand-over period
//! (so a process whose links reach a quorum can take over) and competes again after the same
//! period; a quorum that refused the height keeps the lease, so the fleet does not take turns
//! at the same refusal.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use adapter_chain::SealedBlock;
use mockall::Sequence;
use poa_ports::{BlockHeight, LeaderState, ReconciliationError};

use super::{BLOCK_TIME, CycleOutcome, Doubles, RETRY, let_time_pass};
use crate::config::{ServiceConfig, Trigger};

const HANDOVER_AFTER: Duration = Duration::from_secs(1);

fn config() -> ServiceConfig {
    config_on(Trigger::Interval {
        block_time: BLOCK_TIME,
    })
}

fn config_on(trigger: Trigger) -> ServiceConfig {
    ServiceConfig::new(trigger, RETRY, Duration::from_secs(1))
        .unwrap()
        .with_handover_after(HANDOVER_AFTER)
}

/// `leader_state` answers `leader` and `follower_state` follows; both are counted.
fn counting_states(
    doubles: &mut Doubles,
    leader: impl Fn() -> Result<LeaderState<SealedBlock>, ReconciliationError> + Send + 'static,
) -> (Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let leader_calls = Arc::new(AtomicUsize::new(0));
    let follower_calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&leader_calls);
    doubles
        .reconciliation
        .expect_leader_state()
        .returning(move |_| {
            counted.fetch_add(1, Ordering::SeqCst);
            leader()
        });
    let counted = Arc::clone(&follower_calls);
    doubles
        .reconciliation
        .expect_follower_state()
        .returning(move |_| {
            counted.fetch_add(1, Ordering::SeqCst);
            Ok(LeaderState::ReconciledFollower)
        });
    (leader_calls, follower_calls)
}

/// Produce, seal and verify succeed; every publish fails with `error`.
fn publishes_failing_with(
    doubles: &mut Doubles,
    error: impl Fn() -> ReconciliationError + Send + 'static,
) {
    doubles.producing_empty_blocks();
    doubles.importer.expect_verify().returning(|_| Ok(()));
    doubles
        .reconciliation
        .expect_publish_produced_block()
        .returning(move |_| Err(error()));
}

#[tokio::test(start_paused = true)]
async fn handover__when_a_leaders_repairs_fall_short_of_a_quorum_for_the_period__then_releases_and_only_follows_for_the_period()
 {
    // given: a leader whose repair of the block at its next height never reaches a quorum
    // (the node that would complete it answers this process too late), while its renewals do
    let mut doubles = Doubles::new().with_local_chain();
    let (leader_calls, follower_calls) = counting_states(&mut doubles, || {
        Err(ReconciliationError::UnresolvedBacklog {
            height: BlockHeight::new(1),
            reason: "repair did not reach a quorum".into(),
        })
    });
    let releases = doubles.counting_releases();
    let running = doubles.start_with(config());

    // when: less than the period passes, it keeps the lease and keeps trying
    let_time_pass(HANDOVER_AFTER / 2).await;
    assert_eq!(releases.load(Ordering::SeqCst), 0);
    assert_eq!(follower_calls.load(Ordering::SeqCst), 0);

    // when: the period passes
    let_time_pass(HANDOVER_AFTER).await;

    // then: it released and only follows, asking for no leadership
    assert_eq!(releases.load(Ordering::SeqCst), 1);
    let leader_calls_at_handover = leader_calls.load(Ordering::SeqCst);
    let_time_pass(HANDOVER_AFTER / 3).await;
    assert_eq!(
        leader_calls.load(Ordering::SeqCst),
        leader_calls_at_handover
    );
    assert!(follower_calls.load(Ordering::SeqCst) > 0);

    // and after the hold-off it competes again
    let_time_pass(HANDOVER_AFTER).await;
    assert!(leader_calls.load(Ordering::SeqCst) > leader_calls_at_handover);
    running.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn handover__when_a_leaders_publishes_miss_a_quorum_for_the_period__then_stops_competing_for_the_period()
 {
    // given: every publish reaches fewer nodes than a quorum (each releases the lease, and
    // this process would win it back at once)
    let mut doubles = Doubles::new().with_local_chain();
    let (leader_calls, follower_calls) =
        counting_states(&mut doubles, || Ok(LeaderState::ReconciledLeader));
    publishes_failing_with(&mut doubles, || ReconciliationError::NoQuorum {
        operation: "publish",
        acked: 1,
        needed: 2,
    });
    let _releases = doubles.counting_releases();
    let running = doubles.start_with(config());

    // when
    let_time_pass(HANDOVER_AFTER + HANDOVER_AFTER / 2).await;

    // then: it stopped asking for the lease and follows
    let leader_calls_after_handover = leader_calls.load(Ordering::SeqCst);
    let_time_pass(HANDOVER_AFTER / 3).await;
    assert_eq!(
        leader_calls.load(Ordering::SeqCst),
        leader_calls_after_handover
    );
    assert!(follower_calls.load(Ordering::SeqCst) > 0);
    running.shutdown().await;
}

/// Expects one publish next in `order`, which reaches no quorum.
fn publish_missing_a_quorum_next(doubles: &mut Doubles, order: &mut Sequence) {
    doubles
        .reconciliation
        .expect_publish_produced_block()
        .times(1)
        .in_sequence(order)
        .returning(|_| {
            Err(ReconciliationError::NoQuorum {
                operation: "publish",
                acked: 1,
                needed: 2,
            })
        });
}

/// Expects one release next in `order`.
fn release_next(doubles: &mut Doubles, order: &mut Sequence) {
    doubles
        .reconciliation
        .expect_release()
        .times(1)
        .in_sequence(order)
        .returning(|| Ok(()));
}

#[tokio::test(start_paused = true)]
async fn handover__when_a_publish_misses_a_quorum_after_the_period__then_releases_the_lease_once() {
    // given: a leader on the manual trigger whose first block reached no quorum (its release
    // starts the hand-over count), and whose timer cycles then only keep the lease
    let mut doubles = Doubles::new().with_local_chain();
    doubles
        .reconciliation
        .expect_leader_state()
        .returning(|_| Ok(LeaderState::ReconciledLeader));
    doubles.producing_empty_blocks();
    doubles.importer.expect_verify().returning(|_| Ok(()));
    doubles.importer.expect_commit().never();
    let mut order = Sequence::new();
    publish_missing_a_quorum_next(&mut doubles, &mut order);
    release_next(&mut doubles, &mut order);
    publish_missing_a_quorum_next(&mut doubles, &mut order);
    // The publish after the period: one release, by the hand-over, and none besides it.
    release_next(&mut doubles, &mut order);
    doubles
        .reconciliation
        .expect_follower_state()
        .times(1)
        .in_sequence(&mut order)
        .returning(|_| Ok(LeaderState::ReconciledFollower));
    doubles
        .reconciliation
        .expect_follower_state()
        .returning(|_| Ok(LeaderState::ReconciledFollower));
    // Shutdown releases once more.
    release_next(&mut doubles, &mut order);
    let running = doubles.start_with(config_on(Trigger::Manual));
    running.handle.produce_block().await.unwrap();
    let_time_pass(HANDOVER_AFTER + RETRY).await;

    // when
    let outcome = running.handle.produce_block().await;

    // then: it failed the step, handed the lease over and only follows
    assert!(
        matches!(
            outcome,
            Ok(CycleOutcome::Failed {
                step: "publish",
                ..
            })
        ),
        "{outcome:?}"
    );
    let_time_pass(RETRY * 3).await;
    assert_eq!(running.head_height(), 0);
    running.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn handover__when_a_quorum_refuses_the_height__then_keeps_the_lease() {
    // given: a quorum holds another block at the height: every process would be refused alike
    let mut doubles = Doubles::new().with_local_chain();
    let (_, follower_calls) = counting_states(&mut doubles, || Ok(LeaderState::ReconciledLeader));
    publishes_failing_with(&mut doubles, || ReconciliationError::HeightTaken {
        height: BlockHeight::new(1),
    });
    let releases = doubles.counting_releases();
    let running = doubles.start_with(config());

    // when
    let_time_pass(HANDOVER_AFTER * 3).await;

    // then
    assert_eq!(releases.load(Ordering::SeqCst), 0);
    assert_eq!(follower_calls.load(Ordering::SeqCst), 0);
    running.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn handover__when_a_quorum_denies_this_process_its_writes__then_keeps_the_lease_until_the_period_and_then_hands_it_on()
 {
    // given: every publish is refused by a quorum for this process's credentials (an ACL
    // without XADD): retrying cannot help, and releasing at every cycle only raised the epoch
    let mut doubles = Doubles::new().with_local_chain();
    let (_, follower_calls) = counting_states(&mut doubles, || Ok(LeaderState::ReconciledLeader));
    publishes_failing_with(&mut doubles, || ReconciliationError::Denied {
        operation: "publish",
    });
    let releases = doubles.counting_releases();
    let running = doubles.start_with(config());

    // when: less than the period passes
    let_time_pass(HANDOVER_AFTER / 2).await;

    // then: it kept the lease (no new leadership, no new epoch, per cycle)
    assert_eq!(releases.load(Ordering::SeqCst), 0);

    // when: the period passes, another process (whose credentials may be right) gets its turn
    let_time_pass(HANDOVER_AFTER).await;

    // then
    assert_eq!(releases.load(Ordering::SeqCst), 1);
    assert!(follower_calls.load(Ordering::SeqCst) > 0);
    running.shutdown().await;
}
