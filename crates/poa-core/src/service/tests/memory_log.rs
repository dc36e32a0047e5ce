//! The service on `adapter-memory`'s shared log instead of a reconciliation mock, where the
//! behaviour is about what reaches the log and who leads rather than about the calls made: a
//! handover between two producers, a fenced publish, and a publish whose outcome is unknown.

use std::sync::Arc;
use std::time::Duration;

use adapter_chain::{ReferenceChain, SealedBlock};
use adapter_memory::{MemoryBlockLog, MemoryReconciliation};
use poa_ports::{BlockHeight, Epoch};

use super::{BLOCK_TIME, Doubles, Running, let_time_pass};
use crate::config::Trigger;
use crate::service::CycleOutcome;
use crate::status::Role;

/// Every block on the log extends the one below it, from height 1 up.
fn assert_one_chain(blocks: &[SealedBlock]) {
    for (index, block) in blocks.iter().enumerate() {
        assert_eq!(block.height().get(), index as u64 + 1);
    }
    for pair in blocks.windows(2) {
        assert_eq!(pair[1].block.header.parent_id, pair[0].id());
    }
}

/// A producer on `log` whose local chain, block producer and signer always succeed; returns
/// the running service and a clone of its port, to flip switches on.
fn start_producer_on(
    log: &MemoryBlockLog<ReferenceChain>,
    trigger: Trigger,
) -> (Running, MemoryReconciliation<ReferenceChain>) {
    let port = log.producer();
    let switches = port.clone();
    let mut doubles = Doubles::new().with_local_chain().on_port(port);
    doubles.publishing_and_committing();
    (doubles.start(trigger), switches)
}

fn assert_failed_at_publish(outcome: &CycleOutcome) {
    assert!(
        matches!(
            outcome,
            CycleOutcome::Failed {
                step: "publish",
                ..
            }
        ),
        "{outcome:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn handover__when_the_leader_shuts_down__then_the_follower_has_imported_its_blocks_and_continues_the_chain()
 {
    // given: two producers on one log; the first starts first and leads
    let log = MemoryBlockLog::<ReferenceChain>::new();
    let interval = Trigger::Interval {
        block_time: BLOCK_TIME,
    };
    let (first, _) = start_producer_on(&log, interval);
    let_time_pass(Duration::from_millis(50)).await;
    let (second, _) = start_producer_on(&log, interval);
    let_time_pass(Duration::from_millis(500)).await;
    let second_role_while_first_leads = second.handle.status().role;
    let second_head_while_first_leads = second.head_height();

    // when
    let first_head = Arc::clone(&first.head);
    first.shutdown().await;
    let produced_by_first = first_head.lock().unwrap().height.get();
    let_time_pass(Duration::from_millis(500)).await;

    // then: the second followed, took over, and built on every block the first produced
    assert!(produced_by_first >= 3, "first produced {produced_by_first}");
    assert!(
        matches!(
            second_role_while_first_leads,
            Role::Follower | Role::Syncing
        ),
        "{second_role_while_first_leads:?}"
    );
    assert!(second_head_while_first_leads >= 2);
    assert_eq!(second.handle.status().role, Role::Leader);
    assert!(second.head_height() > produced_by_first);
    let blocks = log.blocks();
    assert_one_chain(&blocks);
    assert_eq!(blocks.len() as u64, second.head_height());
    assert_eq!(
        log.epoch_at(BlockHeight::new(produced_by_first)),
        Some(Epoch::new(1))
    );
    assert_eq!(
        log.epoch_at(BlockHeight::new(produced_by_first + 1)),
        Some(Epoch::new(2))
    );
    second.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn produce__when_the_lease_is_lost_before_the_publish__then_the_fenced_block_is_committed_nowhere_and_a_new_leadership_produces()
 {
    // given
    let log = MemoryBlockLog::<ReferenceChain>::new();
    let (running, switches) = start_producer_on(&log, Trigger::Manual);
    switches.lose_lease_before_next_publish();

    // when
    let fenced = running.handle.produce_block().await.unwrap();
    let head_after_fenced = running.head_height();
    let log_after_fenced = log.blocks();
    let next = running.handle.produce_block().await.unwrap();

    // then: neither the log nor the local chain holds the fenced block; the next cycle leads
    // again, in a new leadership, and produces height 1
    assert_failed_at_publish(&fenced);
    assert_eq!(head_after_fenced, 0);
    assert_eq!(log_after_fenced, vec![]);
    assert!(matches!(next, CycleOutcome::Produced { height, .. } if height == BlockHeight::new(1)));
    assert_eq!(log.epoch_at(BlockHeight::new(1)), Some(Epoch::new(2)));
    running.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn produce__when_the_publish_outcome_is_unknown__then_commits_nothing_and_imports_the_block_from_the_log_before_producing_on_it()
 {
    // given: the publish reaches the log but its reply is lost
    let log = MemoryBlockLog::<ReferenceChain>::new();
    let (running, switches) = start_producer_on(&log, Trigger::Manual);
    switches.lose_next_publish_reply();

    // when
    let unknown = running.handle.produce_block().await.unwrap();
    let head_after_unknown = running.head_height();
    let next = running.handle.produce_block().await.unwrap();

    // then: nothing was committed on the unknown outcome; the next request imported the
    // block from the log and produced height 2 on it
    assert_failed_at_publish(&unknown);
    assert_eq!(head_after_unknown, 0);
    assert!(matches!(next, CycleOutcome::Produced { height, .. } if height == BlockHeight::new(2)));
    assert_eq!(running.handle.status().blocks_imported, 1);
    assert_one_chain(&log.blocks());
    assert_eq!(log.top(), Some(BlockHeight::new(2)));
    running.shutdown().await;
}
