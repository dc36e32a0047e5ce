//! Reconciliation: votes, winners, repair, quorum reads, undecodable entries, followers.

use std::time::{Duration, Instant};

use poa_ports::{BlockReconciliationPort, LeaderState, ReconciliationError};
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
    let state = producer.adapter.leader_state(height(1)).await.unwrap();

    // then
    assert_eq!(blocks(state), vec![block(1, 2)]);
}

#[tokio::test(flavor = "multi_thread")]
async fn leader_state__when_same_height_same_epoch_has_different_blocks__then_picks_the_smallest_id()
 {
    // given: PROTOCOL.md replaces fuel-core's "latest appended" with a deterministic rule
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
    let state = producer.adapter.leader_state(height(1)).await.unwrap();

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
    let state = producer.adapter.leader_state(height(1)).await.unwrap();

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
    let state = producer.adapter.leader_state(height(1)).await.unwrap();

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
    let state = producer.adapter.leader_state(height(1)).await.unwrap();

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
    let state = producer.adapter.leader_state(height(1)).await.unwrap();

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
    let state = producer.adapter.leader_state(height(1)).await.unwrap();

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
    let state = producer.adapter.leader_state(height(2)).await.unwrap();

    // then
    assert_eq!(state, LeaderState::ReconciledLeader);
}

#[tokio::test(flavor = "multi_thread")]
async fn leader_state__when_reconciled_leader_publishes__then_cheap_check_keeps_it_leading() {
    // given
    let servers = servers(3);
    let producer = producer(urls(&servers), "poa:test:cheap").await;
    assert_eq!(
        producer.adapter.leader_state(height(1)).await.unwrap(),
        LeaderState::ReconciledLeader
    );

    // when
    producer
        .adapter
        .publish_produced_block(&block(1, 0))
        .await
        .unwrap();
    let next = producer.adapter.leader_state(height(2)).await.unwrap();
    let stale = producer.adapter.leader_state(height(1)).await.unwrap();

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
    let state = producer.adapter.leader_state(height(1)).await;

    // then
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(heights(&state.unwrap()), vec![1]);
}

