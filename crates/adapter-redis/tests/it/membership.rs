//! The membership identity against real redis-servers: two processes whose node lists share
//! only a minority never both lead, the scripts refuse a caller of another membership, a fleet
//! bootstraps only when every node is blank (else `membership init`), a leader re-admits a
//! member restarted empty and a follower joins the new generation, and a stop-the-world change
//! leaves a process on the old list failing closed.

use std::time::Duration;

use adapter_redis::{init_membership, set_membership};
use poa_ports::{BlockReconciliationPort, LeaderState, ReconciliationError};
use poa_test_support::{RedisServer, RespValue};

use crate::support::{
    Producer, below, block, clear_owner, config, head_of, index_members, membership_of, owner,
    producer_as_started, producer_with, put_membership, servers, set_owner, until, urls,
};

const MEMBERSHIP_CHECK: &str = include_str!("../../lua/membership_check.lua");
const PROMOTE: &str = include_str!("../../lua/promote.lua");

fn text(server: &RedisServer, args: &[&[u8]]) -> Option<String> {
    match server.command(args) {
        RespValue::Bulk(bytes) => Some(String::from_utf8(bytes).unwrap()),
        RespValue::Null => None,
        other => panic!("unexpected reply {other:?}"),
    }
}

fn server_id(server: &RedisServer, key: &str) -> Option<String> {
    text(server, &[b"GET", format!("{key}:server_id").as_bytes()])
}

fn generation(server: &RedisServer, key: &str) -> Option<String> {
    text(
        server,
        &[
            b"HGET",
            format!("{key}:membership").as_bytes(),
            b"generation",
        ],
    )
}

fn last_error_of(producer: &Producer, node: usize) -> String {
    producer.adapter.lease_status().nodes[node]
        .last_error
        .clone()
        .unwrap_or_default()
}

#[tokio::test]
async fn lease__when_two_processes_list_sets_sharing_a_minority__then_the_mixed_list_never_leads_beside_the_other()
 {
    // given: servers A, B, C, D; the fleet {A,B,C} leads on A and C (B was held by someone
    // else while it acquired, as when B is half-alive for it)
    let servers = servers(4);
    let key = "poa:membership:fork";
    let abc = urls(&servers[..3]);
    let abd = vec![servers[0].url(), servers[1].url(), servers[3].url()];
    let first = producer_with(config(abc, key)).await;
    set_owner(&servers[1], key, "someone-else", 60_000);
    assert_eq!(
        first.adapter.leader_state(below(1)).await.unwrap(),
        LeaderState::ReconciledLeader
    );
    clear_owner(&servers[1], key);

    // when: a process started with {A,B,D} (B free, D fresh) tries to lead
    let second = producer_with(config(abd, key)).await;
    let second_state = second.adapter.leader_state(below(1)).await;

    // then: it does not lead (B and D are not a quorum of the fleet's servers: D refuses it),
    // the first still does, and D's refusal is named
    assert!(
        !matches!(second_state, Ok(LeaderState::ReconciledLeader)),
        "both lead: {second_state:?}"
    );
    assert_eq!(owner(&servers[3], key), None, "D granted a lease");
    assert_eq!(
        first.adapter.leader_state(below(1)).await.unwrap(),
        LeaderState::ReconciledLeader
    );
    assert!(
        last_error_of(&second, 2).contains("MEMBERSHIP"),
        "{:?}",
        second.adapter.lease_status()
    );
    assert!(second.metric("poa_membership_refusals_total{node=") >= 0.0);
    assert!(
        second
            .encoded_metrics()
            .lines()
            .any(|line| line.starts_with("poa_membership_refusals_total") && !line.ends_with(" 0")),
        "{}",
        second.encoded_metrics()
    );
}

#[tokio::test]
async fn lease__when_a_process_lists_a_server_of_another_fleet__then_fails_closed_and_says_which_node_holds_what()
 {
    // given: the fleet {A,B,C} and another fleet on {D,E,F}
    let servers = servers(6);
    let key = "poa:membership:foreign";
    let _fleet = producer_with(config(urls(&servers[..3]), key)).await;
    let _other = producer_with(config(urls(&servers[3..]), key)).await;

    // when: a process lists A, B and D
    let mixed = producer_as_started(config(
        vec![servers[0].url(), servers[1].url(), servers[3].url()],
        key,
    ))
    .await;
    let state = mixed.adapter.leader_state(below(1)).await;

    // then
    let Err(ReconciliationError::Membership { detail }) = state else {
        panic!("joined: {state:?}");
    };
    assert!(detail.contains("not a member"), "{detail}");
    assert!(mixed.adapter.lease_status().membership.is_some());
    assert_eq!(mixed.metric("poa_membership_generation"), 0.0);
    assert_eq!(owner(&servers[0], key), None);
}

