//! Faults and several producers: startup against dead and half-alive nodes, a frozen majority,
//! lost quorums, and the multi-producer scenarios of fuel-core's integration suite (9.5)
//! played with adapters instead of full nodes.

use std::time::{Duration, Instant};

use adapter_redis::{RedisConfig, RedisReconciliation, UrlList};
use poa_ports::{BlockReconciliationPort, LeaderState};
use poa_test_support::{HalfAliveListener, RedisServer, wait_for_async};

use crate::support::*;

/// How many of `producers` lead at `next`, each asked once.
async fn leaders(producers: &[&Producer], next: u64) -> Vec<usize> {
    let mut leading = Vec::new();
    for (index, producer) in producers.iter().enumerate() {
        if producer.adapter.leader_state(below(next)).await.ok()
            == Some(LeaderState::ReconciledLeader)
        {
            leading.push(index);
        }
    }
    leading
}

#[tokio::test(flavor = "multi_thread")]
async fn connect__when_no_metrics_registry_is_given__then_leads_and_publishes() {
    // given: an embedder without a Prometheus registry
    let servers = servers(3);
    let config = config(urls(&servers), "poa:test:no-registry");

    // when
    let adapter = RedisReconciliation::connect(config, verifier(), None)
        .await
        .unwrap();

    // then
    assert_eq!(
        adapter.leader_state(below(1)).await.unwrap(),
        LeaderState::ReconciledLeader
    );
    adapter.publish_produced_block(&block(1, 0)).await.unwrap();
    assert!(streams_reach(&servers, "poa:test:no-registry", 1).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn connect__when_a_node_is_half_alive_or_down__then_returns_within_a_small_multiple_of_node_timeout()
 {
    // given
    let servers = servers(1);
    let half_alive = HalfAliveListener::start();
    let down = RedisServer::new_stopped();
    let config = config(
        vec![servers[0].url(), half_alive.url(), down.url()],
        "poa:test:startup",
    );

    // when
    let started = Instant::now();
    let adapter = RedisReconciliation::connect(config, verifier(), None).await;

    // then
    assert!(adapter.is_ok());
    assert!(
        started.elapsed() < NODE_TIMEOUT * 4,
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn leader__when_a_majority_is_frozen__then_production_stops_and_resumes_after_thaw() {
    // given
    let servers = servers(3);
    let key = "poa:test:frozen-majority";
    let producer = producer(urls(&servers), key).await;
    assert_eq!(
        producer.adapter.leader_state(below(1)).await.unwrap(),
        LeaderState::ReconciledLeader
    );
    servers[1].freeze();
    servers[2].freeze();

    // when
    let published = producer.adapter.publish_produced_block(&block(1, 0)).await;
    let state = producer.adapter.leader_state(below(1)).await;
    servers[1].thaw();
    servers[2].thaw();
    let resumed = wait_for_async(Duration::from_secs(4), || async {
        matches!(
            producer.adapter.leader_state(below(1)).await,
            Ok(LeaderState::ReconciledLeader | LeaderState::UnreconciledBlocks(_))
        )
    })
    .await;

    // then: nothing committed while frozen, leadership comes back by itself
    assert!(published.is_err());
    assert!(
        !matches!(state, Ok(LeaderState::ReconciledLeader)),
        "{state:?}"
    );
    assert!(resumed);
}

#[tokio::test(flavor = "multi_thread")]
async fn leader__when_two_of_three_redis_nodes_go_down__then_production_stops() {
    // given
    let servers = servers(3);
    let producer = producer(urls(&servers), "poa:test:two-down").await;
    producer.adapter.leader_state(below(1)).await.unwrap();
    producer
        .adapter
        .publish_produced_block(&block(1, 0))
        .await
        .unwrap();
    servers[0].stop();
    servers[1].stop();

    // when: the leader's next cycle (its lease still locally valid: no round trip), its publish,
    // and the cycle after that
    let _ = producer.adapter.leader_state(below(2)).await;
    let published = producer.adapter.publish_produced_block(&block(2, 0)).await;
    let state = producer.adapter.leader_state(below(2)).await;

    // then: the publish cannot reach a quorum, and the failed publish sends the next cycle to
    // the full check, which cannot lead
    assert!(published.is_err());
    assert!(
        !matches!(state, Ok(LeaderState::ReconciledLeader)),
        "{state:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn single_producer__when_quorum_is_restored__then_production_starts() {
    // given: three URLs, one server running
    let running = RedisServer::start();
    let second = RedisServer::new_stopped();
    let third = RedisServer::new_stopped();
    let producer = producer(
        vec![running.url(), second.url(), third.url()],
        "poa:test:quorum-restored",
    )
    .await;
    let without_quorum = producer.adapter.leader_state(below(1)).await;

    // when: a quorum answers, and the operator, who knows the list is right, initialises the
    // membership of the fresh fleet (no process bootstraps one while a node is down)
    second.restart();
    adapter_redis::init_membership(config(
        vec![running.url(), second.url(), third.url()],
        "poa:test:quorum-restored",
    ))
    .await
    .unwrap();
    let leads = wait_for_async(Duration::from_secs(5), || async {
        producer.adapter.leader_state(below(1)).await.ok() == Some(LeaderState::ReconciledLeader)
    })
    .await;

    // then
    assert!(!matches!(without_quorum, Ok(LeaderState::ReconciledLeader)));
    assert!(leads);
}

#[tokio::test(flavor = "multi_thread")]
async fn four_producers__when_sharing_one_redis__then_only_the_first_leader_produces() {
    // given
    let servers = servers(1);
    let key = "poa:test:four";
    let mut producers = Vec::new();
    for _ in 0..4 {
        producers.push(producer(urls(&servers), key).await);
    }
    let all: Vec<&Producer> = producers.iter().collect();

    // when / then: every round has exactly the same single leader
    let first = leaders(&all, 1).await;
    assert_eq!(first.len(), 1);
    for round in 1..=10 {
        let leader = &producers[first[0]];
        leader
            .adapter
            .publish_produced_block(&block(round, 0))
            .await
            .unwrap();
        let mut leading = Vec::new();
        for (index, producer) in producers.iter().enumerate() {
            if index == first[0] {
                if producer
                    .adapter
                    .leader_state(below(round + 1))
                    .await
                    .unwrap()
                    == LeaderState::ReconciledLeader
                {
                    leading.push(index);
                }
            } else {
                // followers catch up through the same verified import path
                let state = producer.adapter.leader_state(below(round)).await.unwrap();
                assert_eq!(heights(&state), vec![round]);
            }
        }
        assert_eq!(leading, first);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn three_producers__when_each_leader_stops_in_turn__then_handoffs_are_exclusive() {
    // given
    let servers = servers(1);
    let key = "poa:test:handoffs";
    let mut producers: Vec<Option<Producer>> = Vec::new();
    for _ in 0..3 {
        producers.push(Some(producer(urls(&servers), key).await));
    }

    for _phase in 0..3 {
        // when
        let live: Vec<&Producer> = producers.iter().flatten().collect();
        let leading = leaders(&live, 1).await;

        // then
        assert_eq!(leading.len(), 1, "exactly one leader per phase");
        for _round in 0..3 {
            assert_eq!(leaders(&live, 1).await, leading);
        }
        let leader_index = producers
            .iter()
            .enumerate()
            .filter(|(_, producer)| producer.is_some())
            .nth(leading[0])
            .map(|(index, _)| index)
            .unwrap();
        producers[leader_index] = None;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_producers__when_first_restarts__then_second_keeps_the_lock() {
    // given
    let servers = servers(1);
    let key = "poa:test:restart";
    let first = producer(urls(&servers), key).await;
    let second = producer(urls(&servers), key).await;
    assert_eq!(
        first.adapter.leader_state(below(1)).await.unwrap(),
        LeaderState::ReconciledLeader
    );
    drop(first);
    let took_over = wait_for_async(Duration::from_secs(3), || async {
        second.adapter.leader_state(below(1)).await.ok() == Some(LeaderState::ReconciledLeader)
    })
    .await;
    assert!(took_over);

    // when
    let restarted = producer(urls(&servers), key).await;

    // then
    for round in 1..=5 {
        second
            .adapter
            .publish_produced_block(&block(round, 0))
            .await
            .unwrap();
        assert_eq!(
            second.adapter.leader_state(below(round + 1)).await.unwrap(),
            LeaderState::ReconciledLeader
        );
        assert_ne!(
            restarted
                .adapter
                .leader_state(below(round + 1))
                .await
                .unwrap(),
            LeaderState::ReconciledLeader
        );
    }
}

/// The first producer publishes height 1 and stops; the second, starting from an empty chain,
/// must import height 1 from Redis before producing height 2.
async fn second_builds_on_redis_height(servers: &[RedisServer], key: &str, fault: impl FnOnce()) {
    let first = producer(urls(servers), key).await;
    assert_eq!(
        first.adapter.leader_state(below(1)).await.unwrap(),
        LeaderState::ReconciledLeader
    );
    first
        .adapter
        .publish_produced_block(&block(1, 0))
        .await
        .unwrap();
    let everywhere = streams_reach(servers, key, 1).await;
    assert!(everywhere);
    fault();
    drop(first);

    let second = producer(urls(servers), key).await;
    let imported = wait_for_async(Duration::from_secs(3), || async {
        matches!(second.adapter.leader_state(below(1)).await, Ok(state) if blocks(state.clone()) == vec![block(1, 0)])
    })
    .await;
    assert!(imported, "second producer did not reconcile height 1");
    assert_eq!(
        second.adapter.leader_state(below(2)).await.unwrap(),
        LeaderState::ReconciledLeader
    );
    second
        .adapter
        .publish_produced_block(&block(2, 0))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn two_producers__when_second_starts_after_first_shutdown__then_second_builds_on_redis_height()
 {
    let servers = servers(3);
    second_builds_on_redis_height(&servers, "poa:test:builds-on", || {}).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_producers__when_one_redis_node_is_down__then_handoff_reconciles_correctly() {
    let servers = servers(3);
    second_builds_on_redis_height(&servers, "poa:test:node-down", || servers[2].stop()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_producers__when_redis_node_restarts__then_handoff_reconciles_from_surviving_nodes() {
    let servers = servers(3);
    second_builds_on_redis_height(&servers, "poa:test:node-restart", || servers[2].restart()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn connect__when_a_node_connects_but_then_answers_slowly__then_script_loading_stays_inside_the_startup_bound()
 {
    // given: node timeout 1 s (startup waits at most 2 s per node); a node whose every round
    // trip takes 300 ms, inside the node timeout, so its connection completes, but loading six
    // scripts one after another would take 1.8 s more
    let servers = servers(2);
    let slow = poa_test_support::FaultProxy::start(servers[1].addr());
    slow.set_mode(poa_test_support::ProxyMode::Latency(Duration::from_millis(
        150,
    )));
    let config = adapter_redis::RedisConfig {
        node_timeout: Duration::from_secs(1),
        ..config(vec![servers[0].url(), slow.url()], "poa:test:slow-startup")
    };

    // when
    let started = Instant::now();
    let adapter = RedisReconciliation::connect(config, verifier(), None).await;
    let elapsed = started.elapsed();

    // then: startup is bounded by twice the node timeout (plus scheduling slack)
    assert!(adapter.is_ok());
    assert!(elapsed < Duration::from_millis(2_300), "{elapsed:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn connect__when_two_urls_reach_the_same_server__then_refuses_naming_both() {
    // given: three URLs, two of them the same server under another host name
    let servers = servers(2);
    let alias = format!("redis://localhost:{}", servers[0].addr().port());
    let config = config(
        vec![servers[0].url(), servers[1].url(), alias.clone()],
        "poa:test:alias",
    );

    // when
    let outcome = RedisReconciliation::connect(config, verifier(), None).await;

    // then
    match outcome {
        Err(adapter_redis::Error::SameServerTwice {
            first,
            first_list,
            second,
            second_list,
            ..
        }) => {
            assert_eq!((first, first_list), (servers[0].url(), UrlList::Urls));
            assert_eq!((second, second_list), (alias, UrlList::Urls));
        }
        other => panic!("expected the same server twice, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn connect__when_a_next_url_reaches_a_server_of_the_current_list__then_names_each_urls_list()
{
    // given: a membership change whose next list names a current server under another host name
    let servers = servers(3);
    let alias = format!("redis://localhost:{}", servers[1].addr().port());
    let config = RedisConfig {
        next_urls: vec![servers[2].url(), alias.clone()],
        ..config(
            vec![servers[0].url(), servers[1].url()],
            "poa:test:next-alias",
        )
    };

    // when
    let outcome = RedisReconciliation::connect(config, verifier(), None).await;

    // then
    match outcome {
        Err(adapter_redis::Error::SameServerTwice {
            first,
            first_list,
            second,
            second_list,
            ..
        }) => {
            assert_eq!((first, first_list), (servers[1].url(), UrlList::Urls));
            assert_eq!((second, second_list), (alias, UrlList::NextUrls));
        }
        other => panic!("expected the same server twice, got {other:?}"),
    }
}
