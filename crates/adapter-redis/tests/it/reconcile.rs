//! Reconciliation: votes, winners, repair, quorum reads, undecodable entries, followers.

use std::time::{Duration, Instant};

use adapter_chain::SealedBlock;
use poa_ports::{BlockId, BlockReconciliationPort, LeaderState, ReconciliationError};
use poa_test_support::{FaultProxy, ProxyMode, RedisServer};

use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn leader_state__when_same_height_has_multiple_stream_entries__then_returns_highest_epoch_block()
 {
    // given
    let servers = servers(1);
    let key = "poa:test:epochs";
    append(&servers[0], key, &block(1, 1), 1);
    append(&servers[0], key, &block(1, 2), 2);
    let producer = producer(urls(&servers), key).await;

    // when
    let state = producer.adapter.leader_state(below(1)).await.unwrap();

    // then
    assert_eq!(blocks(state), vec![block(1, 2)]);
}

#[tokio::test(flavor = "multi_thread")]
async fn leader_state__when_same_height_same_epoch_has_different_blocks__then_picks_the_smallest_id()
 {
    // given: the protocol replaces fuel-core's "latest appended" with a deterministic rule
    let servers = servers(1);
    let key = "poa:test:tie";
    let (stale, retry) = (block(1, 1), block(1, 2));
    append(&servers[0], key, &stale, 1);
    append(&servers[0], key, &retry, 1);
    let expected = if stale.id() < retry.id() {
        stale
    } else {
        retry
    };
    let producer = producer(urls(&servers), key).await;

    // when
    let state = producer.adapter.leader_state(below(1)).await.unwrap();

    // then
    assert_eq!(blocks(state), vec![expected]);
}