/// `membership_check.lua` in front of `promote.lua`, as the adapter loads it.
fn promote_checked(server: &RedisServer, key: &str, expected_id: &str, digest: &str) -> RespValue {
    let lua = format!("{MEMBERSHIP_CHECK}{PROMOTE}");
    server.command(&[
        b"EVAL",
        lua.as_bytes(),
        b"4",
        format!("{key}:server_id").as_bytes(),
        format!("{key}:membership").as_bytes(),
        key.as_bytes(),
        format!("{key}:epoch:token").as_bytes(),
        expected_id.as_bytes(),
        digest.as_bytes(),
        b"token",
        b"60000",
        b"0",
    ])
}

#[test]
fn membership_check__when_the_server_id_or_the_digest_differs__then_refuses_and_runs_nothing() {
    // given: a node with server id `ab..` and a record of digest `d1`
    let server = RedisServer::start();
    let key = "poa:membership:script";
    let id = "ab".repeat(16);
    server.command(&[b"SET", format!("{key}:server_id").as_bytes(), id.as_bytes()]);
    server.command(&[
        b"HSET",
        format!("{key}:membership").as_bytes(),
        b"digest",
        b"d1",
        b"generation",
        b"1",
    ]);

    // when
    let wrong_digest = promote_checked(&server, key, &id, "d2");
    let wrong_id = promote_checked(&server, key, &"cd".repeat(16), "d1");
    let nothing_joined = promote_checked(&server, key, "", "");

    // then: each is a MEMBERSHIP refusal, and no lease or epoch was written
    for reply in [wrong_digest, wrong_id, nothing_joined] {
        let RespValue::Error(error) = reply else {
            panic!("not refused: {reply:?}");
        };
        assert!(error.starts_with("MEMBERSHIP:"), "{error}");
    }
    assert_eq!(owner(&server, key), None);
    assert_eq!(
        text(&server, &[b"GET", format!("{key}:epoch:token").as_bytes()]),
        None
    );

    // when: the caller's membership is the node's
    let granted = promote_checked(&server, key, &id, "d1");

    // then
    assert_eq!(granted, RespValue::Integer(1));
}

#[test]
fn membership_check__when_the_node_was_wiped__then_refuses_the_caller_that_knew_it() {
    // given: a node that held id `ab..` and record `d1`, then lost everything
    let server = RedisServer::start();
    let key = "poa:membership:wiped";
    server.command(&[b"FLUSHALL"]);

    // when
    let reply = promote_checked(&server, key, &"ab".repeat(16), "d1");

    // then
    assert!(matches!(reply, RespValue::Error(error) if error.starts_with("MEMBERSHIP:")));
    assert_eq!(owner(&server, key), None);
}

#[tokio::test]
async fn connect__when_every_node_is_blank__then_bootstraps_an_id_on_each_and_the_first_record() {
    // given
    let servers = servers(3);
    let key = "poa:membership:bootstrap";

    // when
    let producer = producer_as_started(config(urls(&servers), key)).await;
    let state = producer.adapter.leader_state(below(1)).await;

    // then
    assert_eq!(state.unwrap(), LeaderState::ReconciledLeader);
    let ids: Vec<String> = servers
        .iter()
        .map(|server| server_id(server, key).expect("no server id"))
        .collect();
    assert!(ids.iter().all(|id| id.len() == 32));
    assert_ne!(ids[0], ids[1]);
    assert_ne!(ids[1], ids[2]);
    for server in &servers {
        assert_eq!(generation(server, key).as_deref(), Some("1"));
    }
    assert_eq!(producer.metric("poa_membership_generation"), 1.0);
}

