//! Redis nodes restored from old snapshots: what a process remembers outside Redis keeps the
//! fencing epochs from repeating.

use adapter_chain::SealedBlock;
use poa_ports::{BlockReconciliationPort, LeaderState};

use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn epoch__when_nodes_come_back_from_an_old_snapshot_and_the_process_restarts__then_it_never_leads_with_an_epoch_already_used()
 {
    // given: P leads, publishes and steps down; two nodes are snapshotted (a nightly backup)
    let servers = servers(3);
    let key = "poa:test:restored-epoch";
    let data_dir = tempfile::tempdir().unwrap();
    let p_config = adapter_redis::RedisConfig {
        epoch_file: Some(data_dir.path().join("lease-epoch")),
        ..config(urls(&servers), key)
    };
    let p = producer_with(p_config.clone()).await;
    assert_eq!(
        p.adapter.leader_state(below(1)).await.unwrap(),
        LeaderState::ReconciledLeader
    );
    p.adapter
        .publish_produced_block(&block(1, 0))
        .await
        .unwrap();
    p.adapter.release().await.unwrap();
    let snapshots = [servers[0].snapshot(), servers[1].snapshot()];

    // and Q takes over and writes with a higher epoch, which P then reads in the log
    let q = producer(urls(&servers), key).await;
    assert_eq!(
        q.adapter.leader_state(below(2)).await.unwrap(),
        LeaderState::ReconciledLeader
    );
    let q_epoch = q.adapter.lease_status().epoch.unwrap();
    q.adapter
        .publish_produced_block(&block(2, 0))
        .await
        .unwrap();
    q.adapter.release().await.unwrap();
    drop(q);
    let followed = p.adapter.follower_state(below(2)).await.unwrap();
    assert_eq!(heights(&followed), vec![2]);
    drop(p);

    // when: the two nodes are restored from the backup, the third is down, and P restarts
    servers[0].restore(&snapshots[0]);
    servers[1].restore(&snapshots[1]);
    servers[2].stop();
    let restarted = producer_with(p_config).await;
    let state = restarted.adapter.leader_state(below(3)).await;

    // then: it holds the lease above every epoch it used or saw, although the nodes hand out
    // lower ones (and it finds the log behind its head: the restore lost height 2)
    assert!(
        matches!(
            state,
            Err(poa_ports::ReconciliationError::LogBehindHead { .. })
        ),
        "{state:?}"
    );
    let epoch = restarted.adapter.lease_status().epoch.unwrap();
    assert!(
        epoch > q_epoch,
        "led with epoch {epoch} after epoch {q_epoch} was used"
    );
}

/// Three nodes holding heights 1..=3 published by a leader, then `prepare` done to them; a new
/// leadership on the local head at 3 reports what it finds.
async fn new_leadership_at_three_after(
    prepare: impl FnOnce(&[poa_test_support::RedisServer], &str),
) -> Result<LeaderState<SealedBlock>, poa_ports::ReconciliationError> {
    let servers = servers(3);
    let key = "poa:test:log-behind-head";
    let first = producer(urls(&servers), key).await;
    first.adapter.leader_state(below(1)).await.unwrap();
    for height in 1..=3 {
        first
            .adapter
            .publish_produced_block(&block(height, 0))
            .await
            .unwrap();
    }
    first.adapter.release().await.unwrap();
    drop(first);
    prepare(&servers, key);
    let next = producer(urls(&servers), key).await;
    next.adapter.leader_state(below(4)).await
}

#[tokio::test(flavor = "multi_thread")]
async fn leader_state__when_every_node_was_emptied__then_reports_the_log_behind_the_head_instead_of_leading_on_it()
 {
    // when
    let state = new_leadership_at_three_after(|servers, _| {
        servers
            .iter()
            .for_each(poa_test_support::RedisServer::restart);
    })
    .await;

    // then
    assert!(
        matches!(
            state,
            Err(poa_ports::ReconciliationError::LogBehindHead { head, log_top: None })
                if head == height(3)
        ),
        "{state:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn leader_state__when_a_quorum_came_back_from_a_snapshot_below_the_head__then_reports_how_far_the_log_reaches()
 {
    // when: two nodes lose heights 2 and 3 (as a restore of a backup taken at height 1 does)
    let state = new_leadership_at_three_after(|servers, key| {
        for server in &servers[..2] {
            let backup = membership_of(server, key);
            server.restart();
            put_membership(server, key, &backup);
            append(server, key, &block(1, 0), 1);
        }
    })
    .await;

    // then
    assert!(
        matches!(
            state,
            Err(poa_ports::ReconciliationError::LogBehindHead { head, log_top: Some(top) })
                if head == height(3) && top == height(1)
        ),
        "{state:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn leader_state__when_one_node_was_emptied_within_the_budget__then_leads_as_usual() {
    // when
    let state = new_leadership_at_three_after(|servers, _| servers[0].restart()).await;

    // then
    assert!(
        matches!(state, Ok(LeaderState::ReconciledLeader)),
        "{state:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn follower__when_a_node_restored_from_a_snapshot_left_heights_below_its_next_height_on_one_node__then_imports_them_as_proven()
 {
    // given: a leader publishes 1..=30 everywhere; the second node is snapshotted at 10 and
    // later restored from that snapshot, and the third node missed 11..=20 (it was cut off
    // while they were written): 11..=20 are on the first node alone
    let servers = servers(3);
    let key = "poa:test:restored-follower";
    let leader = producer(urls(&servers), key).await;
    publish_chain(&leader, 1..=10).await;
    let snapshot = servers[1].snapshot();
    publish_chain(&leader, 11..=30).await;
    leader.adapter.release().await.unwrap();
    drop(leader);
    servers[1].restore(&snapshot);
    drop_heights(&servers[2], key, 11, 20);
    for server in &servers {
        set_owner(server, key, "peer", 60_000);
    }

    // when: a follower whose chain ends at 10 reconciles
    let follower = producer(urls(&servers), key).await;
    let state = follower.adapter.leader_state(below(11)).await.unwrap();

    // then: each of 11..=20 is proven by the block above it, so it imports the whole backlog
    // without a history source, and writes nothing
    assert_eq!(heights(&state), (11..=30).collect::<Vec<_>>());
    assert_eq!(stream_len(&servers[1], key), 10);
}
