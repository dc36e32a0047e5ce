//! Publish: fencing, height uniqueness, healing, renewal, half-alive nodes, unknown outcomes,
//! the outstanding-task gauge and connection reuse.

use std::time::{Duration, Instant};

use adapter_chain::Seal;
use poa_ports::{BlockReconciliationPort, LeaderState, ReconciliationError};
use poa_test_support::{FaultProxy, ProxyMode, RespValue, wait_for_async};

use crate::support::*;

/// The lease TTL of the leaders behind fault proxies: far beyond every deadline their tests
/// wait with, so the lease cannot lapse on a node however slowly a loaded machine runs them
/// (what they check is how a publish counts writes of unknown outcome, not the lease's expiry).
const LEASE_OUTLIVING_THE_TEST: Duration = Duration::from_secs(120);

/// A leader on three nodes, the last two reached through fault proxies (returned in order),
/// returned once none of its calls is in flight: a link's fault then meets only the calls the
/// test makes next, never a late reply of the leadership's own reads.
async fn leader_with_two_nodes_behind_proxies(
    servers: &[poa_test_support::RedisServer],
    key: &str,
) -> (Vec<FaultProxy>, Producer) {
    let proxies: Vec<FaultProxy> = servers[1..]
        .iter()
        .map(|s| FaultProxy::start(s.addr()))
        .collect();
    let urls = vec![servers[0].url(), proxies[0].url(), proxies[1].url()];
    let producer = producer_with(config_with_ttl(urls, key, LEASE_OUTLIVING_THE_TEST)).await;
    producer.adapter.leader_state(below(1)).await.unwrap();
    let quiet = wait_for_async(Duration::from_secs(10), || async {
        producer.adapter.background_tasks() == 0
    })
    .await;
    assert!(quiet, "the leadership's background calls did not end");
    (proxies, producer)
}