#[tokio::test(flavor = "multi_thread")]
async fn leader_state__when_height_has_disagreeing_block_ids__then_repairs_the_winner_to_quorum() {
    // given
    let servers = servers(3);
    let key = "poa:test:disagree";
    let (a, b) = (block(1, 1), block(1, 2));
    append(&servers[0], key, &a, 7);
    append(&servers[1], key, &b, 7);
    let winner = if a.id() < b.id() { a } else { b };
    let producer = producer(urls(&servers), key).await;

    // when
    let state = producer.adapter.leader_state(below(1)).await.unwrap();

    // then
    assert_eq!(blocks(state), vec![winner]);
    assert_eq!(stream_len(&servers[2], key), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn leader_state__when_same_block_has_different_epochs_across_nodes__then_reconciles_without_repair()
 {
    // given
    let servers = servers(3);
    let key = "poa:test:devnet";
    let stored = block(1, 1);
    for (server, epoch) in servers.iter().zip([5, 7, 9]) {
        append(server, key, &stored, epoch);
    }
    let producer = producer(urls(&servers), key).await;

    // when
    let state = producer.adapter.leader_state(below(1)).await.unwrap();

    // then
    assert_eq!(blocks(state), vec![stored]);
    assert_eq!(producer.metric("poa_repair_success_total"), 0.0);
    assert!(servers.iter().all(|server| stream_len(server, key) == 1));
}

#[tokio::test(flavor = "multi_thread")]
async fn leader_state__when_entry_exists_on_less_than_quorum_nodes__then_repairs_it() {
    // given
    let servers = servers(3);
    let key = "poa:test:orphan";
    let orphan = block(1, 1);
    append(&servers[0], key, &orphan, 1);
    let producer = producer(urls(&servers), key).await;

    // when
    let state = producer.adapter.leader_state(below(1)).await.unwrap();

    // then
    assert_eq!(blocks(state), vec![orphan]);
    assert_eq!(producer.metric("poa_repair_success_total"), 1.0);
    let holders = servers.iter().filter(|s| stream_len(s, key) == 1).count();
    assert!(holders >= 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn leader_state__when_contiguous_heights_have_quorum__then_repairs_sub_quorum_tail() {
    // given
    let servers = servers(3);
    let key = "poa:test:tail";
    for h in [1, 2] {
        append(&servers[0], key, &block(h, 0), 1);
        append(&servers[1], key, &block(h, 0), 1);
    }
    append(&servers[0], key, &block(3, 0), 1);
    let producer = producer(urls(&servers), key).await;

    // when
    let state = producer.adapter.leader_state(below(1)).await.unwrap();

    // then
    assert_eq!(heights(&state), vec![1, 2, 3]);
}

#[tokio::test(flavor = "multi_thread")]
async fn leader_state__when_129_contiguous_quorum_blocks_are_present__then_returns_them_all() {
    // given
    let servers = servers(3);
    let key = "poa:test:many";
    for h in 1..=129 {
        append(&servers[0], key, &block(h, 0), 1);
        append(&servers[1], key, &block(h, 0), 1);
    }
    let producer = producer(urls(&servers), key).await;

    // when
    let state = producer.adapter.leader_state(below(1)).await.unwrap();

    // then
    assert_eq!(heights(&state), (1..=129).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread")]
async fn leader_state__when_latest_height_is_below_next_height__then_leads_without_blocks() {
    // given
    let servers = servers(1);
    let key = "poa:test:behind";
    append(&servers[0], key, &block(1, 0), 1);
    let producer = producer(urls(&servers), key).await;

    // when
    let state = producer.adapter.leader_state(below(2)).await.unwrap();

    // then
    assert_eq!(state, LeaderState::ReconciledLeader);
}

#[tokio::test(flavor = "multi_thread")]
async fn leader_state__when_reconciled_leader_publishes__then_cheap_check_keeps_it_leading() {
    // given
    let servers = servers(3);
    let producer = producer(urls(&servers), "poa:test:cheap").await;
    assert_eq!(
        producer.adapter.leader_state(below(1)).await.unwrap(),
        LeaderState::ReconciledLeader
    );

    // when
    producer
        .adapter
        .publish_produced_block(&block(1, 0))
        .await
        .unwrap();
    let next = producer.adapter.leader_state(below(2)).await.unwrap();
    let stale = producer.adapter.leader_state(below(1)).await.unwrap();

    // then: a backlog seen by the cheap check triggers a full scan that returns it
    assert_eq!(next, LeaderState::ReconciledLeader);
    assert_eq!(heights(&stale), vec![1]);
}

#[tokio::test(flavor = "multi_thread")]
async fn reconciliation__when_one_node_is_half_alive_with_backlog__then_returns_within_bound() {
    // given
    let servers = servers(3);
    let key = "poa:test:half-alive-backlog";
    append(&servers[0], key, &block(1, 0), 1);
    let (_half_alive, all) = with_half_alive(&servers);
    let producer = producer(all, key).await;

    // when
    let started = Instant::now();
    let state = producer.adapter.leader_state(below(1)).await;

    // then
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(heights(&state.unwrap()), vec![1]);
}

#[tokio::test(flavor = "multi_thread")]
async fn leader_state__when_a_minority_is_half_alive__then_the_first_scan_waits_one_node_timeout_and_later_cycles_do_not()
 {
    // given: 3 healthy nodes, one half-alive listener and one frozen redis-server (n = 5,
    // quorum 3), node timeout 1 s
    let servers = servers(4);
    let (_half_alive, all) = with_half_alive(&servers);
    let config = adapter_redis::RedisConfig {
        node_timeout: Duration::from_secs(1),
        ..config(all, "poa:test:half-alive-empty")
    };
    let producer = producer_with(config).await;
    servers[3].freeze();

    // when
    let started = Instant::now();
    let acquired = producer.adapter.leader_state(below(1)).await;
    let acquire_took = started.elapsed();
    let again = Instant::now();
    let confirmed = producer.adapter.leader_state(below(1)).await;
    let confirm_took = again.elapsed();
    servers[3].thaw();

    // then: the first scan of a leadership reads every node, each bounded by its timeout;
    // later cycles decide at the quorum
    assert_eq!(acquired.unwrap(), LeaderState::ReconciledLeader);
    assert_eq!(confirmed.unwrap(), LeaderState::ReconciledLeader);
    assert!(acquire_took < Duration::from_secs(2), "{acquire_took:?}");
    assert!(
        confirm_took < Duration::from_millis(500),
        "{confirm_took:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn full_scan__when_a_committed_block_looks_short_among_the_first_answers__then_waits_for_the_slow_nodes()
 {
    // given: 5 nodes (quorum 3); block Z is committed on nodes 0, 1 and 2 (epoch 6), a zombie's
    // orphan W (epoch 7) sits on node 3; nodes 0 and 1 answer after the read grace (a quarter
    // of the node timeout) but well inside the node timeout
    let servers = servers(5);
    let key = "poa:test:slow-committed";
    let (committed, orphan) = (block(1, 1), block(1, 2));
    for server in &servers[..3] {
        append(server, key, &committed, 6);
    }
    append(&servers[3], key, &orphan, 7);
    let proxies: Vec<FaultProxy> = servers[..2]
        .iter()
        .map(|server| FaultProxy::start(server.addr()))
        .collect();
    let urls = proxies
        .iter()
        .map(FaultProxy::url)
        .chain(servers[2..].iter().map(RedisServer::url))
        .collect();
    let config = adapter_redis::RedisConfig {
        node_timeout: Duration::from_secs(1),
        ..config(urls, key)
    };
    let producer = producer_with(config).await;
    for proxy in &proxies {
        proxy.set_mode(ProxyMode::Latency(Duration::from_millis(200)));
    }

    // when
    let state = producer.adapter.leader_state(below(1)).await;

    // then: the committed block wins without a repair, and the orphan is not spread
    assert_eq!(blocks(state.unwrap()), vec![committed]);
    assert_eq!(producer.metric("poa_repair_success_total"), 0.0);
    assert_eq!(stream_len(&servers[4], key), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn full_scan__when_every_height_is_committed_among_the_answers__then_a_half_alive_node_costs_a_follower_only_the_grace()
 {
    // given: 3 healthy nodes holding block 1 and one half-alive listener (quorum 3), node
    // timeout 1 s, so the read grace is 250 ms; another process leads
    let servers = servers(3);
    let key = "poa:test:grace";
    let stored = block(1, 0);
    for server in &servers {
        append(server, key, &stored, 1);
        set_owner(server, key, "peer", 60_000);
    }
    let (_half_alive, all) = with_half_alive(&servers);
    let config = adapter_redis::RedisConfig {
        node_timeout: Duration::from_secs(1),
        ..config(all, key)
    };
    let producer = producer_with(config).await;

    // when
    let started = Instant::now();
    let state = producer.adapter.leader_state(below(1)).await;
    let elapsed = started.elapsed();

    // then
    assert_eq!(blocks(state.unwrap()), vec![stored]);
    assert!(elapsed < Duration::from_millis(700), "{elapsed:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn full_scan__when_a_new_leadership_begins__then_its_first_scan_waits_for_the_slowest_node() {
    // given: block 1's only surviving copy sits on the slowest node (the other holder lost its
    // data); the two fast nodes hold nothing, so their answers alone look decided
    let servers = servers(3);
    let key = "poa:test:first-scan";
    let survivor = block(1, 0);
    append(&servers[2], key, &survivor, 1);
    let proxy = FaultProxy::start(servers[2].addr());
    let urls = vec![servers[0].url(), servers[1].url(), proxy.url()];
    let config = adapter_redis::RedisConfig {
        node_timeout: Duration::from_secs(1),
        ..config(urls, key)
    };
    let producer = producer_with(config).await;
    proxy.set_mode(ProxyMode::Latency(Duration::from_millis(400)));

    // when
    let state = producer.adapter.leader_state(below(1)).await;

    // then: found and repaired, never skipped (the leader would produce over it)
    assert_eq!(blocks(state.unwrap()), vec![survivor]);
    assert_eq!(producer.metric("poa_repair_success_total"), 1.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn reconciliation__when_reads_fail_on_quorum_nodes__then_returns_error_and_backlog_stays_readable()
 {
    // given
    let servers = servers(3);
    let key = "poa:test:read-failure";
    let first = producer(urls(&servers), key).await;
    first.adapter.leader_state(below(1)).await.unwrap();
    first
        .adapter
        .publish_produced_block(&block(1, 0))
        .await
        .unwrap();
    first.adapter.release().await.unwrap();
    servers[0].freeze();
    servers[1].freeze();
    let second = producer(urls(&servers), key).await;

    // when
    let failed = second.adapter.leader_state(below(1)).await;
    servers[0].thaw();
    servers[1].thaw();
    let recovered = poa_test_support::wait_for_async(Duration::from_secs(3), || async {
        matches!(second.adapter.leader_state(below(1)).await, Ok(state) if heights(&state) == vec![1])
    })
    .await;

    // then
    assert!(failed.is_err(), "{failed:?}");
    assert!(recovered);
}

#[tokio::test(flavor = "multi_thread")]
async fn reconciliation__when_redis_node_restarts_and_loses_data__then_repair_restores_the_quorum()
{
    // given
    let servers = servers(3);
    let key = "poa:test:data-loss";
    let stored = block(1, 0);
    append(&servers[0], key, &stored, 1);
    append(&servers[1], key, &stored, 1);
    let first = producer(urls(&servers), key).await;
    assert_eq!(
        blocks(first.adapter.leader_state(below(1)).await.unwrap()),
        vec![stored.clone()]
    );
    servers[1].restart();
    first.adapter.release().await.unwrap();

    // when
    let second = producer(urls(&servers), key).await;
    let state = poa_test_support::wait_for_async(Duration::from_secs(3), || async {
        matches!(second.adapter.leader_state(below(1)).await, Ok(state) if heights(&state) == vec![1])
    })
    .await;

    // then
    assert!(state);
    let holders = servers.iter().filter(|s| stream_len(s, key) == 1).count();
    assert!(holders >= 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn reconciliation__when_repair_is_fenced__then_errors_and_the_backlog_stays_readable() {
    // given: the winner X (epoch 2) is on node 0 only, node 1 holds another block, so node 2 is
    // the only repair target and a peer holds the lease there
    let servers = servers(3);
    let key = "poa:test:fenced-repair";
    set_owner(&servers[2], key, "other-owner", 60_000);
    let producer = producer(urls(&servers), key).await;
    let (winner, loser) = (block(1, 1), block(1, 2));
    append(&servers[0], key, &winner, 2);
    append(&servers[1], key, &loser, 1);

    // when: the process leads on nodes 0 and 1, and its first scan repairs X
    let fenced = producer.adapter.leader_state(below(1)).await;
    clear_owner(&servers[2], key);
    let repaired = poa_test_support::wait_for_async(Duration::from_secs(3), || async {
        matches!(producer.adapter.leader_state(below(1)).await, Ok(state) if blocks(state.clone()) == vec![winner.clone()])
    })
    .await;

    // then
    match fenced {
        Err(ReconciliationError::Fenced { reason }) => {
            assert!(reason.contains("lost the lease during repair"), "{reason}");
        }
        other => panic!("expected a fenced repair, got {other:?}"),
    }
    assert!(repaired);
}

#[tokio::test(flavor = "multi_thread")]
async fn reconciliation__when_repair_fails_mid_backlog__then_returns_the_reconciled_prefix() {
    // given: height 1 on a quorum, height 2 on node 0 only with node 1 holding another, and
    // node 2 down (so no complete read can prove that the other block may be replaced)
    let servers = servers(3);
    let key = "poa:test:prefix";
    append(&servers[0], key, &block(1, 0), 1);
    append(&servers[1], key, &block(1, 0), 1);
    append(&servers[0], key, &block(2, 1), 3);
    append(&servers[1], key, &block(2, 2), 1);
    servers[2].stop();
    let producer = producer(urls(&servers), key).await;

    // when
    let state = producer.adapter.leader_state(below(1)).await.unwrap();

    // then
    assert_eq!(heights(&state), vec![1]);
    assert!(producer.metric("poa_repair_failure_total") >= 1.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn repair__when_block_is_already_on_some_nodes__then_reaches_quorum_without_rewriting_them() {
    // given: 5 nodes (quorum 3), the block on two of them
    let servers = servers(5);
    let key = "poa:test:pre-existing";
    let stored = block(1, 0);
    append(&servers[0], key, &stored, 1);
    append(&servers[1], key, &stored, 1);
    let producer = producer(urls(&servers), key).await;

    // when
    let state = producer.adapter.leader_state(below(1)).await.unwrap();

    // then
    assert_eq!(blocks(state), vec![stored]);
    assert_eq!(stream_len(&servers[0], key), 1);
    assert_eq!(stream_len(&servers[1], key), 1);
    let holders = servers.iter().filter(|s| stream_len(s, key) == 1).count();
    assert!(holders >= 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn votes__when_one_node_holds_the_same_block_twice__then_it_counts_once() {
    // given: a follower (a peer leads), block X twice on node 0 and block Y on node 1, so any
    // quorum of answers shows a backlog and the follower always votes (counting entries, X
    // would have the two votes of a quorum)
    let servers = servers(3);
    let key = "poa:test:distinct";
    let twice = block(1, 0);
    append(&servers[1], key, &block(1, 1), 1);
    append_raw(
        &servers[0],
        key,
        1,
        &twice.id().to_hex(),
        1,
        &twice.encode(),
    );
    append_raw(
        &servers[0],
        key,
        1,
        &twice.id().to_hex(),
        2,
        &twice.encode(),
    );
    servers
        .iter()
        .for_each(|server| set_owner(server, key, "peer", 60_000));
    let follower = producer(urls(&servers), key).await;

    // when
    let state = follower.adapter.leader_state(below(1)).await.unwrap();

    // then: not committed, so a follower imports nothing
    assert_eq!(state, LeaderState::ReconciledFollower);
}

#[tokio::test(flavor = "multi_thread")]
async fn reconciliation__when_an_entry_does_not_decode__then_skips_and_counts_it() {
    // given
    let servers = servers(3);
    let key = "poa:test:undecodable";
    let good = block(1, 0);
    append_raw(
        &servers[2],
        key,
        1,
        &block(1, 9).id().to_hex(),
        5,
        b"not a block",
    );
    append(&servers[0], key, &good, 1);
    append(&servers[1], key, &good, 1);
    let producer = producer(urls(&servers), key).await;

    // when
    let state = producer.adapter.leader_state(below(1)).await.unwrap();

    // then
    assert_eq!(blocks(state), vec![good]);
    assert_eq!(producer.metric("poa_undecodable_entries_total"), 1.0);
}

/// Bytes a server has sent to its clients so far (`INFO stats`, `total_net_output_bytes`).
fn bytes_sent(server: &RedisServer) -> u64 {
    let info = server.command(&[b"INFO", b"stats"]);
    let info = String::from_utf8(info.as_bytes().unwrap().to_vec()).unwrap();
    info.lines()
        .find_map(|line| line.strip_prefix("total_net_output_bytes:"))
        .and_then(|value| value.trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn reconciliation__when_a_quorum_holds_an_entry_larger_than_any_block__then_reads_around_it_without_carrying_it()
 {
    // given: two committed blocks, then 4 MiB of garbage at the next height on a quorum: a
    // read that carried it would cost every reader its transfer, past the node timeout of a
    // slow client, and the heights below it would go unread
    let servers = servers(3);
    let key = "poa:test:oversized";
    for server in &servers {
        append(server, key, &block(1, 0), 1);
        append(server, key, &block_on(2, 0, block(1, 0).id()), 1);
    }
    let garbage = vec![7_u8; 4 * 1024 * 1024];
    for server in &servers[..2] {
        append_raw(server, key, 3, &block(3, 9).id().to_hex(), 1, &garbage);
    }
    let follower = producer(urls(&servers), key).await;
    let sent_before: Vec<u64> = servers.iter().map(bytes_sent).collect();

    // when
    let state = follower.adapter.follower_state(below(1)).await.unwrap();

    // then
    assert_eq!(heights(&state), vec![1, 2]);
    for (server, before) in servers[..2].iter().zip(&sent_before) {
        let sent = bytes_sent(server) - before;
        assert!(
            sent < 1024 * 1024,
            "a read carried the oversized entry: {sent} bytes sent"
        );
    }
    assert!(follower.metric("poa_undecodable_entries_total") >= 2.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn follower__when_leader_published_blocks__then_returns_those_on_a_quorum_and_never_writes() {
    // given
    let servers = servers(3);
    let key = "poa:test:follower";
    let leader = producer(urls(&servers), key).await;
    leader.adapter.leader_state(below(1)).await.unwrap();
    for h in 1..=3 {
        leader
            .adapter
            .publish_produced_block(&block(h, 0))
            .await
            .unwrap();
    }
    let all_written = streams_reach(&servers, key, 3).await;
    assert!(all_written);
    append(&servers[0], key, &block(4, 0), 1);
    let follower = producer(urls(&servers), key).await;

    // when
    let behind = follower.adapter.leader_state(below(1)).await.unwrap();
    let current = follower.adapter.leader_state(below(4)).await.unwrap();

    // then: the orphan at 4 is neither returned nor repaired
    assert_eq!(heights(&behind), vec![1, 2, 3]);
    assert_eq!(current, LeaderState::ReconciledFollower);
    assert_eq!(stream_len(&servers[1], key), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn reconciliation__when_the_streams_no_longer_hold_the_next_height__then_both_roles_report_the_gap()
 {
    // given: a process at height 0 while every stream was trimmed down to heights 5 and 6, and
    // a peer holds the lease
    let servers = servers(3);
    let key = "poa:test:trimmed-past";
    for server in &servers {
        append(server, key, &block(5, 0), 1);
        append(server, key, &block(6, 0), 1);
        set_owner(server, key, "peer", 60_000);
    }
    let producer = producer(urls(&servers), key).await;
    let is_gap = |state: &Result<LeaderState<SealedBlock>, ReconciliationError>| matches!(state, Err(ReconciliationError::HistoryGap { next_height }) if next_height.get() == 1);

    // when
    let as_follower = producer.adapter.leader_state(below(1)).await;
    servers.iter().for_each(|server| clear_owner(server, key));
    let as_leader = producer.adapter.leader_state(below(1)).await;

    // then: never "nothing missing": a leader would produce height 1 beside the trimmed chain,
    // a follower would report itself current while it can never catch up
    assert!(is_gap(&as_follower), "{as_follower:?}");
    assert!(is_gap(&as_leader), "{as_leader:?}");
    assert!(
        producer.adapter.lease_status().epoch.is_some(),
        "it did lead"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics__when_every_path_was_exercised__then_poa_family_is_encoded() {
    // given
    let servers = servers(3);
    let key = "poa:test:metrics";
    let producer = producer(urls(&servers), key).await;
    producer.adapter.leader_state(below(1)).await.unwrap();
    producer
        .adapter
        .publish_produced_block(&block(1, 0))
        .await
        .unwrap();
    assert!(
        producer
            .adapter
            .publish_produced_block(&block(1, 1))
            .await
            .is_err()
    );
    append(&servers[0], key, &block(2, 0), 1);

    // when
    let state = producer.adapter.leader_state(below(2)).await.unwrap();

    // then
    assert_eq!(heights(&state), vec![2]);
    let text = producer.encoded_metrics();
    for name in [
        "poa_leader_epoch",
        "poa_is_leader",
        "poa_epoch_max_drift",
        "poa_stream_trim_headroom",
        "poa_outstanding_publish_tasks",
        "poa_write_block_success_total",
        "poa_write_block_height_exists_total",
        "poa_write_block_fencing_error_total",
        "poa_write_block_error_total",
        "poa_repair_success_total",
        "poa_promotion_success_total",
        "poa_promotion_duration_seconds",
        "poa_write_block_duration_seconds",
        "poa_reconciliation_duration_seconds",
        "poa_connection_reset_total",
        "poa_quorum_latency_seconds",
        "poa_node_operations_total{node=",
    ] {
        assert!(text.contains(name), "missing {name}");
    }
    for nonzero in [
        "poa_leader_epoch",
        "poa_is_leader",
        "poa_write_block_success_total",
        "poa_promotion_success_total",
        "poa_repair_success_total",
    ] {
        assert!(producer.metric(nonzero) > 0.0, "{nonzero} is zero");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn follower__when_its_next_height_lost_copies_but_a_block_above_extends_it__then_imports_it()
{
    // given: height 1 survives on one node only (the others restarted empty), heights 2 and 3
    // were written after that on every node, and a peer holds the lease
    let servers = servers(3);
    let key = "poa:test:lost-copies";
    append(&servers[0], key, &block(1, 0), 1);
    for server in &servers {
        append(server, key, &block(2, 0), 1);
        append(server, key, &block(3, 0), 1);
        set_owner(server, key, "peer", 60_000);
    }
    let producer = producer(urls(&servers), key).await;

    // when
    let state = producer.adapter.leader_state(below(1)).await;

    // then: block 2 extends block 1, so block 1 was committed: the follower takes it below
    // quorum (it never writes) and keeps following without a history source
    assert_eq!(heights(&state.unwrap()), vec![1, 2, 3]);
    assert!(
        servers[1..]
            .iter()
            .all(|server| stream_len(server, key) == 2)
    );
}

/// A chain of `count` linked blocks from height 1, each carrying one transaction of `bytes`
/// bytes.
fn large_chain(count: u64, bytes: usize) -> Vec<adapter_chain::SealedBlock> {
    let mut chain: Vec<adapter_chain::SealedBlock> = Vec::new();
    for height in 1..=count {
        let parent = chain.last().map_or(GENESIS, |block| block.id());
        let mut sealed = block_on(height, 0, parent);
        let transactions = vec![poa_ports::Transaction::new(vec![0xab; bytes])];
        sealed.block.header.transactions_root =
            adapter_chain::block::transactions_root(&transactions);
        sealed.block.header.transaction_count = 1;
        sealed.block.transactions = transactions;
        chain.push(sealed);
    }
    chain
}

#[tokio::test(flavor = "multi_thread")]
async fn leader_state__when_the_stream_holds_many_large_blocks__then_reads_the_tip_without_walking_the_stream()
 {
    // given: 600 blocks of 64 KiB (about 38 MiB): walking the whole stream server-side takes
    // longer than the node timeout, so a read that walks it never answers in time
    let servers = servers(1);
    let key = "poa:test:large-stream";
    let chain = large_chain(600, 64 << 10);
    for block in &chain {
        append(&servers[0], key, block, 1);
    }
    let producer = producer(urls(&servers), key).await;

    // when
    let state = producer.adapter.leader_state(head_of(&chain[596])).await;

    // then
    let state = state.expect("the tip is read within the node timeout");
    assert_eq!(heights(&state), vec![598, 599, 600]);
}

#[tokio::test(flavor = "multi_thread")]
async fn leader_state__when_index_members_do_not_parse__then_skips_and_counts_them() {
    // given: blocks 1 to 3 as write_block stores them, and members anyone could have written
    // by hand: one without an entry id, one whose entry id is not a stream id (XRANGE would
    // refuse it and fail the whole read), one whose height is not a number
    let servers = servers(1);
    let key = "poa:test:bad-members";
    for height in 1..=3 {
        append(&servers[0], key, &block(height, 0), 1);
    }
    let index = format!("{key}:heights:index");
    let id = block(2, 7).id().to_hex();
    for (score, member) in [
        ("2", format!("2:{id}")),
        ("2", format!("2:{id}:not-a-stream-id")),
        ("4", format!("four:{id}:1-0")),
    ] {
        servers[0].command(&[
            b"ZADD",
            index.as_bytes(),
            score.as_bytes(),
            member.as_bytes(),
        ]);
    }
    let producer = producer(urls(&servers), key).await;

    // when
    let state = producer.adapter.leader_state(below(1)).await.unwrap();

    // then
    assert_eq!(heights(&state), vec![1, 2, 3]);
    assert!(producer.metric("poa_undecodable_entries_total") >= 3.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn leader_state__when_a_catch_up_read_of_large_blocks_outlasts_the_node_timeout__then_smaller_reads_catch_up()
 {
    // given: 32 blocks of 512 KiB (16 MiB) and a 30 ms node timeout: one read of the whole
    // window cannot answer in time, so a reader that keeps asking for it never catches up
    let servers = servers(1);
    let key = "poa:test:large-backlog";
    let total = 32;
    let chain = large_chain(total, 512 << 10);
    for block in &chain {
        append(&servers[0], key, block, 1);
    }
    let producer = producer_with(adapter_redis::RedisConfig {
        node_timeout: Duration::from_millis(30),
        ..config(urls(&servers), key)
    })
    .await;

    // when: cycles as the service runs them, each failed one retried, each success committed
    let mut next = 1;
    let mut cycles = 0;
    while next <= total && cycles < 100 {
        cycles += 1;
        let head = match usize::try_from(next).unwrap() - 1 {
            0 => below(1),
            local => head_of(&chain[local - 1]),
        };
        if let Ok(state) = producer.adapter.leader_state(head).await {
            let obtained = heights(&state);
            assert_eq!(obtained.first(), Some(&next), "{obtained:?}");
            next += u64::try_from(obtained.len()).unwrap();
        }
    }

    // then
    assert_eq!(
        next,
        total + 1,
        "caught up to {} in {cycles} cycles",
        next - 1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn leader_state__when_a_far_behind_leader_sees_a_stale_orphan_below_trimmed_streams__then_reports_the_gap_and_repairs_nothing()
 {
    // given: node A holds an old orphan at height 1 and was away while a leader committed 300
    // blocks on B and C, whose streams and heights indexes have long trimmed height 1
    let servers = servers(3);
    let key = "poa:test:far-behind";
    let orphan = block(1, 5);
    append(&servers[0], key, &orphan, 1);
    let small_window = |urls| adapter_redis::RedisConfig {
        stream_max_len: 4,
        ..config(urls, key)
    };
    // A was a member before it went away
    adapter_redis::init_membership(small_window(urls(&servers)))
        .await
        .unwrap();
    let away = FaultProxy::start(servers[0].addr());
    away.set_mode(ProxyMode::Reset);
    let leader = producer_with(small_window(vec![
        away.url(),
        servers[1].url(),
        servers[2].url(),
    ]))
    .await;
    assert_eq!(
        leader.adapter.leader_state(below(1)).await.unwrap(),
        LeaderState::ReconciledLeader
    );
    let mut parent = GENESIS;
    for height in 1..=300 {
        let committed = block_on(height, 0, parent);
        parent = committed.id();
        leader
            .adapter
            .publish_produced_block(&committed)
            .await
            .unwrap();
    }
    leader.adapter.release().await.unwrap();

    // when: a process whose local chain ends at genesis leads on A, B and C
    let far_behind = producer_with(small_window(urls(&servers))).await;
    let state = far_behind.adapter.leader_state(below(1)).await;

    // then: the log cannot say which block is committed at 1 (the orphan is not it): a gap,
    // and the orphan is not repaired to B or C
    assert!(
        matches!(&state, Err(ReconciliationError::HistoryGap { next_height }) if next_height.get() == 1),
        "{state:?}"
    );
    assert_eq!(far_behind.metric("poa_repair_success_total"), 0.0);
    for server in &servers[1..] {
        let index = format!("{key}:heights:index");
        let at_one = server.command(&[b"ZRANGEBYSCORE", index.as_bytes(), b"1", b"1"]);
        assert_eq!(at_one, poa_test_support::RespValue::Array(Vec::new()));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn leader_state__when_one_node_holds_a_forged_block_at_the_next_height__then_never_repairs_it_and_the_honest_block_commits()
 {
    // given: a well-formed block on the honest parent, sealed by a foreign key, on one node
    let servers = servers(3);
    let key = "poa:test:forged-next";
    append(&servers[0], key, &forged(block(1, 3)), 9);
    let leader = producer(urls(&servers), key).await;

    // when
    let state = leader.adapter.leader_state(below(1)).await.unwrap();
    let published = leader.adapter.publish_produced_block(&block(1, 0)).await;

    // then: not repaired, counted; the honest block reaches the other two nodes
    assert_eq!(state, LeaderState::ReconciledLeader);
    assert!(leader.metric("poa_refused_entries_total") >= 1.0);
    published.unwrap();
    leader.adapter.release().await.unwrap();
    for server in &servers {
        set_owner(server, key, "peer", 60_000);
    }
    let follower = producer(urls(&servers), key).await;
    let followed = follower.adapter.leader_state(below(1)).await.unwrap();
    assert_eq!(blocks(followed), vec![block(1, 0)]);
}

#[tokio::test(flavor = "multi_thread")]
async fn leader_state__when_one_node_holds_a_forged_block_far_above__then_it_is_no_evidence_of_history()
 {
    // given: a decodable block 30 heights up, on a parent the chain never had, sealed by a
    // foreign key, on one node; the committed chain ends at 2
    let servers = servers(3);
    let key = "poa:test:forged-above";
    for server in &servers {
        append(server, key, &block(1, 0), 1);
        append(server, key, &block(2, 0), 1);
    }
    append(
        &servers[1],
        key,
        &forged(block_on(32, 0, BlockId::from_bytes([0x5a; 32]))),
        9,
    );
    let leader = producer(urls(&servers), key).await;

    // when
    let state = leader.adapter.leader_state(below(3)).await;

    // then: nothing to import and no gap: the leader may produce height 3
    assert_eq!(state.unwrap(), LeaderState::ReconciledLeader);
}

#[tokio::test(flavor = "multi_thread")]
async fn leader_state__when_a_forged_block_sits_far_above__then_only_the_first_cycle_reads_the_whole_window()
 {
    // given: the forgery far above of the test before, on two nodes (so every quorum of
    // answers to the cheap check hears it), under a leader that keeps producing
    let servers = servers(3);
    let key = "poa:test:forged-above-cost";
    for server in &servers[1..] {
        append(
            server,
            key,
            &forged(block_on(40, 0, BlockId::from_bytes([0x5a; 32]))),
            9,
        );
    }
    let leader = producer(urls(&servers), key).await;
    assert_eq!(
        leader.adapter.leader_state(below(1)).await.unwrap(),
        LeaderState::ReconciledLeader
    );
    let after_first_cycle = leader.metric("poa_full_scans_total");

    // when: ten cycles, each producing a block
    for height in 1..=10 {
        leader
            .adapter
            .publish_produced_block(&block(height, 0))
            .await
            .unwrap();
        let state = leader
            .adapter
            .leader_state(below(height + 1))
            .await
            .unwrap();
        assert_eq!(state, LeaderState::ReconciledLeader);
    }

    // then: the cheap check passed over the forgery it already refused: no more full scans
    assert!(after_first_cycle >= 1.0);
    assert_eq!(leader.metric("poa_full_scans_total"), after_first_cycle);
}

#[tokio::test(flavor = "multi_thread")]
async fn leader_state__when_a_quorum_holds_a_block_that_does_not_extend_the_local_chain__then_reports_the_divergence()
 {
    // given: the log's block 1 extends another genesis than the local chain's
    let servers = servers(3);
    let key = "poa:test:diverged";
    let other = block_on(1, 0, BlockId::from_bytes([0x77; 32]));
    for server in &servers {
        append(server, key, &other, 1);
    }
    let leader = producer(urls(&servers), key).await;

    // when
    let state = leader.adapter.leader_state(below(1)).await;

    // then
    assert!(
        matches!(&state, Err(ReconciliationError::Diverged { height, block }) if height.get() == 1 && *block == other.id()),
        "{state:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn follower__when_its_next_height_is_below_quorum_with_nothing_above__then_says_it_waits_until_the_leader_repairs_it()
 {
    // given: a leader's publish reached one of two nodes (quorum 2, so the cheap check always
    // hears the node holding it); a peer holds the lease
    let servers = servers(2);
    let key = "poa:test:waiting";
    let orphan = block(1, 0);
    append(&servers[0], key, &orphan, 1);
    for server in &servers {
        set_owner(server, key, "peer", 60_000);
    }
    let follower = producer(urls(&servers), key).await;

    // when
    let waiting = follower.adapter.leader_state(below(1)).await.unwrap();
    let said = follower.adapter.lease_status().waiting_for;
    append(&servers[1], key, &orphan, 1);
    let repaired = follower.adapter.leader_state(below(1)).await.unwrap();

    // then: nothing imported while below quorum, and the status says why; the repaired block
    // is imported and the wait is over
    assert_eq!(waiting, LeaderState::ReconciledFollower);
    assert!(
        said.as_deref()
            .is_some_and(|reason| reason.contains("height 1 is on 1 of the 2 nodes")),
        "{said:?}"
    );
    assert_eq!(blocks(repaired), vec![orphan]);
    assert_eq!(follower.adapter.lease_status().waiting_for, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn leader_state__when_forged_blocks_hold_the_next_height_on_a_quorum__then_reports_the_height_blocked_keeps_its_epoch_and_resumes_once_they_are_removed()
 {
    // given: forged blocks (wrong seal) at height 1 on two of three nodes: no block can reach a
    // quorum there
    let servers = servers(3);
    let key = "poa:test:blocked";
    for server in &servers[..2] {
        append(server, key, &forged(block(1, 4)), 9);
    }
    let leader = producer(urls(&servers), key).await;

    // when: two cycles, then the operator's removal of the entries proven invalid
    let first = leader.adapter.leader_state(below(1)).await;
    let epoch = leader.adapter.lease_status().epoch;
    let second = leader.adapter.leader_state(below(1)).await;
    let removed = leader.adapter.remove_invalid_entries(height(1)).await;
    let resumed = leader.adapter.leader_state(below(1)).await;
    let published = leader.adapter.publish_produced_block(&block(1, 0)).await;

    // then: blocked, said with the nodes and why; the same leadership throughout; only the
    // forged entries removed; production resumes
    for state in [&first, &second] {
        assert!(
            matches!(state, Err(ReconciliationError::HeightBlocked { height, detail })
                if height.get() == 1 && detail.contains("not sealed by the chain authority")),
            "{state:?}"
        );
    }
    assert_eq!(leader.adapter.lease_status().epoch, epoch);
    let removed: Vec<u64> = removed.iter().map(|node| node.removed.unwrap()).collect();
    assert_eq!(removed, vec![2, 2, 0]);
    assert_eq!(resumed.unwrap(), LeaderState::ReconciledLeader);
    published.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn leader_state__when_forged_blocks_on_a_quorum_leave_only_the_leaders_own_orphan__then_reports_the_height_blocked()
 {
    // given: the leader's publish of height 1 met forged blocks on two of three nodes (refused
    // there) and left its block on the third only
    let servers = servers(3);
    let key = "poa:test:blocked-with-orphan";
    for server in &servers[1..] {
        append(server, key, &forged(block(1, 4)), 9);
    }
    append(&servers[0], key, &block(1, 0), 1);
    let leader = producer(urls(&servers), key).await;

    // when
    let state = leader.adapter.leader_state(below(1)).await;

    // then: the report names the garbage, not an unresolved repair
    assert!(
        matches!(&state, Err(ReconciliationError::HeightBlocked { height, detail })
            if height.get() == 1 && detail.contains("not sealed by the chain authority")),
        "{state:?}"
    );
}

/// Whether `server`'s heights index holds `block` at its height.
fn indexes(
    server: &poa_test_support::RedisServer,
    key: &str,
    block: &adapter_chain::SealedBlock,
) -> bool {
    let index = format!("{key}:heights:index");
    let height = block.height().get().to_string();
    match server.command(&[
        b"ZRANGEBYSCORE",
        index.as_bytes(),
        height.as_bytes(),
        height.as_bytes(),
    ]) {
        poa_test_support::RespValue::Array(members) => members.iter().any(|member| {
            matches!(member, poa_test_support::RespValue::Bulk(bytes)
                if String::from_utf8_lossy(bytes).contains(&block.id().to_hex()))
        }),
        _ => false,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn leader_state__when_a_node_free_at_the_read_does_not_take_the_winner__then_replaces_nothing()
 {
    // given: five nodes, no block on a majority at height 1: X (epoch 2) on A and B, the winner
    // W (epoch 3) on C, R (epoch 1) on E; D is free but another owner's key sits there, so D
    // fences: a publish of X may still be in flight to it, and could complete X's quorum there
    let servers = servers(5);
    let key = "poa:test:replace-after-free";
    let (stale, winner, other) = (block(1, 20), block(1, 30), block(1, 10));
    append(&servers[0], key, &stale, 2);
    append(&servers[1], key, &stale, 2);
    append(&servers[2], key, &winner, 3);
    append(&servers[4], key, &other, 1);
    set_owner(&servers[3], key, "publisher-of-x", 60_000);
    let leader = producer(urls(&servers), key).await;

    // when: the repair of W needs two more nodes and only D is free
    let _ = leader.adapter.leader_state(below(1)).await;

    // then: D refused W, so no copy of X was replaced
    assert!(indexes(&servers[0], key, &stale), "X was replaced on A");
    assert!(indexes(&servers[1], key, &stale), "X was replaced on B");
    assert!(!indexes(&servers[3], key, &winner));
}

#[tokio::test(flavor = "multi_thread")]
async fn leader_state__when_every_node_holds_another_orphan_at_the_next_height__then_replaces_them_with_the_winner()
 {
    // given: three failed publishes left a different block at height 1 on each node, none on a
    // quorum: without replacement no block could ever reach a quorum there
    let servers = servers(3);
    let key = "poa:test:three-orphans";
    for (index, server) in servers.iter().enumerate() {
        let epoch = u64::try_from(index).unwrap() + 1;
        append(server, key, &block(1, 10 + epoch), epoch);
    }
    let winner = block(1, 13);
    let leader = producer(urls(&servers), key).await;

    // when
    let state = leader.adapter.leader_state(below(1)).await;

    // then: the highest-epoch orphan is repaired onto a quorum, replacing another
    assert_eq!(blocks(state.unwrap()), vec![winner.clone()]);
    let index = format!("{key}:heights:index");
    let holders = servers
        .iter()
        .filter(
            |server| match server.command(&[b"ZRANGEBYSCORE", index.as_bytes(), b"1", b"1"]) {
                poa_test_support::RespValue::Array(members) => members.iter().any(|member| {
                    matches!(member, poa_test_support::RespValue::Bulk(bytes)
                        if String::from_utf8_lossy(bytes).contains(&winner.id().to_hex()))
                }),
                _ => false,
            },
        )
        .count();
    assert!(holders >= 2, "{holders}");
}

#[tokio::test(flavor = "multi_thread")]
async fn leader_state__when_a_quorum_refuses_the_repair_of_the_next_height__then_says_the_height_is_taken()
 {
    // given: the block at height 1 on one node only, and on the two others an index member
    // at height 1 that is no block (written by hand): each of them refuses the height, so no
    // process can bring the block to a quorum there
    let servers = servers(3);
    let key = "poa:test:refused-repair";
    append(&servers[0], key, &block(1, 0), 1);
    let index = format!("{key}:heights:index");
    let member = format!("1:{}:not-a-stream-id", block(1, 7).id().to_hex());
    for server in &servers[1..] {
        server.command(&[b"ZADD", index.as_bytes(), b"1", member.as_bytes()]);
    }
    let producer = producer(urls(&servers), key).await;

    // when
    let state = producer.adapter.leader_state(below(1)).await;

    // then: the refusal every process would meet, named with its height (the service keeps
    // the lease on it rather than handing it to a process that would be refused the same way)
    assert!(
        matches!(
            state,
            Err(ReconciliationError::HeightTaken { height }) if height.get() == 1
        ),
        "{state:?}"
    );
}
