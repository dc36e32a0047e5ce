//! Anti-entropy: while a process leads, the heights of the retained window below its head come
//! back to a quorum after nodes lost them (a node restarted empty, writes dropped while a node
//! was cut off), without a new leadership, and nothing is copied that is not proven committed.

use std::time::{Duration, Instant};

use adapter_chain::SealedBlock;
use poa_ports::{BlockReconciliationPort, LeaderState};
use poa_test_support::{RedisServer, RespValue, wait_for_async};

use crate::support::*;

/// The block ids `server` holds at `height`: index members whose stream entry is still there.
fn held_at(server: &RedisServer, key: &str, height: u64) -> Vec<String> {
    let stream = format!("{key}:block:stream");
    index_members(server, key, height, height)
        .iter()
        .filter_map(|member| {
            let mut parts = member.split(':');
            let (_, id, entry) = (parts.next()?, parts.next()?, parts.next()?);
            let found = server.command(&[
                b"XRANGE",
                stream.as_bytes(),
                entry.as_bytes(),
                entry.as_bytes(),
            ]);
            matches!(found, RespValue::Array(entries) if entries.len() == 1).then(|| id.to_owned())
        })
        .collect()
}

/// How many of `servers` hold `block` at its height.
fn copies(servers: &[RedisServer], key: &str, block: &SealedBlock) -> usize {
    let id = block.id().to_hex();
    servers
        .iter()
        .filter(|server| held_at(server, key, block.height().get()).contains(&id))
        .count()
}

/// The heights of `heights` whose test-chain block fewer than `quorum` of `servers` hold.
fn short_of(
    servers: &[RedisServer],
    key: &str,
    heights: std::ops::RangeInclusive<u64>,
    quorum: usize,
) -> Vec<u64> {
    heights
        .filter(|at| copies(servers, key, &block(*at, 0)) < quorum)
        .collect()
}

