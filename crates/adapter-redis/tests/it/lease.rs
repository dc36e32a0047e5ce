//! Lease: acquisition, expiry, handoff, ownership expansion, epoch folding, release and drop.

use std::time::{Duration, Instant};

use adapter_chain::SealedBlock;
use poa_ports::{
    BlockReconciliationPort, LeaderState, LeaseStatus, NodeStatus, ReconciliationError,
};
use poa_test_support::{FaultProxy, ProxyMode, RedisServer, wait_for_async};

use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn leader_state__when_lease_is_free__then_acquires_quorum_ownership() {
    // given
    let servers = servers(3);
    let key = "poa:test:free";
    let producer = producer(urls(&servers), key).await;

    // when
    let state = producer.adapter.leader_state(below(1)).await.unwrap();

    // then
    assert_eq!(state, LeaderState::ReconciledLeader);
    let token = owner(&servers[0], key).unwrap();
    assert!(owned_by(&servers, key, &token) >= 2);
    let status = producer.adapter.lease_status();
    assert_eq!(status.epoch.map(|e| e.get()), Some(1));
    assert!(status.valid_for.is_some_and(|v| v <= TTL));
    assert_eq!(status.nodes.len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn leader_state__when_lease_expires__then_another_adapter_becomes_leader() {
    // given
    let servers = servers(3);
    let key = "poa:test:expiry";
    let short = |urls| config_with_ttl(urls, key, Duration::from_millis(300));
    let first = producer_with(short(urls(&servers))).await;
    let second = producer_with(short(urls(&servers))).await;

    // when
    let first_state = first.adapter.leader_state(below(1)).await.unwrap();
    let first_epoch = first.adapter.lease_status().epoch.map(|e| e.get());
    let blocked = second.adapter.leader_state(below(1)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(900)).await;
    let second_state = second.adapter.leader_state(below(1)).await.unwrap();

    // then
    assert_eq!(first_state, LeaderState::ReconciledLeader);
    assert_eq!(blocked, LeaderState::ReconciledFollower);
    assert_eq!(second_state, LeaderState::ReconciledLeader);
    // Above the first leadership's epoch; not necessarily 2: under load the blocked attempt
    // can take a node the first promote had not reached yet, and raise that node's epoch.
    let epoch = |producer: &Producer| producer.adapter.lease_status().epoch.map(|e| e.get());
    assert!(
        epoch(&second) > first_epoch,
        "{:?} then {:?}",
        first_epoch,
        epoch(&second)
    );
    assert_eq!(
        first.adapter.leader_state(below(1)).await.unwrap(),
        LeaderState::ReconciledFollower
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn handoff_time__when_leader_is_dropped__then_follower_leads_within_ttl_plus_poll() {
    // given
    let servers = servers(3);
    let key = "poa:test:handoff";
    let short = |urls| config_with_ttl(urls, key, Duration::from_millis(300));
    let leader = producer_with(short(urls(&servers))).await;
    let follower = producer_with(short(urls(&servers))).await;
    assert_eq!(
        leader.adapter.leader_state(below(1)).await.unwrap(),
        LeaderState::ReconciledLeader
    );
    assert_eq!(
        follower.adapter.leader_state(below(1)).await.unwrap(),
        LeaderState::ReconciledFollower
    );

    // when
    let dropped = Instant::now();
    drop(leader);
    let mut took_over = false;
    while dropped.elapsed() < Duration::from_millis(600) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if follower.adapter.leader_state(below(1)).await.unwrap() == LeaderState::ReconciledLeader {
            took_over = true;
            break;
        }
    }

    // then
    assert!(took_over, "no takeover within ttl + poll period + margin");
}

#[tokio::test(flavor = "multi_thread")]
async fn release__when_adapter_is_not_lease_owner__then_returns_ok() {
    // given
    let servers = servers(3);
    let producer = producer(urls(&servers), "poa:test:release").await;

    // when
    let first = producer.adapter.release().await;
    let again = producer.adapter.release().await;

    // then
    assert!(first.is_ok() && again.is_ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn release__when_leader_releases__then_lease_is_gone_everywhere_and_epoch_cleared() {
    // given
    let servers = servers(3);
    let key = "poa:test:release-leader";
    let producer = producer(urls(&servers), key).await;
    producer.adapter.leader_state(below(1)).await.unwrap();

    // when
    producer.adapter.release().await.unwrap();

    // then
    assert!(servers.iter().all(|server| owner(server, key).is_none()));
    assert_eq!(producer.adapter.lease_status().epoch, None);
    assert!(
        producer
            .adapter
            .publish_produced_block(&block(1, 0))
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn acquire__when_peer_holds_lock__then_follows_and_counts_lock_held() {
    // given
    let servers = servers(1);
    let key = "poa:test:peer";
    set_owner(&servers[0], key, "peer-owner", 60_000);
    let producer = producer(urls(&servers), key).await;

    // when
    let state = producer.adapter.leader_state(below(1)).await.unwrap();

    // then
    assert_eq!(state, LeaderState::ReconciledFollower);
    assert_eq!(producer.metric("poa_promotion_lock_held_total"), 1.0);
    assert_eq!(producer.metric("poa_promotion_failure_total"), 0.0);
    assert_eq!(owner(&servers[0], key).as_deref(), Some(&b"peer-owner"[..]));
}

#[tokio::test(flavor = "multi_thread")]
async fn acquire__when_one_node_has_a_higher_epoch__then_folds_it_even_if_it_answers_late() {
    // given
    let servers = servers(3);
    let key = "poa:test:late-epoch";
    set_epoch(&servers[2], key, 100);
    let producer = producer(urls(&servers), key).await;

    // when
    let state = producer.adapter.leader_state(below(1)).await.unwrap();

    // then
    assert_eq!(state, LeaderState::ReconciledLeader);
    let folded = wait_for_async(Duration::from_secs(2), || async {
        producer
            .adapter
            .lease_status()
            .epoch
            .is_some_and(|e| e.get() >= 101)
    })
    .await;
    assert!(folded, "epoch {:?}", producer.adapter.lease_status().epoch);
}

/// Three nodes: a peer holds the lease on the first two; the third is free, behind a proxy
/// whose link then gets `latency` each way.
async fn two_held_by_a_peer_and_a_slow_free_one(
    key: &str,
    node_timeout: Duration,
    latency: Duration,
) -> (Vec<RedisServer>, FaultProxy, Producer) {
    let servers = servers(3);
    set_owner(&servers[0], key, "peer", 60_000);
    set_owner(&servers[1], key, "peer", 60_000);
    let proxy = FaultProxy::start(servers[2].addr());
    let config = adapter_redis::RedisConfig {
        node_timeout,
        ..config(vec![servers[0].url(), servers[1].url(), proxy.url()], key)
    };
    let producer = producer_with(config).await;
    proxy.set_mode(ProxyMode::Latency(latency));
    (servers, proxy, producer)
}

#[tokio::test(flavor = "multi_thread")]
async fn acquire__when_a_grant_arrives_after_the_attempt_gave_up__then_it_is_released() {
    // given: the free node answers after the peer's nodes, within the node timeout
    let key = "poa:test:late-grant";
    let (servers, _proxy, producer) = two_held_by_a_peer_and_a_slow_free_one(
        key,
        Duration::from_millis(400),
        Duration::from_millis(60),
    )
    .await;

    // when
    let state = producer.adapter.leader_state(below(1)).await.unwrap();

    // then
    assert_eq!(state, LeaderState::ReconciledFollower);
    let granted_then_released = wait_for_async(Duration::from_secs(2), || async {
        owner(&servers[2], key).is_none() && epoch_of(&servers[2], key) == 1
    })
    .await;
    assert!(
        granted_then_released,
        "late grant stranded: {:?}",
        owner(&servers[2], key)
    );
    let published = producer.adapter.publish_produced_block(&block(1, 0)).await;
    assert!(
        matches!(published, Err(ReconciliationError::NoEpoch)),
        "a process that never led holds no epoch: {published:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn acquire__when_a_promote_times_out_but_runs__then_the_possible_grant_is_released() {
    // given: the free node's link is so slow that the promote runs there while its reply
    // misses the node timeout (an unknown outcome)
    let key = "poa:test:timed-out-grant";
    let (servers, proxy, producer) = two_held_by_a_peer_and_a_slow_free_one(
        key,
        Duration::from_millis(200),
        Duration::from_millis(150),
    )
    .await;

    // when: the attempt gives up at once; the link recovers after the promote timed out
    let started = Instant::now();
    let state = producer.adapter.leader_state(below(1)).await.unwrap();
    tokio::time::sleep_until((started + Duration::from_millis(300)).into()).await;
    proxy.set_mode(ProxyMode::Pass);

    // then: the promote did grant (epoch 1), and the grant is released long before its TTL
    assert_eq!(state, LeaderState::ReconciledFollower);
    let released = wait_for_async(Duration::from_secs(1), || async {
        owner(&servers[2], key).is_none() && epoch_of(&servers[2], key) == 1
    })
    .await;
    assert!(
        released,
        "possible grant stranded: owner {:?}, epoch {}",
        owner(&servers[2], key),
        epoch_of(&servers[2], key)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ownership_check__when_a_node_held_by_another_is_freed__then_expands_lease_to_it() {
    // given
    let servers = servers(3);
    let key = "poa:test:expand";
    set_owner(&servers[2], key, "other", 5_000);
    let producer = producer(urls(&servers), key).await;
    assert_eq!(
        producer.adapter.leader_state(below(1)).await.unwrap(),
        LeaderState::ReconciledLeader
    );
    let token = owner(&servers[0], key).unwrap();
    clear_owner(&servers[2], key);

    // when: the leader's next block (its cycle asked nothing: the lease is locally valid) is
    // fenced by the freed node, so the cycle after it renews, which expands the lease
    publish_after_a_fenced_block(&producer).await;
    let expanded = wait_for_async(Duration::from_secs(2), || async {
        owner(&servers[2], key).as_deref() == Some(&token[..])
    })
    .await;
    producer
        .adapter
        .publish_produced_block(&block(2, 0))
        .await
        .unwrap();

    // then: the next block reaches every node
    assert!(expanded);
    let everywhere = wait_for_async(Duration::from_secs(2), || async {
        servers
            .iter()
            .all(|server| index_members(server, key, 2, 2).len() == 1)
    })
    .await;
    assert!(everywhere);
}

/// The leader's cycle and block 1, which a freed node fences while a quorum stores it, then the
/// next cycles until one renews because of that fenced write (its reply may come after the
/// publish returned).
async fn publish_after_a_fenced_block(producer: &Producer) {
    const RENEWALS: &str = "poa_quorum_latency_seconds_count{operation=\"renew\"}";
    assert_eq!(
        producer.adapter.leader_state(below(1)).await.unwrap(),
        LeaderState::ReconciledLeader
    );
    let renewals = producer.metric(RENEWALS);
    producer
        .adapter
        .publish_produced_block(&block(1, 0))
        .await
        .unwrap();
    let renewed = wait_for_async(Duration::from_secs(1), || async {
        producer.adapter.leader_state(below(2)).await.ok() == Some(LeaderState::ReconciledLeader)
            && producer.metric(RENEWALS) > renewals
    })
    .await;
    assert!(renewed, "no renewal after a fenced write");
}

#[tokio::test(flavor = "multi_thread")]
async fn ownership_check__when_expanded_node_has_a_higher_epoch__then_adopts_it() {
    // given: an election storm left node 2's epoch at 5 while the others are at 0
    let servers = servers(3);
    let key = "poa:test:adopt";
    set_owner(&servers[2], key, "other", 5_000);
    set_epoch(&servers[2], key, 5);
    let producer = producer(urls(&servers), key).await;
    producer.adapter.leader_state(below(1)).await.unwrap();
    assert_eq!(
        producer.adapter.lease_status().epoch.map(|e| e.get()),
        Some(1)
    );
    clear_owner(&servers[2], key);

    // when: a fenced block makes the next cycle renew, which expands the lease to node 2
    publish_after_a_fenced_block(&producer).await;
    let adopted = wait_for_async(Duration::from_secs(2), || async {
        producer
            .adapter
            .lease_status()
            .epoch
            .is_some_and(|e| e.get() == 6)
    })
    .await;
    producer
        .adapter
        .publish_produced_block(&block(2, 0))
        .await
        .unwrap();

    // then: the write healed the lower nodes and landed on all three
    assert!(adopted);
    let healed = wait_for_async(Duration::from_secs(2), || async {
        servers
            .iter()
            .all(|server| epoch_of(server, key) == 6 && index_members(server, key, 2, 2).len() == 1)
    })
    .await;
    assert!(healed);
}

#[tokio::test(flavor = "multi_thread")]
async fn drop__after_publish__then_releases_lease_promptly_despite_inflight_background_tasks() {
    // given: 3 healthy + 1 half-alive node, quorum 3
    let servers = servers(3);
    let key = "poa:test:drop";
    let (_half_alive, all) = with_half_alive(&servers);
    let config = adapter_redis::RedisConfig {
        node_timeout: Duration::from_millis(500),
        ..config(all, key)
    };
    let producer = producer_with(config).await;
    producer.adapter.leader_state(below(1)).await.unwrap();
    let token = owner(&servers[0], key).unwrap();
    producer
        .adapter
        .publish_produced_block(&block(1, 0))
        .await
        .unwrap();
    assert!(producer.metric("poa_outstanding_publish_tasks") >= 1.0);

    // when
    let dropping = Instant::now();
    drop(producer);
    let drop_took = dropping.elapsed();
    tokio::time::sleep(Duration::from_millis(150)).await;

    // then
    assert!(
        drop_took < Duration::from_millis(20),
        "drop blocked for {drop_took:?}"
    );
    assert_eq!(owned_by(&servers, key, &token), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn stragglers__when_publish_tasks_finish_after_quorum__then_lease_is_unchanged() {
    // given
    let servers = servers(3);
    let key = "poa:test:stragglers";
    let (_half_alive, all) = with_half_alive(&servers);
    let producer = producer(all, key).await;
    producer.adapter.leader_state(below(1)).await.unwrap();
    let token = owner(&servers[0], key).unwrap();

    // when
    producer
        .adapter
        .publish_produced_block(&block(1, 0))
        .await
        .unwrap();
    let drained = wait_for_async(Duration::from_secs(3), || async {
        producer.metric("poa_outstanding_publish_tasks") == 0.0
    })
    .await;

    // then
    assert!(drained);
    assert_eq!(owned_by(&servers, key, &token), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn leader_state__when_an_idle_leader_keeps_cycling__then_renews_the_lease_past_its_ttl() {
    // given: a leader with a 2 s lease that produces nothing
    let servers = servers(3);
    let key = "poa:test:renewal";
    let producer = producer(urls(&servers), key).await;
    producer.adapter.leader_state(below(1)).await.unwrap();
    let epoch = producer.adapter.lease_status().epoch;

    // when: cycles every 600 ms for 3.6 s, almost twice the TTL
    let mut states = Vec::new();
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(600)).await;
        states.push(producer.adapter.leader_state(below(1)).await.unwrap());
    }

    // then: the same leadership throughout (no expiry, no new epoch), the TTL re-armed
    assert!(
        states
            .iter()
            .all(|state| *state == LeaderState::ReconciledLeader)
    );
    assert_eq!(producer.adapter.lease_status().epoch, epoch);
    for server in &servers {
        let remaining = match server.command(&[b"PTTL", key.as_bytes()]) {
            poa_test_support::RespValue::Integer(millis) => millis,
            other => panic!("PTTL answered {other:?}"),
        };
        assert!(remaining > 1_000, "{remaining} ms left");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn acquire__when_the_last_release_never_arrived__then_the_next_leadership_gets_a_higher_epoch()
 {
    // given: a leader whose release reached no node, so its own keys linger
    let servers = servers(3);
    let key = "poa:test:lingering";
    let proxies: Vec<FaultProxy> = servers
        .iter()
        .map(|server| FaultProxy::start(server.addr()))
        .collect();
    let producer = producer(proxies.iter().map(FaultProxy::url).collect(), key).await;
    producer.adapter.leader_state(below(1)).await.unwrap();
    let first = producer.adapter.lease_status().epoch.unwrap();
    for proxy in &proxies {
        proxy.set_mode(ProxyMode::Reset);
    }
    producer.adapter.release().await.unwrap();
    for proxy in &proxies {
        proxy.set_mode(ProxyMode::Pass);
    }
    let token = owner(&servers[0], key).expect("the release never arrived");

    // when: the same process leads again while its keys still hold its token
    let led = wait_for_async(Duration::from_secs(2), || async {
        producer.adapter.leader_state(below(1)).await.ok() == Some(LeaderState::ReconciledLeader)
    })
    .await;

    // then: a new leadership, a new epoch, above every epoch the process led with
    assert!(led);
    assert_eq!(owned_by(&servers, key, &token), 3);
    let second = producer.adapter.lease_status().epoch.unwrap();
    assert!(second > first, "led again at {second} after {first}");
}

#[tokio::test(flavor = "multi_thread")]
async fn leader_state__when_fewer_than_a_quorum_answered_its_last_calls__then_does_not_compete_for_the_lease()
 {
    // given: a process whose links to two of three servers are down, after one cycle that
    // found them so; a promote of its on the server it still reaches would only take that
    // server from a healthy candidate, whose acquisition it would split
    let servers = servers(3);
    let key = "poa:test:stand-back";
    let proxies: Vec<FaultProxy> = servers[1..]
        .iter()
        .map(|server| FaultProxy::start(server.addr()))
        .collect();
    let mut process_urls = vec![servers[0].url()];
    process_urls.extend(proxies.iter().map(FaultProxy::url));
    let cut_off = producer(process_urls, key).await;
    for proxy in &proxies {
        proxy.set_mode(ProxyMode::Reset);
    }
    assert!(cut_off.adapter.leader_state(below(1)).await.is_err());
    let epoch_before = epoch_of(&servers[0], key);

    // when: it cycles again, still cut off
    let cycle = cut_off.adapter.leader_state(below(1)).await;

    // then: it asked nothing of the lease on the server it reaches
    assert!(cycle.is_err(), "{cycle:?}");
    assert_eq!(epoch_of(&servers[0], key), epoch_before);
    assert_eq!(owner(&servers[0], key), None);

    // and once its links are back, it competes again within a cycle or two
    for proxy in &proxies {
        proxy.set_mode(ProxyMode::Pass);
    }
    let led = wait_for_async(Duration::from_secs(5), || async {
        cut_off.adapter.leader_state(below(1)).await.ok() == Some(LeaderState::ReconciledLeader)
    })
    .await;
    assert!(led, "it never competed again after its links came back");
}

#[tokio::test(flavor = "multi_thread")]
async fn time_reference__when_a_quorum_of_nodes_answered__then_is_their_clock() {
    // given: before any cycle there is no opinion
    let servers = servers(3);
    let producer = producer(urls(&servers), "poa:test:clock").await;
    assert_eq!(producer.adapter.time_reference(), None);

    // when: one cycle reads every node's clock
    producer.adapter.leader_state(below(1)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;

    // then: the servers run on this machine's clock
    let reference = producer.adapter.time_reference().unwrap().as_unix_millis();
    let local = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(reference.abs_diff(local) < 1_000, "{reference} vs {local}");
}

/// A producer's cycles around garbage in the lease key of the first two of `servers`: what it
/// answered and reported with the garbage, then once the key is deleted there.
struct LeaseGarbage {
    refused: Result<LeaderState<SealedBlock>, ReconciliationError>,
    refused_status: LeaseStatus,
    led: Result<LeaderState<SealedBlock>, ReconciliationError>,
    led_status: LeaseStatus,
}

/// Runs one cycle over the garbage the test wrote in `key`, deletes the key on the first two
/// nodes and runs another.
async fn cycles_around_lease_garbage(servers: &[RedisServer], key: &str) -> LeaseGarbage {
    let producer = producer(urls(servers), key).await;
    let refused = producer.adapter.leader_state(below(1)).await;
    let refused_status = producer.adapter.lease_status();
    for server in &servers[..2] {
        server.command(&[b"DEL", key.as_bytes()]);
    }
    let led = producer.adapter.leader_state(below(1)).await;
    let led_status = producer.adapter.lease_status();
    LeaseGarbage {
        refused,
        refused_status,
        led,
        led_status,
    }
}

/// Whether every node of `nodes` reports a last error containing `text`.
fn all_say(nodes: &[NodeStatus], text: &str) -> bool {
    nodes.iter().all(|node| {
        node.last_error
            .as_deref()
            .is_some_and(|error| error.contains(text))
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn lease_status__when_a_quorum_answers_errors_to_the_lease__then_names_what_each_node_answers_until_it_recovers()
 {
    // given: the lease key of two nodes holds a hash (written by hand, or by another program)
    let servers = servers(3);
    let key = "poa:test:wrong-type-lease";
    for server in &servers[..2] {
        server.command(&[b"HSET", key.as_bytes(), b"field", b"value"]);
    }

    // when
    let cycles = cycles_around_lease_garbage(&servers, key).await;

    // then: no lease, and the status says what the two nodes answer
    let (refused, status) = (&cycles.refused, &cycles.refused_status);
    assert!(
        !matches!(refused, Ok(LeaderState::ReconciledLeader)),
        "{refused:?}"
    );
    assert!(all_say(&status.nodes[..2], "WRONGTYPE"), "{status:?}");
    assert_eq!(status.nodes[2].last_error, None);

    // and once the keys are removed, it leads and the errors are gone
    let (led, status) = (&cycles.led, &cycles.led_status);
    assert!(matches!(led, Ok(LeaderState::ReconciledLeader)), "{led:?}");
    assert!(
        status.nodes.iter().all(|node| node.last_error.is_none()),
        "{status:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn lease_status__when_a_quorum_holds_a_foreign_owner_without_a_ttl__then_names_it_until_it_is_deleted()
 {
    // given: the lease key of two nodes holds an owner that never expires (no producer writes
    // one: promote always sets a time to live), so no process could ever take the lease there
    let servers = servers(3);
    let key = "poa:test:lease-without-ttl";
    for server in &servers[..2] {
        server.command(&[b"SET", key.as_bytes(), b"written-by-hand"]);
    }

    // when
    let cycles = cycles_around_lease_garbage(&servers, key).await;

    // then: no lease, and the status names the key without a time to live
    let (refused, status) = (&cycles.refused, &cycles.refused_status);
    assert!(
        !matches!(refused, Ok(LeaderState::ReconciledLeader)),
        "{refused:?}"
    );
    assert!(all_say(&status.nodes[..2], "no time to live"), "{status:?}");

    // and once the keys are deleted, it leads
    let led = &cycles.led;
    assert!(matches!(led, Ok(LeaderState::ReconciledLeader)), "{led:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn leader_state__when_the_leader_releases__then_a_follower_leads_at_a_higher_epoch() {
    // given
    let servers = servers(3);
    let key = "poa:test:release-handover";
    let first = producer(urls(&servers), key).await;
    let second = producer(urls(&servers), key).await;
    let led = first.adapter.leader_state(below(1)).await.unwrap();
    let first_epoch = first.adapter.lease_status().epoch.unwrap();
    let followed = second.adapter.leader_state(below(1)).await.unwrap();

    // when
    first.adapter.release().await.unwrap();
    let state = second.adapter.leader_state(below(1)).await.unwrap();

    // then
    assert_eq!(led, LeaderState::ReconciledLeader);
    assert_eq!(
        followed,
        LeaderState::ReconciledFollower,
        "a held lease is not taken"
    );
    assert_eq!(
        state,
        LeaderState::ReconciledLeader,
        "a released lease is taken"
    );
    let second_epoch = second.adapter.lease_status().epoch.unwrap();
    assert!(
        second_epoch > first_epoch,
        "{second_epoch:?} after {first_epoch:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn leader_state__when_one_node_of_three_is_half_alive__then_leads_on_the_two_healthy_ones() {
    // given: the fleet's membership, written while the third node was already half-alive
    let servers = servers(2);
    let (_half_alive, all) = with_half_alive(&servers);
    let producer = producer(all, "poa:test:lease-half").await;

    // when
    let state = producer.adapter.leader_state(below(1)).await.unwrap();

    // then
    assert_eq!(
        state,
        LeaderState::ReconciledLeader,
        "two healthy nodes of three are a quorum"
    );
    assert!(producer.adapter.lease_status().epoch.is_some());
}
