//! The membership change without downtime against real redis-servers: a process of the old
//! list, one of both lists and one of the new list run through `begin` and `commit`, and only
//! the one whose record the nodes hold leads; a commit whose joint record holds no quorum of
//! the old list is refused, so the old list and the new one never both lead.

use adapter_chain::SealedBlock;
use adapter_redis::{RedisConfig, begin_membership_change, commit_membership_change};
use poa_ports::{BlockReconciliationPort, LeaderState};
use poa_test_support::RedisServer;

use crate::support::{
    Producer, below, block, config, head_of, membership_of, producer_as_started, producer_with,
    put_membership, servers, until, urls,
};

/// The lists of the change: old {A,B,C}, new {A,B,D}.
fn lists(servers: &[RedisServer], key: &str) -> (RedisConfig, RedisConfig, RedisConfig) {
    let old = config(urls(&servers[..3]), key);
    let new = config(
        vec![servers[0].url(), servers[1].url(), servers[3].url()],
        key,
    );
    let joint = RedisConfig {
        next_urls: new.urls.clone(),
        ..old.clone()
    };
    (old, joint, new)
}

/// Whether `producer` leads now on a chain whose head is `head` (importing what the log holds
/// above it first).
async fn leads(producer: &Producer, head: &SealedBlock) -> bool {
    matches!(
        producer.adapter.leader_state(head_of(head)).await,
        Ok(LeaderState::ReconciledLeader)
    )
}

/// Puts back on `server` the record `saved` from before the change, as a begin that never
/// reached it (or a restore from before it) leaves it.
fn put_back(
    server: &RedisServer,
    key: &str,
    saved: &(poa_test_support::RespValue, poa_test_support::RespValue),
) {
    server.command(&[b"DEL", format!("{key}:membership").as_bytes()]);
    put_membership(server, key, saved);
}

#[tokio::test]
async fn change__when_begun_and_committed_while_each_list_runs_a_process__then_only_the_record_s_own_leads_and_the_chain_goes_on()
 {
    // given: {A,B,C} leads at height 1; a process of both lists and one of {A,B,D} wait
    let servers = servers(4);
    let key = "poa:membership:change";
    let (old, joint, new) = lists(&servers, key);
    let old = producer_with(old).await;
    let first = block(1, 0);
    let old_leads = until(|| async {
        matches!(
            old.adapter.leader_state(below(1)).await,
            Ok(LeaderState::ReconciledLeader)
        )
    })
    .await;
    assert!(old_leads, "{:?}", old.adapter.lease_status());
    old.adapter.publish_produced_block(&first).await.unwrap();
    let joint_process = producer_as_started(joint.clone()).await;
    let new_process = producer_as_started(new).await;
    assert!(
        !leads(&joint_process, &first).await,
        "both lists lead before the change"
    );
    assert!(
        !leads(&new_process, &first).await,
        "the new list leads before the change"
    );

    // when: the change begins
    let begun = begin_membership_change(joint.clone()).await.unwrap();

    // then: the old list's leader may still think it leads (its lease is locally valid) but
    // no node takes its block; the new list's process does not lead; the joint one leads
    // (once the old leader's lease ran out) and goes on from the old list's block
    assert_eq!(begun.generation, 2);
    assert!(
        old.adapter
            .publish_produced_block(&block(2, 1))
            .await
            .is_err(),
        "a node took the old list's block after begin"
    );
    assert!(
        until(|| leads(&joint_process, &first)).await,
        "{:?}",
        joint_process.adapter.lease_status()
    );
    assert!(
        !leads(&new_process, &first).await,
        "the new list leads before the commit"
    );
    let second = block(2, 0);
    joint_process
        .adapter
        .publish_produced_block(&second)
        .await
        .unwrap();

    // when: the change is committed
    let committed = until(|| async { commit_membership_change(joint.clone()).await.is_ok() }).await;

    // then: the joint process is refused and the new list's leads on from height 2
    assert!(
        committed,
        "{:?}",
        commit_membership_change(joint.clone()).await
    );
    assert!(
        joint_process
            .adapter
            .publish_produced_block(&block(3, 1))
            .await
            .is_err(),
        "a node took the joint process's block after the commit"
    );
    assert!(
        !leads(&old, &second).await,
        "the old list leads after the commit"
    );
    assert!(
        until(|| leads(&new_process, &second)).await,
        "{:?}",
        new_process.adapter.lease_status()
    );
    let third = block(3, 0);
    new_process
        .adapter
        .publish_produced_block(&third)
        .await
        .unwrap();
}

#[tokio::test]
async fn commit__when_the_joint_record_holds_no_quorum_of_the_old_list__then_refuses_and_the_old_and_new_lists_never_both_lead()
 {
    // given: a begin that reached only B and D (A and C kept the old record), the old list
    // leading on A and C
    let servers = servers(4);
    let key = "poa:membership:partial";
    let (old, joint, new) = lists(&servers, key);
    let old = producer_with(old).await;
    let saved_a = membership_of(&servers[0], key);
    let saved_c = membership_of(&servers[2], key);
    begin_membership_change(joint.clone()).await.unwrap();
    put_back(&servers[0], key, &saved_a);
    put_back(&servers[2], key, &saved_c);
    let head = below(1);
    let old_leads = until(|| async {
        matches!(
            old.adapter.leader_state(head).await,
            Ok(LeaderState::ReconciledLeader)
        )
    })
    .await;
    assert!(old_leads, "{:?}", old.adapter.lease_status());

    // when
    let commit = commit_membership_change(joint).await;

    // then: refused, and the new list does not lead beside the old one (the old list's
    // process, which led on A and C, fails closed once it reads the joint record on B: a
    // begin cut short is completed by running it again)
    let refusal = format!("{commit:?}");
    assert!(
        commit.is_err() && refusal.contains("quorum of each list"),
        "{refusal}"
    );
    let new_process = producer_as_started(new).await;
    let new_state = new_process.adapter.leader_state(head).await;
    assert!(
        !matches!(new_state, Ok(LeaderState::ReconciledLeader)),
        "the old and the new list both lead: {new_state:?}"
    );
    assert!(
        new_process
            .adapter
            .publish_produced_block(&block(1, 1))
            .await
            .is_err(),
        "a node took the new list's block beside the old list's leader"
    );
}