/// Sets every proxy back to pass and retries publishing `block` until it succeeds (bounded).
async fn heal_and_retry_publish(
    proxies: &[FaultProxy],
    producer: &Producer,
    block: &adapter_chain::SealedBlock,
) -> bool {
    proxies
        .iter()
        .for_each(|proxy| proxy.set_mode(ProxyMode::Pass));
    wait_for_async(Duration::from_secs(10), || async {
        producer.adapter.publish_produced_block(block).await.is_ok()
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn publish_produced_block__when_fencing_epoch_is_uninitialized__then_returns_error() {
    // given
    let servers = servers(3);
    let producer = producer(urls(&servers), "poa:test:no-epoch").await;
    let mut genesis = block(0, 0);
    genesis.seal = Seal::Genesis;

    // when
    let produced = producer.adapter.publish_produced_block(&block(1, 0)).await;
    let genesis = producer.adapter.publish_produced_block(&genesis).await;

    // then
    assert!(matches!(produced, Err(ReconciliationError::NoEpoch)));
    assert!(genesis.is_ok(), "genesis is the only exemption");
}

#[tokio::test(flavor = "multi_thread")]
async fn publish_produced_block__when_previous_leader_writes_after_handoff__then_rejects_zombie_write()
 {
    // given
    let servers = servers(3);
    let key = "poa:test:zombie";
    let old = producer(urls(&servers), key).await;
    old.adapter.leader_state(below(1)).await.unwrap();
    servers.iter().for_each(|server| clear_owner(server, key));
    let current = producer(urls(&servers), key).await;
    assert_eq!(
        current.adapter.leader_state(below(1)).await.unwrap(),
        LeaderState::ReconciledLeader
    );

    // when
    let zombie = old.adapter.publish_produced_block(&block(1, 9)).await;

    // then
    assert!(
        matches!(zombie, Err(ReconciliationError::Fenced { .. })),
        "{zombie:?}"
    );
    assert_eq!(
        current.adapter.leader_state(below(1)).await.unwrap(),
        LeaderState::ReconciledLeader
    );
    assert!(servers.iter().all(|server| stream_len(server, key) == 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn publish_produced_block__when_epoch_is_behind_on_one_node__then_first_write_heals_epoch() {
    // given
    let servers = servers(3);
    let key = "poa:test:heal";
    set_epoch(&servers[1], key, 4);
    let producer = producer(urls(&servers), key).await;
    producer.adapter.leader_state(below(1)).await.unwrap();
    let epoch = wait_for_async(Duration::from_secs(2), || async {
        producer
            .adapter
            .lease_status()
            .epoch
            .is_some_and(|e| e.get() == 5)
    })
    .await;
    assert!(epoch);
    set_epoch(&servers[0], key, 3);

    // when
    producer
        .adapter
        .publish_produced_block(&block(1, 0))
        .await
        .unwrap();

    // then
    let healed = wait_for_async(Duration::from_secs(2), || async {
        servers.iter().all(|server| epoch_of(server, key) == 5)
    })
    .await;
    assert!(healed);
}

#[tokio::test(flavor = "multi_thread")]
async fn publish_produced_block__when_the_block_is_larger_than_the_log_carries__then_refused_and_nothing_written()
 {
    // given: a bound below the block's encoding, so no reader would ever see the block
    let servers = servers(3);
    let key = "poa:test:too-large";
    let config = adapter_redis::RedisConfig {
        max_entry_bytes: 16,
        ..config(urls(&servers), key)
    };
    let producer = producer_with(config).await;
    producer.adapter.leader_state(below(1)).await.unwrap();

    // when
    let outcome = producer.adapter.publish_produced_block(&block(1, 0)).await;

    // then
    let error = outcome.unwrap_err();
    assert!(
        std::error::Error::source(&error)
            .is_some_and(|source| source.to_string().contains("max_entry_bytes")),
        "{error:?}"
    );
    for server in &servers {
        assert_eq!(stream_len(server, key), 0);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn publish_produced_block__when_write_succeeds__then_extends_lease_ttl() {
    // given
    let servers = servers(3);
    let key = "poa:test:renew";
    let config = adapter_redis::RedisConfig {
        lease_ttl: Duration::from_millis(700),
        ..config(urls(&servers), key)
    };
    let producer = producer_with(config).await;
    producer.adapter.leader_state(below(1)).await.unwrap();
    let token = owner(&servers[0], key).unwrap();

    // when
    tokio::time::sleep(Duration::from_millis(500)).await;
    producer
        .adapter
        .publish_produced_block(&block(1, 0))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;

    // then
    assert!(owned_by(&servers, key, &token) >= 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn publish_produced_block__when_write_succeeds_on_less_than_quorum__then_entry_is_not_reconciled()
 {
    // given
    let servers = servers(3);
    let key = "poa:test:sub-quorum";
    let producer = producer(urls(&servers), key).await;
    producer.adapter.leader_state(below(1)).await.unwrap();
    set_owner(&servers[1], key, "other-owner", 60_000);
    set_owner(&servers[2], key, "other-owner", 60_000);

    // when
    let published = producer.adapter.publish_produced_block(&block(1, 0)).await;
    let reconciled = producer.adapter.leader_state(below(1)).await;

    // then
    // the orphan is neither committed nor reported as "nothing to do" by a leader
    assert!(published.is_err());
    assert!(
        matches!(reconciled, Err(_) | Ok(LeaderState::ReconciledFollower)),
        "{reconciled:?}"
    );
    assert_eq!(stream_len(&servers[0], key), 1);
    assert_eq!(stream_len(&servers[1], key), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn leader_state__after_a_failed_publish_while_still_leading__then_full_scan_repairs_own_orphan()
 {
    // given: the leader's publish of X is fenced on nodes 1 and 2 (another owner shows there
    // for a moment) and lands on node 0 only: an orphan of its own, while it keeps leading
    let servers = servers(3);
    let key = "poa:test:own-orphan";
    let proxy = FaultProxy::start(servers[0].addr());
    let urls = vec![proxy.url(), servers[1].url(), servers[2].url()];
    let producer = producer(urls, key).await;
    assert_eq!(
        producer.adapter.leader_state(below(1)).await.unwrap(),
        LeaderState::ReconciledLeader
    );
    let token = String::from_utf8(owner(&servers[1], key).unwrap()).unwrap();
    let orphan = block(1, 0);
    servers[1..]
        .iter()
        .for_each(|server| set_owner(server, key, "other-owner", 60_000));
    let published = producer.adapter.publish_produced_block(&orphan).await;
    servers[1..]
        .iter()
        .for_each(|server| set_owner(server, key, &token, 60_000));
    // node 0 now answers last, so a cheap check would hear "in sync" from nodes 1 and 2 first
    proxy.set_mode(ProxyMode::Latency(Duration::from_millis(50)));

    // when
    let state = producer.adapter.leader_state(below(1)).await.unwrap();

    // then: the same leadership (no new promotion) repaired its own orphan and returns it
    assert!(published.is_err());
    assert_eq!(producer.metric("poa_promotion_success_total"), 1.0);
    assert_eq!(blocks(state), vec![orphan]);
    let holders = servers.iter().filter(|s| stream_len(s, key) == 1).count();
    assert!(holders >= 2, "{holders}");
}

#[tokio::test(flavor = "multi_thread")]
async fn partial_publish_then_retry_at_same_height__then_new_leader_reconciles_the_stored_block() {
    // given
    let servers = servers(1);
    let key = "poa:test:retry";
    let first = producer(urls(&servers), key).await;
    first.adapter.leader_state(below(1)).await.unwrap();
    let stored = block(1, 1);
    append(&servers[0], key, &stored, 1);

    // when
    let retry = first.adapter.publish_produced_block(&block(1, 2)).await;
    first.adapter.release().await.unwrap();
    let second = producer(urls(&servers), key).await;
    let state = second.adapter.leader_state(below(1)).await.unwrap();

    // then
    assert!(
        matches!(retry, Err(ReconciliationError::HeightTaken { .. })),
        "{retry:?}"
    );
    assert_eq!(stream_len(&servers[0], key), 1);
    assert_eq!(blocks(state), vec![stored]);
}

#[tokio::test(flavor = "multi_thread")]
async fn write_block__when_published__then_heights_index_holds_height_block_id_and_entry_id() {
    // given
    let servers = servers(1);
    let key = "poa:test:index";
    let producer = producer(urls(&servers), key).await;
    producer.adapter.leader_state(below(1)).await.unwrap();
    let published = block(1, 0);

    // when
    producer
        .adapter
        .publish_produced_block(&published)
        .await
        .unwrap();

    // then: the member names the height, the block and the stream entry that holds it
    let RespValue::Array(members) = servers[0].command(&[
        b"ZRANGEBYSCORE",
        b"poa:test:index:heights:index",
        b"1",
        b"1",
    ]) else {
        panic!("ZRANGEBYSCORE did not answer an array");
    };
    let RespValue::Array(entries) =
        servers[0].command(&[b"XRANGE", b"poa:test:index:block:stream", b"-", b"+"])
    else {
        panic!("XRANGE did not answer an array");
    };
    let entry_id = String::from_utf8(
        entries[0].as_array().unwrap()[0]
            .as_bytes()
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    let expected = format!("1:{}:{entry_id}", published.id().to_hex());
    assert_eq!(members, vec![RespValue::bulk(expected)]);
}

#[tokio::test(flavor = "multi_thread")]
async fn write_block__when_height_is_only_in_the_index__then_rejected_via_index() {
    // given
    let servers = servers(1);
    let key = "poa:test:index-only";
    let producer = producer(urls(&servers), key).await;
    producer.adapter.leader_state(below(1)).await.unwrap();
    servers[0].command(&[b"ZADD", b"poa:test:index-only:heights:index", b"1", b"1:ff"]);

    // when
    let published = producer.adapter.publish_produced_block(&block(1, 0)).await;

    // then
    assert!(published.is_err());
    assert_eq!(stream_len(&servers[0], key), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn publish_produced_block__when_one_node_is_half_alive__then_returns_at_the_healthy_quorum() {
    // given: 3 healthy + 1 half-alive listener (quorum 3), node timeout 1 s
    let servers = servers(3);
    let (_half_alive, all) = with_half_alive(&servers);
    let config = adapter_redis::RedisConfig {
        node_timeout: Duration::from_secs(1),
        ..config(all, "poa:test:half-alive-publish")
    };
    let producer = producer_with(config).await;
    producer.adapter.leader_state(below(1)).await.unwrap();

    // when
    let started = Instant::now();
    let published = producer.adapter.publish_produced_block(&block(1, 0)).await;

    // then
    assert!(published.is_ok(), "{published:?}");
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn publish_produced_block__when_a_minority_node_is_frozen__then_returns_well_inside_node_timeout()
 {
    // given
    let servers = servers(3);
    let key = "poa:test:frozen-publish";
    let config = adapter_redis::RedisConfig {
        node_timeout: Duration::from_secs(1),
        ..config(urls(&servers), key)
    };
    let producer = producer_with(config).await;
    producer.adapter.leader_state(below(1)).await.unwrap();
    servers[2].freeze();

    // when
    let started = Instant::now();
    let published = producer.adapter.publish_produced_block(&block(1, 0)).await;
    let owner_check = producer.adapter.leader_state(below(2)).await;
    let elapsed = started.elapsed();
    servers[2].thaw();

    // then
    assert!(published.is_ok(), "{published:?}");
    assert_eq!(owner_check.unwrap(), LeaderState::ReconciledLeader);
    assert!(elapsed < Duration::from_millis(500), "{elapsed:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn publish_produced_block__when_a_quorum_refuses__then_returns_before_the_straggler_times_out()
 {
    // given: two nodes hold another block at height 1, the third is frozen; timeout 1 s
    let servers = servers(3);
    let key = "poa:test:refusals";
    let config = adapter_redis::RedisConfig {
        node_timeout: Duration::from_secs(1),
        ..config(urls(&servers), key)
    };
    let producer = producer_with(config).await;
    producer.adapter.leader_state(below(1)).await.unwrap();
    let other = block(1, 5);
    append(&servers[0], key, &other, 1);
    append(&servers[1], key, &other, 1);
    servers[2].freeze();

    // when
    let started = Instant::now();
    let published = producer.adapter.publish_produced_block(&block(1, 0)).await;
    let elapsed = started.elapsed();
    servers[2].thaw();

    // then
    assert!(
        matches!(published, Err(ReconciliationError::HeightTaken { .. })),
        "{published:?}"
    );
    assert!(elapsed < Duration::from_millis(500), "{elapsed:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn publish_produced_block__when_refusals_alone_keep_every_process_below_a_quorum__then_the_height_is_taken()
 {
    // given: five nodes with a budget of one (a quorum of four); two hold another block at
    // height 1, so no writer can reach four there
    let servers = servers(5);
    let key = "poa:test:refused-below-quorum";
    let config = adapter_redis::RedisConfig {
        quorum_disruption_budget: 1,
        ..config(urls(&servers), key)
    };
    let producer = producer_with(config).await;
    producer.adapter.leader_state(below(1)).await.unwrap();
    let other = block(1, 5);
    append(&servers[0], key, &other, 1);
    append(&servers[1], key, &other, 1);

    // when
    let published = producer.adapter.publish_produced_block(&block(1, 0)).await;

    // then: the refusal every process would meet (it keeps the lease and names the height),
    // not a quorum missed on the way (which hands the lease over)
    assert!(
        matches!(published, Err(ReconciliationError::HeightTaken { height }) if height.get() == 1),
        "{published:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn publish_produced_block__when_timed_out_writes_landed_later__then_retry_counts_them_as_stored()
 {
    // given: two of three nodes behind proxies that hold every byte, so the first publish
    // times out there (an unknown outcome)
    let servers = servers(3);
    let key = "poa:test:landed";
    let (proxies, producer) = leader_with_two_nodes_behind_proxies(&servers, key).await;
    let produced = block(1, 0);
    proxies
        .iter()
        .for_each(|proxy| proxy.set_mode(ProxyMode::Hold));
    let first = producer.adapter.publish_produced_block(&produced).await;

    // when: the timed-out writes landed after all (here put in place the way write_block.lua
    // stores them: a reset of a timed-out connection may also discard them), and the leader
    // retries the same block
    append(&servers[1], key, &produced, 1);
    append(&servers[2], key, &produced, 1);
    let retried = heal_and_retry_publish(&proxies, &producer, &produced).await;

    // then: no HEIGHT_EXISTS livelock, nothing written twice
    assert!(first.is_err());
    assert!(retried);
    assert!(producer.metric("poa_write_block_already_stored_total") >= 2.0);
    let lengths: Vec<i64> = servers
        .iter()
        .map(|server| stream_len(server, key))
        .collect();
    assert_eq!(lengths, vec![1, 1, 1]);
}

#[tokio::test(flavor = "multi_thread")]
async fn publish_produced_block__when_stragglers_finish__then_outstanding_tasks_gauge_drains_to_zero()
 {
    // given: 3 healthy + 1 half-alive (quorum 3)
    let servers = servers(3);
    let (_half_alive, all) = with_half_alive(&servers);
    let producer = producer(all, "poa:test:gauge").await;
    producer.adapter.leader_state(below(1)).await.unwrap();

    // when
    producer
        .adapter
        .publish_produced_block(&block(1, 0))
        .await
        .unwrap();
    let in_flight = producer.metric("poa_outstanding_publish_tasks");
    let drained = wait_for_async(Duration::from_secs(2), || async {
        producer.metric("poa_outstanding_publish_tasks") == 0.0
    })
    .await;

    // then
    assert!(in_flight >= 1.0, "{in_flight}");
    assert!(drained);
}

#[tokio::test(flavor = "multi_thread")]
async fn publish_produced_block__after_a_thousand_publishes__then_each_node_saw_exactly_one_connection()
 {
    // given
    let servers = servers(3);
    let proxies: Vec<FaultProxy> = servers
        .iter()
        .map(|s| FaultProxy::start(s.addr()))
        .collect();
    let key = "poa:test:connections";
    let producer =
        producer_as_started(config(proxies.iter().map(FaultProxy::url).collect(), key)).await;
    producer.adapter.leader_state(below(1)).await.unwrap();

    // when
    for h in 1..=1000 {
        producer
            .adapter
            .publish_produced_block(&block(h, 0))
            .await
            .unwrap();
    }

    // then
    for proxy in &proxies {
        assert_eq!(proxy.accepted_connections(), 1);
    }
    let all_written = streams_reach(&servers, key, 1000).await;
    assert!(all_written);
}

#[tokio::test(flavor = "multi_thread")]
async fn publish_produced_block__when_replies_are_lost_after_the_writes_landed__then_retry_counts_them_as_stored()
 {
    // given: two of three nodes behind links that deliver every request but cut every reply,
    // cut while no call of the leader is in flight (a cut reply closes the connection, and the
    // client cannot connect again through such a link: its handshake's reply is cut too)
    let servers = servers(3);
    let key = "poa:test:replies-lost";
    let (proxies, producer) = leader_with_two_nodes_behind_proxies(&servers, key).await;
    let produced = block(1, 0);
    proxies
        .iter()
        .for_each(|proxy| proxy.set_mode(ProxyMode::CloseAfter(0)));

    // when: the leader publishes behind the cut links, then again once they are healed
    let published = producer.adapter.publish_produced_block(&produced).await;
    let landed = wait_for_async(Duration::from_secs(10), || async {
        servers.iter().all(|server| stream_len(server, key) == 1)
    })
    .await;
    let retried = heal_and_retry_publish(&proxies, &producer, &produced).await;

    // then: the publish failed although the block landed on every node, and the retry
    // succeeds by counting the landed copies as stored: no HEIGHT_EXISTS livelock, nothing
    // written twice
    assert!(
        matches!(published, Err(ReconciliationError::NoQuorum { .. })),
        "{published:?}"
    );
    assert!(landed, "the writes behind the cut links did not land");
    assert!(retried);
    assert!(producer.metric("poa_write_block_already_stored_total") >= 2.0);
    let lengths: Vec<i64> = servers
        .iter()
        .map(|server| stream_len(server, key))
        .collect();
    assert_eq!(lengths, vec![1, 1, 1]);
}
