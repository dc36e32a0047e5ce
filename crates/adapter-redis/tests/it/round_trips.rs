//! What a leader's production cycle asks of Redis: the publish and nothing else while the lease
//! is locally valid and the leadership reconciled (counted with `INFO commandstats` on every
//! node), the fenced write that stops a leader whose lease was taken while it skipped the
//! checks, the renewal that still keeps the lease when blocks are far apart, and the clock
//! readings an idle leader still takes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use poa_ports::{BlockReconciliationPort, ChainHead, LeaderState};
use poa_test_support::{RedisServer, RespValue};

use crate::support::{
    Producer, block, clear_owner, config_with_ttl, head_of, owner, producer, producer_with,
    servers, stream_len, urls,
};

/// The commands the adapter's Lua scripts run inside the server: `INFO commandstats` counts
/// them beside the call that ran the script, and they are no round trip of their own.
const SCRIPT_INNER_COMMANDS: [&str; 18] = [
    "del",
    "exists",
    "hget",
    "hmget",
    "hset",
    "get",
    "incr",
    "pexpire",
    "set",
    "time",
    "xadd",
    "xdel",
    "xtrim",
    "zadd",
    "zrangebyscore",
    "zrem",
    "zremrangebyrank",
    "zrevrangebyscore",
];

/// Calls per command (`cmdstat_<name>:calls=<n>,...`) on one node.
fn command_calls(server: &RedisServer) -> BTreeMap<String, u64> {
    let RespValue::Bulk(text) = server.command(&[b"INFO", b"commandstats"]) else {
        panic!("INFO commandstats did not answer a bulk string");
    };
    String::from_utf8_lossy(&text)
        .lines()
        .filter_map(|line| {
            let (name, stats) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = stats
                .split(',')
                .find_map(|stat| stat.strip_prefix("calls="))?;
            Some((name.to_owned(), calls.parse().ok()?))
        })
        .collect()
}

/// The commands a client sent to the node between two readings (script-inner commands left
/// out, and the test's own: the `INFO` of the first reading, which the second counts, and the
/// `XLEN`s of its waits, a command the adapter never sends).
fn round_trips_between(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
) -> BTreeMap<String, u64> {
    after
        .iter()
        .filter(|(name, _)| !SCRIPT_INNER_COMMANDS.contains(&name.as_str()) && *name != "xlen")
        .filter_map(|(name, calls)| {
            let mut sent = calls.saturating_sub(before.get(name).copied().unwrap_or(0));
            if name == "info" {
                sent = sent.saturating_sub(1);
            }
            (sent > 0).then(|| (name.clone(), sent))
        })
        .collect()
}

/// Publishes the test chain's block at `height`; the new head.
async fn publish(leader: &Producer, height: u64) -> ChainHead {
    let produced = block(height, 0);
    leader
        .adapter
        .publish_produced_block(&produced)
        .await
        .unwrap();
    head_of(&produced)
}