#[tokio::test]
async fn connect__when_a_node_is_down_at_a_fresh_start__then_bootstraps_nothing_until_membership_init()
 {
    // given: A and B blank, C down
    let servers = [
        RedisServer::start(),
        RedisServer::start(),
        RedisServer::new_stopped(),
    ];
    let key = "poa:membership:init";
    let config = config(urls(&servers), key);

    // when
    let producer = producer_as_started(config.clone()).await;
    let before_init = producer.adapter.leader_state(below(1)).await;

    // then: nothing written, and it says why
    assert!(
        matches!(before_init, Err(ReconciliationError::Membership { .. })),
        "{before_init:?}"
    );
    assert_eq!(server_id(&servers[0], key), None);
    assert_eq!(generation(&servers[1], key), None);

    // when: the operator, who knows the list is right, runs membership init
    let written = init_membership(config).await.unwrap();

    // then: the record names A and B and leaves C's place vacant; the producer leads
    assert_eq!((written.generation, written.members), (1, 2));
    let led = until(|| async {
        matches!(
            producer.adapter.leader_state(below(1)).await,
            Ok(LeaderState::ReconciledLeader)
        )
    })
    .await;
    assert!(led, "{:?}", producer.adapter.lease_status());

    // when: C starts, blank
    servers[2].restart();

    // then: the leader fills the vacancy with it
    let filled = until(|| async {
        let _ = producer.adapter.leader_state(below(1)).await;
        generation(&servers[2], key).as_deref() == Some("2")
    })
    .await;
    assert!(filled, "{:?}", producer.adapter.lease_status());
    assert!(server_id(&servers[2], key).is_some());
}

#[tokio::test]
async fn readmission__when_a_member_restarts_empty_within_the_budget__then_the_leader_readmits_it_and_a_follower_joins()
 {
    // given: N=3 with budget 1 (every write needs all three), a leader and a follower
    let servers = servers(3);
    let key = "poa:membership:readmit";
    let config = adapter_redis::RedisConfig {
        quorum_disruption_budget: 1,
        ..config(urls(&servers), key)
    };
    let leader = producer_with(config.clone()).await;
    let follower = producer_with(config).await;
    assert_eq!(
        leader.adapter.leader_state(below(1)).await.unwrap(),
        LeaderState::ReconciledLeader
    );
    let first = block(1, 0);
    leader.adapter.publish_produced_block(&first).await.unwrap();
    let wiped_id = server_id(&servers[2], key).unwrap();

    // when: C restarts empty
    servers[2].restart();
    let readmitted = until(|| async {
        let _ = leader.adapter.leader_state(head_of(&first)).await;
        generation(&servers[2], key).as_deref() == Some("2")
    })
    .await;

    // then: C has a new id and the second generation; the leader leads and C counts again
    assert!(readmitted, "{:?}", leader.adapter.lease_status());
    assert_ne!(server_id(&servers[2], key).unwrap(), wiped_id);
    assert_eq!(leader.metric("poa_membership_readmissions_total"), 1.0);
    // (its first write to C may find no lease there: the next cycle takes C back and puts
    // the block on a quorum, which with this budget is every node)
    let second = block(2, 0);
    let on_every_node = until(|| async {
        match leader.adapter.leader_state(head_of(&first)).await {
            Ok(LeaderState::ReconciledLeader) => {
                let _ = leader.adapter.publish_produced_block(&second).await;
            }
            Ok(LeaderState::UnreconciledBlocks(blocks)) => {
                return blocks == vec![second.clone()];
            }
            _ => {}
        }
        false
    })
    .await;
    assert!(on_every_node, "{:?}", leader.adapter.lease_status());
    // (C holds the second block; anti-entropy may have put the first back there too)
    assert_eq!(index_members(&servers[2], key, 2, 2).len(), 1);

    // when: the follower reads the log
    let joined = until(|| async {
        let _ = follower.adapter.follower_state(head_of(&first)).await;
        follower.metric("poa_membership_generation") == 2.0
    })
    .await;

    // then
    assert!(joined, "{:?}", follower.adapter.lease_status());
}

#[tokio::test]
async fn readmission__when_another_process_claimed_the_emptied_member_first__then_the_leader_keeps_its_lease_and_readmits_it_with_that_id()
 {
    // given: a leader on three servers; C restarts empty, and another process (a follower
    // that found C empty first) gave it a new server id before the leader read it, and
    // installed no record there yet
    let servers = servers(3);
    let key = "poa:membership:claimed";
    let leader = producer_with(config(urls(&servers), key)).await;
    assert_eq!(
        leader.adapter.leader_state(below(1)).await.unwrap(),
        LeaderState::ReconciledLeader
    );
    let first = block(1, 0);
    leader.adapter.publish_produced_block(&first).await.unwrap();
    let epoch = leader.adapter.lease_status().epoch;
    let wiped_id = server_id(&servers[2], key).unwrap();
    servers[2].restart();
    let claimed = "0c1a1d0c1a1d0c1a1d0c1a1d0c1a1d00";
    servers[2].command(&[
        b"SET",
        format!("{key}:server_id").as_bytes(),
        claimed.as_bytes(),
    ]);

    // when: the leader's cycles go on
    let refusals = std::cell::RefCell::new(Vec::new());
    let readmitted = until(|| async {
        match leader.adapter.leader_state(head_of(&first)).await {
            Ok(LeaderState::ReconciledLeader) => {}
            other => refusals.borrow_mut().push(format!("{other:?}")),
        }
        generation(&servers[2], key).as_deref() == Some("2")
    })
    .await;

    // then: C is re-admitted with the id it was given, and the leader led throughout under
    // the epoch it held
    assert!(readmitted, "{:?}", leader.adapter.lease_status());
    assert_eq!(server_id(&servers[2], key).as_deref(), Some(claimed));
    assert_ne!(claimed, wiped_id);
    assert!(refusals.borrow().is_empty(), "{refusals:?}");
    assert_eq!(
        leader.adapter.leader_state(head_of(&first)).await.unwrap(),
        LeaderState::ReconciledLeader
    );
    assert_eq!(leader.adapter.lease_status().epoch, epoch);
}