#[tokio::test(flavor = "multi_thread")]
async fn leader_state__when_a_minority_is_half_alive__then_acquires_and_reconciles_well_inside_node_timeout()
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
    let acquired = producer.adapter.leader_state(height(1)).await;
    let acquire_took = started.elapsed();
    let again = Instant::now();
    let confirmed = producer.adapter.leader_state(height(1)).await;
    let confirm_took = again.elapsed();
    servers[3].thaw();

    // then
    assert_eq!(acquired.unwrap(), LeaderState::ReconciledLeader);
    assert_eq!(confirmed.unwrap(), LeaderState::ReconciledLeader);
    assert!(
        acquire_took < Duration::from_millis(500),
        "{acquire_took:?}"
    );
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
    let state = producer.adapter.leader_state(height(1)).await;

    // then: the committed block wins without a repair, and the orphan is not spread
    assert_eq!(blocks(state.unwrap()), vec![committed]);
    assert_eq!(producer.metric("poa_repair_success_total"), 0.0);
    assert_eq!(stream_len(&servers[4], key), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn full_scan__when_every_height_is_committed_among_the_answers__then_a_half_alive_node_costs_only_the_grace()
 {
    // given: 3 healthy nodes holding block 1 and one half-alive listener (quorum 3), node
    // timeout 1 s, so the read grace is 250 ms
    let servers = servers(3);
    let key = "poa:test:grace";
    let stored = block(1, 0);
    for server in &servers {
        append(server, key, &stored, 1);
    }
    let (_half_alive, all) = with_half_alive(&servers);
    let config = adapter_redis::RedisConfig {
        node_timeout: Duration::from_secs(1),
        ..config(all, key)
    };
    let producer = producer_with(config).await;

    // when
    let started = Instant::now();
    let state = producer.adapter.leader_state(height(1)).await;
    let elapsed = started.elapsed();

    // then
    assert_eq!(blocks(state.unwrap()), vec![stored]);
    assert!(elapsed < Duration::from_millis(700), "{elapsed:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn reconciliation__when_reads_fail_on_quorum_nodes__then_returns_error_and_backlog_stays_readable()
 {
    // given
    let servers = servers(3);
    let key = "poa:test:read-failure";
    let first = producer(urls(&servers), key).await;
    first.adapter.leader_state(height(1)).await.unwrap();
    first
        .adapter
        .publish_produced_block(&block(1, 0))
        .await
        .unwrap();
    first.adapter.release().await.unwrap();
    servers[0].stop();
    servers[1].stop();
    let second = producer(urls(&servers), key).await;

    // when
    let failed = second.adapter.leader_state(height(1)).await;
    servers[0].restart();
    servers[1].restart();
    append(&servers[0], key, &block(1, 0), 1);
    append(&servers[1], key, &block(1, 0), 1);
    let recovered = poa_test_support::wait_for_async(Duration::from_secs(3), || async {
        matches!(second.adapter.leader_state(height(1)).await, Ok(state) if heights(&state) == vec![1])
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
        blocks(first.adapter.leader_state(height(1)).await.unwrap()),
        vec![stored.clone()]
    );
    servers[1].restart();
    first.adapter.release().await.unwrap();

    // when
    let second = producer(urls(&servers), key).await;
    let state = poa_test_support::wait_for_async(Duration::from_secs(3), || async {
        matches!(second.adapter.leader_state(height(1)).await, Ok(state) if heights(&state) == vec![1])
    })
    .await;

    // then
    assert!(state);
    let holders = servers.iter().filter(|s| stream_len(s, key) == 1).count();
    assert!(holders >= 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn reconciliation__when_repair_is_fenced__then_errors_and_the_backlog_stays_readable() {
    // given: leader on nodes 0 and 1; the winner X (epoch 2) is on node 0 only, node 1 holds
    // another block, so node 2 is the only repair target and a peer holds the lease there
    let servers = servers(3);
    let key = "poa:test:fenced-repair";
    set_owner(&servers[2], key, "other-owner", 60_000);
    let producer = producer(urls(&servers), key).await;
    assert_eq!(
        producer.adapter.leader_state(height(1)).await.unwrap(),
        LeaderState::ReconciledLeader
    );
    let (winner, loser) = (block(1, 1), block(1, 2));
    append(&servers[0], key, &winner, 2);
    append(&servers[1], key, &loser, 1);

    // when
    let fenced = producer.adapter.leader_state(height(1)).await;
    clear_owner(&servers[2], key);
    let repaired = poa_test_support::wait_for_async(Duration::from_secs(3), || async {
        matches!(producer.adapter.leader_state(height(1)).await, Ok(state) if blocks(state.clone()) == vec![winner.clone()])
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
    // given: height 1 on a quorum, height 2 on node 0 only with nodes 1 and 2 holding others
    let servers = servers(3);
    let key = "poa:test:prefix";
    append(&servers[0], key, &block(1, 0), 1);
    append(&servers[1], key, &block(1, 0), 1);
    append(&servers[0], key, &block(2, 1), 3);
    append(&servers[1], key, &block(2, 2), 1);
    append(&servers[2], key, &block(2, 3), 1);
    let producer = producer(urls(&servers), key).await;

    // when
    let state = producer.adapter.leader_state(height(1)).await.unwrap();

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
    let state = producer.adapter.leader_state(height(1)).await.unwrap();

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
    let state = follower.adapter.leader_state(height(1)).await.unwrap();

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
    let state = producer.adapter.leader_state(height(1)).await.unwrap();

    // then
    assert_eq!(blocks(state), vec![good]);
    assert_eq!(producer.metric("poa_undecodable_entries_total"), 1.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn follower__when_leader_published_blocks__then_returns_those_on_a_quorum_and_never_writes() {
    // given
    let servers = servers(3);
    let key = "poa:test:follower";
    let leader = producer(urls(&servers), key).await;
    leader.adapter.leader_state(height(1)).await.unwrap();
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
    let behind = follower.adapter.leader_state(height(1)).await.unwrap();
    let current = follower.adapter.leader_state(height(4)).await.unwrap();

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
    let is_gap = |state: &Result<LeaderState, ReconciliationError>| matches!(state, Err(ReconciliationError::HistoryGap { next_height }) if next_height.get() == 1);

    // when
    let as_follower = producer.adapter.leader_state(height(1)).await;
    servers.iter().for_each(|server| clear_owner(server, key));
    let as_leader = producer.adapter.leader_state(height(1)).await;

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
    producer.adapter.leader_state(height(1)).await.unwrap();
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
    let state = producer.adapter.leader_state(height(2)).await.unwrap();

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
async fn follower__when_its_next_height_lost_copies_but_later_heights_are_on_a_quorum__then_reports_the_gap()
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
    let state = producer.adapter.leader_state(height(1)).await;

    // then: not "nothing missing" (it would never catch up): the gap, so peers serve height 1
    assert!(
        matches!(&state, Err(ReconciliationError::HistoryGap { next_height }) if next_height.get() == 1),
        "{state:?}"
    );
}

/// A sealed block at `height` carrying one transaction of `bytes` bytes.
fn large_block(height: u64, bytes: usize) -> poa_ports::SealedBlock {
    let mut sealed = block(height, 0);
    let transactions = vec![poa_ports::Transaction::new(vec![0xab; bytes])];
    sealed.block.header.transactions_root = poa_ports::block::transactions_root(&transactions);
    sealed.block.header.transaction_count = 1;
    sealed.block.transactions = transactions;
    sealed
}

#[tokio::test(flavor = "multi_thread")]
async fn leader_state__when_the_stream_holds_many_large_blocks__then_reads_the_tip_without_walking_the_stream()
 {
    // given: 600 blocks of 64 KiB (about 38 MiB): walking the whole stream server-side takes
    // longer than the node timeout, so a read that walks it never answers in time
    let servers = servers(1);
    let key = "poa:test:large-stream";
    for height in 1..=600 {
        append(&servers[0], key, &large_block(height, 64 << 10), 1);
    }
    let producer = producer(urls(&servers), key).await;

    // when
    let state = producer.adapter.leader_state(height(598)).await;

    // then
    let state = state.expect("the tip is read within the node timeout");
    assert_eq!(heights(&state), vec![598, 599, 600]);
}

#[tokio::test(flavor = "multi_thread")]
async fn leader_state__when_index_members_lack_the_entry_id__then_reads_by_walking_the_stream() {
    // given: entries indexed as "<height>:<block id>", as before entry ids were indexed
    let servers = servers(1);
    let key = "poa:test:legacy-index";
    for height in 1..=3 {
        let sealed = block(height, 0);
        let height = height.to_string();
        let member = format!("{height}:{}", sealed.id().to_hex());
        servers[0].command(&[
            b"XADD",
            format!("{key}:block:stream").as_bytes(),
            b"*",
            b"height",
            height.as_bytes(),
            b"id",
            sealed.id().to_hex().as_bytes(),
            b"epoch",
            b"1",
            b"data",
            &sealed.encode(),
            b"timestamp",
            b"0",
        ]);
        servers[0].command(&[
            b"ZADD",
            format!("{key}:heights:index").as_bytes(),
            height.as_bytes(),
            member.as_bytes(),
        ]);
    }
    let producer = producer(urls(&servers), key).await;

    // when
    let state = producer.adapter.leader_state(height(2)).await.unwrap();

    // then
    assert_eq!(heights(&state), vec![2, 3]);
}

#[tokio::test(flavor = "multi_thread")]
async fn leader_state__when_a_catch_up_read_of_large_blocks_outlasts_the_node_timeout__then_smaller_reads_catch_up()
 {
    // given: 32 blocks of 512 KiB (16 MiB) and a 30 ms node timeout: one read of the whole
    // window cannot answer in time, so a reader that keeps asking for it never catches up
    let servers = servers(1);
    let key = "poa:test:large-backlog";
    let total = 32;
    for height in 1..=total {
        append(&servers[0], key, &large_block(height, 512 << 10), 1);
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
        if let Ok(state) = producer.adapter.leader_state(height(next)).await {
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