#[tokio::test(flavor = "multi_thread")]
async fn production_cycle__when_the_lease_is_locally_valid_and_reconciled__then_costs_one_write_per_node_per_block()
 {
    // given: a reconciled leader (TTL 2 s) with blocks every 10 ms, well inside the lease
    const BLOCKS: u64 = 50;
    let servers = servers(3);
    let key = "poa:test:round-trips";
    let leader = producer(urls(&servers), key).await;
    let genesis = crate::support::below(1);
    assert_eq!(
        leader.adapter.leader_state(genesis).await.unwrap(),
        LeaderState::ReconciledLeader
    );
    // the first anti-entropy step of the leadership runs in the background: let it end
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before: Vec<_> = servers.iter().map(command_calls).collect();
    let started = Instant::now();

    // when: N production cycles, each the leader state of the head then the publish
    let mut head = genesis;
    for height in 1..=BLOCKS {
        assert_eq!(
            leader.adapter.leader_state(head).await.unwrap(),
            LeaderState::ReconciledLeader
        );
        head = publish(&leader, height).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // the last writes to the slowest node may still be on their way
    assert!(crate::support::streams_reach(&servers, key, i64::try_from(BLOCKS).unwrap()).await);
    let elapsed = started.elapsed();

    // then: on every node, one write per block, plus at most the amortized lease renewal (one
    // per half TTL: the renewal margin) and the anti-entropy steps (one per TTL, each at most
    // an identity check, a heights read and a full read on this node), counted generously
    let ttl = crate::support::TTL;
    let renewals = 1 + elapsed.as_millis() / (ttl / 2).as_millis();
    let anti_entropy_steps = 1 + elapsed.as_millis() / ttl.as_millis();
    let bound = u128::from(BLOCKS) + renewals + 3 * anti_entropy_steps;
    for (server, before) in servers.iter().zip(&before) {
        let sent = round_trips_between(before, &command_calls(server));
        let total: u64 = sent.values().sum();
        assert!(
            u128::from(total) <= bound,
            "{total} commands for {BLOCKS} blocks in {elapsed:?} (at most {bound}): {sent:?}"
        );
        assert!(
            sent.get("evalsha").copied().unwrap_or(0) >= BLOCKS,
            "every block is a write on every node: {sent:?}"
        );
    }
    assert!(leader.metric("poa_leader_checks_skipped_total") >= 45.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn publish_produced_block__when_the_lease_was_taken_while_the_leader_skipped_its_checks__then_is_refused_and_the_next_cycle_checks_in_full()
 {
    // given: a reconciled leader that skips its checks (its lease locally valid)
    let servers = servers(3);
    let key = "poa:test:taken-while-skipping";
    let first = producer(urls(&servers), key).await;
    let genesis = crate::support::below(1);
    first.adapter.leader_state(genesis).await.unwrap();
    first
        .adapter
        .publish_produced_block(&block(1, 0))
        .await
        .unwrap();
    let head = head_of(&block(1, 0));
    let token = owner(&servers[0], key).unwrap();

    // when: the lease keys vanish (an operator, nodes restarted empty of keys) and another
    // process takes the lease, while the first one's local validity still runs
    for server in &servers {
        clear_owner(server, key);
    }
    let second = producer(urls(&servers), key).await;
    let taken = second.adapter.leader_state(head).await.unwrap();
    let skipped_before = first.metric("poa_leader_checks_skipped_total");
    let stale = first.adapter.leader_state(head).await.unwrap();
    let refused = first.adapter.publish_produced_block(&block(2, 7)).await;
    let after_refusal = first.adapter.leader_state(head).await.unwrap();

    // then: the second process leads; the first one's cycle skipped its checks, its publish met
    // the owner check on every node and stored nothing, and its next cycle checked in full and
    // found itself a follower
    assert_eq!(taken, LeaderState::ReconciledLeader);
    assert_ne!(owner(&servers[0], key), Some(token));
    assert_eq!(stale, LeaderState::ReconciledLeader);
    assert_eq!(
        first.metric("poa_leader_checks_skipped_total"),
        skipped_before + 1.0
    );
    assert!(refused.is_err(), "{refused:?}");
    for server in &servers {
        assert_eq!(stream_len(server, key), 1, "a refused block was stored");
    }
    assert_eq!(after_refusal, LeaderState::ReconciledFollower);
    assert_eq!(
        first.metric("poa_leader_checks_skipped_total"),
        skipped_before + 1.0
    );
    assert_eq!(first.adapter.lease_status().epoch, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn leader_state__when_blocks_are_farther_apart_than_the_lease__then_renews_in_between_and_keeps_leading()
 {
    // given: a leader with a 1 s lease that cycles every 300 ms (a third of the TTL, as the
    // producer does) and produces every fourth cycle, 1.2 s apart
    let servers = servers(3);
    let key = "poa:test:slow-blocks";
    let leader = producer_with(config_with_ttl(urls(&servers), key, Duration::from_secs(1))).await;
    let mut head = crate::support::below(1);
    leader.adapter.leader_state(head).await.unwrap();
    let epoch = leader.adapter.lease_status().epoch;
    let renewals_before = leader.metric("poa_quorum_latency_seconds_count{operation=\"renew\"}");

    // when: 16 cycles, 4 blocks, 4.8 s: several TTLs
    let mut states = Vec::new();
    for cycle in 1..=16u64 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        states.push(leader.adapter.leader_state(head).await.unwrap());
        if cycle % 4 == 0 {
            head = publish(&leader, cycle / 4).await;
        }
    }

    // then: one leadership throughout, renewed between the blocks, and still some cycles that
    // needed no round trip
    assert!(
        states
            .iter()
            .all(|state| *state == LeaderState::ReconciledLeader),
        "{states:?}"
    );
    assert_eq!(leader.adapter.lease_status().epoch, epoch);
    let renewals =
        leader.metric("poa_quorum_latency_seconds_count{operation=\"renew\"}") - renewals_before;
    assert!(renewals >= 3.0, "{renewals} renewals");
    assert!(leader.metric("poa_leader_checks_skipped_total") >= 1.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn time_reference__when_an_idle_leader_skips_its_checks_for_several_ttls__then_stays_fresh() {
    // given: a leader with a 1 s lease that produces nothing and cycles every 300 ms; a clock
    // reading counts toward the time reference for two TTLs
    let servers = servers(3);
    let key = "poa:test:idle-clock";
    let leader = producer_with(config_with_ttl(urls(&servers), key, Duration::from_secs(1))).await;
    let head = crate::support::below(1);
    leader.adapter.leader_state(head).await.unwrap();

    // when: 12 cycles, 3.6 s, most of them without a round trip
    for _ in 0..12 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            leader.adapter.leader_state(head).await.unwrap(),
            LeaderState::ReconciledLeader
        );
    }

    // then: the renewals read the clocks again before the readings aged out
    assert!(leader.metric("poa_leader_checks_skipped_total") >= 4.0);
    assert!(leader.adapter.time_reference().is_some());
}