/// Whether `producer` exposes the anti-entropy gauge at `value`.
fn below_quorum_gauge_is(producer: &Producer, value: u64) -> bool {
    producer
        .encoded_metrics()
        .lines()
        .any(|line| line == format!("poa_heights_below_quorum {value}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn anti_entropy__when_a_node_restarted_empty_left_heights_below_the_head_on_one_node__then_the_leader_puts_them_back_on_a_quorum()
 {
    // given: three nodes (quorum 2); a leader publishes 1..=50 everywhere, and the third node
    // misses 21..=40 (it was cut off while they were written)
    let servers = servers(3);
    let key = "poa:test:anti-entropy-restart";
    let leader = producer(urls(&servers), key).await;
    publish_chain(&leader, 1..=50).await;
    drop_heights(&servers[2], key, 21, 40);
    assert!((21..=40).all(|at| held_at(&servers[2], key, at).is_empty()));

    // when: the second node restarts empty, which leaves 21..=40 on the first node alone, and
    // the same process goes on leading
    let passes_before = leader.metric("poa_anti_entropy_passes_total");
    servers[1].restart();
    let healed = wait_for_async(Duration::from_secs(30), || async {
        let _ = leader.adapter.leader_state(below(51)).await;
        short_of(&servers, key, 1..=50, 2).is_empty()
            && below_quorum_gauge_is(&leader, 0)
            && leader.metric("poa_anti_entropy_passes_total") > passes_before + 1.0
    })
    .await;

    // then: every height of the window is on a quorum again (on the emptied node, or on the
    // third: copies go wherever the leader holds the key, and it takes the emptied node back at
    // the renewal that the first fenced copy asks for), counted as repaired by anti-entropy (a
    // copy fenced by the emptied node before that renewal still lands on the third node, and
    // its height is then on a quorum without a counted repair)
    assert!(
        healed,
        "heights below quorum: {:?}\n{}",
        short_of(&servers, key, 1..=50, 2),
        leader.encoded_metrics()
    );
    assert!(leader.metric("poa_anti_entropy_repairs_total") >= 15.0);
    for server in &servers {
        for at in 1..=50 {
            let held = held_at(server, key, at);
            assert!(
                held.is_empty() || held == vec![block(at, 0).id().to_hex()],
                "height {at} holds {held:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn anti_entropy__when_blocks_below_quorum_are_not_proven_committed__then_copies_only_the_proven_ones_and_reports_the_rest()
 {
    // given: the chain 1..=30 on every node, except that
    // - heights 10 and 11 lost the committed blocks on every node, and the first node holds
    //   orphans there instead (a linked pair that nothing committed extends);
    // - height 15's committed block survives on the first node only, and the second node holds
    //   a forged block (a foreign seal) at 15
    let servers = servers(3);
    let key = "poa:test:anti-entropy-unproven";
    let orphan_10 = block(10, 7);
    let orphan_11 = block_on(11, 7, orphan_10.id());
    let forged_15 = forged(block(15, 3));
    for at in 1..=30 {
        match at {
            10 => append(&servers[0], key, &orphan_10, 1),
            11 => append(&servers[0], key, &orphan_11, 1),
            15 => {
                append(&servers[0], key, &block(15, 0), 1);
                append(&servers[1], key, &forged_15, 1);
            }
            _ => servers
                .iter()
                .for_each(|server| append(server, key, &block(at, 0), 1)),
        }
    }
    let leader = producer(urls(&servers), key).await;

    // when: it leads on the local chain at 30 for several passes of the window
    let settled = wait_for_async(Duration::from_secs(30), || async {
        let _ = leader.adapter.leader_state(below(31)).await;
        leader.metric("poa_anti_entropy_passes_total") >= 3.0
    })
    .await;

    // then: the proven block at 15 reached the free node; neither orphan nor the forged block
    // was copied anywhere, and the two heights nothing proves are reported below quorum
    assert!(settled, "{}", leader.encoded_metrics());
    assert_eq!(
        held_at(&servers[2], key, 15),
        vec![block(15, 0).id().to_hex()]
    );
    assert_eq!(held_at(&servers[1], key, 15), vec![forged_15.id().to_hex()]);
    for server in &servers[1..] {
        assert!(held_at(server, key, 10).is_empty());
        assert!(held_at(server, key, 11).is_empty());
    }
    assert!(
        below_quorum_gauge_is(&leader, 2),
        "{}",
        leader.encoded_metrics()
    );
    assert_eq!(leader.metric("poa_anti_entropy_repairs_total"), 1.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn anti_entropy__when_a_node_is_half_alive__then_repairs_without_stalling_the_leader_cycles()
{
    // given: three nodes and a half-alive listener (n = 4, quorum 3); the leader publishes
    // 1..=30 on the three, then the third restarts empty: 1..=30 are on two nodes, below quorum
    let servers = servers(3);
    let (_half_alive, all) = with_half_alive(&servers);
    let key = "poa:test:anti-entropy-half-alive";
    let leader = producer(all, key).await;
    publish_chain(&leader, 1..=30).await;
    servers[2].restart();

    // when: it keeps leading and producing
    let mut slowest = Duration::ZERO;
    let mut next = 31;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut healed = false;
    while Instant::now() < deadline && !healed {
        let started = Instant::now();
        let state = leader.adapter.leader_state(below(next)).await;
        slowest = slowest.max(started.elapsed());
        // a publish fenced by the emptied node may still have reached a quorum: imported, as
        // the producer imports what reconciliation returns
        if let Ok(LeaderState::UnreconciledBlocks(blocks)) = &state {
            next += u64::try_from(blocks.len()).unwrap();
        }
        if matches!(state, Ok(LeaderState::ReconciledLeader)) {
            let started = Instant::now();
            let published = leader.adapter.publish_produced_block(&block(next, 0)).await;
            slowest = slowest.max(started.elapsed());
            if published.is_ok() {
                next += 1;
            }
        }
        healed = short_of(&servers, key, 1..=30, 3).is_empty();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // then: the window is back on a quorum, and no cycle waited for the half-alive node beyond
    // a few node timeouts
    assert!(
        healed,
        "heights below quorum: {:?}",
        short_of(&servers, key, 1..=30, 3)
    );
    assert!(slowest < Duration::from_secs(1), "a cycle took {slowest:?}");
    assert!(
        next > 31,
        "the leader produced nothing while anti-entropy ran"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn anti_entropy__when_a_node_restarts_between_slow_steps__then_a_new_pass_starts_at_once() {
    // given: a lease TTL of 30 s, so a pass that nothing hurries takes one step every 30 s; a
    // leader publishes 1..=20, which the third node missed (on the first two only)
    let servers = servers(3);
    let key = "poa:test:anti-entropy-identity";
    let config = config_with_ttl(urls(&servers), key, Duration::from_secs(30));
    let leader = producer_with(config).await;
    publish_chain(&leader, 1..=20).await;
    drop_heights(&servers[2], key, 1, 20);

    // when: the second node restarts empty (1..=20 are on the first node alone): it answers
    // with another server identity, and its latest height is below the head
    servers[1].restart();
    let healed = wait_for_async(Duration::from_secs(10), || async {
        let _ = leader.adapter.leader_state(below(21)).await;
        short_of(&servers, key, 1..=20, 2).is_empty()
    })
    .await;

    // then: repaired long before the next slow step would have come
    assert!(
        healed,
        "heights below quorum: {:?}",
        short_of(&servers, key, 1..=20, 2)
    );
}