#[tokio::test]
async fn readmission__when_a_member_comes_back_with_the_record_before_it_and_no_lease_is_held__then_it_is_brought_forward_and_the_fleet_leads()
 {
    // given: N=3 with budget 1 (every write needs all three); C restarted empty and was
    // re-admitted (generation 2); then A came back from a backup taken before that, holding
    // generation 1, and nobody holds the lease
    let servers = servers(3);
    let key = "poa:membership:lagging";
    let config = adapter_redis::RedisConfig {
        quorum_disruption_budget: 1,
        ..config(urls(&servers), key)
    };
    let leader = producer_with(config.clone()).await;
    assert_eq!(
        leader.adapter.leader_state(below(1)).await.unwrap(),
        LeaderState::ReconciledLeader
    );
    let backup_of_a = membership_of(&servers[0], key);
    servers[2].restart();
    let readmitted = until(|| async {
        let _ = leader.adapter.leader_state(below(1)).await;
        generation(&servers[2], key).as_deref() == Some("2")
    })
    .await;
    assert!(readmitted, "{:?}", leader.adapter.lease_status());
    leader.adapter.release().await.unwrap();
    drop(leader);
    put_membership(&servers[0], key, &backup_of_a);
    assert_eq!(generation(&servers[0], key).as_deref(), Some("1"));

    // when: a producer starts
    let producer = producer_as_started(config).await;
    let led = until(|| async {
        matches!(
            producer.adapter.leader_state(below(1)).await,
            Ok(LeaderState::ReconciledLeader)
        )
    })
    .await;

    // then: A holds the current record again, and the fleet leads
    assert!(led, "{:?}", producer.adapter.lease_status());
    assert_eq!(generation(&servers[0], key).as_deref(), Some("2"));
}

#[tokio::test]
async fn set_membership__when_a_node_is_replaced_stop_the_world__then_the_new_list_leads_and_the_old_list_never_does()
 {
    // given: the fleet {A,B,C} led once, then stopped
    let servers = servers(4);
    let key = "poa:membership:set";
    let abc = config(urls(&servers[..3]), key);
    let abd = config(
        vec![servers[0].url(), servers[1].url(), servers[3].url()],
        key,
    );
    {
        let old = producer_with(abc.clone()).await;
        assert_eq!(
            old.adapter.leader_state(below(1)).await.unwrap(),
            LeaderState::ReconciledLeader
        );
        old.adapter.shutdown(Duration::from_secs(1)).await;
    }

    // when: the operator writes the new list
    let written = set_membership(abd.clone()).await.unwrap();

    // then: generation 2 names A, B and D; a process on the new list leads
    assert_eq!((written.generation, written.members), (2, 3));
    let new = producer_as_started(abd).await;
    assert_eq!(
        new.adapter.leader_state(below(1)).await.unwrap(),
        LeaderState::ReconciledLeader
    );

    // when: a process still on the old list starts
    let stale = producer_as_started(abc).await;
    let state = stale.adapter.leader_state(below(1)).await;

    // then: it does not lead
    assert!(
        !matches!(state, Ok(LeaderState::ReconciledLeader)),
        "{state:?}"
    );
}

#[tokio::test]
async fn set_membership__when_a_lease_is_held__then_refuses_and_writes_nothing() {
    // given
    let servers = servers(3);
    let key = "poa:membership:set-held";
    let config = config(urls(&servers), key);
    let running = producer_with(config.clone()).await;
    assert_eq!(
        running.adapter.leader_state(below(1)).await.unwrap(),
        LeaderState::ReconciledLeader
    );

    // when
    let refused = set_membership(config).await;

    // then
    let Err(error) = refused else {
        panic!("written while a producer leads");
    };
    assert!(error.to_string().contains("lease is held"), "{error}");
    for server in &servers {
        assert_eq!(generation(server, key).as_deref(), Some("1"));
    }
}
