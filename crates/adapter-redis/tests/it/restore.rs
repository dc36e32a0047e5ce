//! Redis nodes restored from old snapshots: what a process remembers outside Redis keeps the
//! fencing epochs from repeating.

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
    let state = restarted.adapter.leader_state(below(3)).await.unwrap();

    // then: it leads above every epoch it used or saw, although the nodes hand out lower ones
    assert_eq!(state, LeaderState::ReconciledLeader);
    let epoch = restarted.adapter.lease_status().epoch.unwrap();
    assert!(
        epoch > q_epoch,
        "led with epoch {epoch} after epoch {q_epoch} was used"
    );
}
