//! History beyond the stream window: a replica started empty after the streams were trimmed
//! past its next height catches up from a peer over `GET /blocks/raw`, then follows from the
//! streams.

use std::time::Duration;

use poa_test_support::RedisServer;

use crate::support::{Node, eventually, fleet_flags};

/// Blocks each stream keeps in this test; the leader produces more than three times as many.
const STREAM_MAX_LEN: u64 = 20;

fn leader_args(redis: &[RedisServer]) -> Vec<String> {
    let urls: Vec<String> = redis.iter().map(RedisServer::url).collect();
    fleet_flags(&urls, "50ms", "1s", &["--stream-max-len", "20"])
}

#[test]
fn history__when_a_replica_starts_beyond_the_stream_window__then_catches_up_from_a_peer_and_follows()
 {
    // given: a leader that produced more than three stream windows
    let redis: Vec<RedisServer> = (0..3).map(|_| RedisServer::start()).collect();
    let args = leader_args(&redis);
    let leader_dir = tempfile::tempdir().unwrap();
    let leader_args: Vec<&str> = args.iter().map(String::as_str).collect();
    let leader = Node::start(leader_dir.path(), &leader_args);
    assert!(
        eventually(Duration::from_secs(30), || leader.height()
            > 3 * STREAM_MAX_LEN + 5),
        "the leader did not produce"
    );
    let (status, _) = leader.get("/blocks/1/raw");
    assert_eq!(status, 200, "the leader serves raw blocks");

    // when an empty replica starts with the leader as its peer
    let mut replica_args = args.clone();
    replica_args.push("--peer".to_owned());
    replica_args.push(format!("http://{}", leader.http));
    let replica_args: Vec<&str> = replica_args.iter().map(String::as_str).collect();
    let replica_dir = tempfile::tempdir().unwrap();
    let replica = Node::start(replica_dir.path(), &replica_args);

    // then it catches up from the peer and keeps following from the streams
    let caught_up_to = leader.height() + 10;
    assert!(
        eventually(Duration::from_secs(30), || replica.height() >= caught_up_to),
        "replica at {} while the leader is at {}",
        replica.height(),
        leader.height()
    );
    assert!(replica.log_contains("fetched blocks trimmed from the shared block log from a peer"));
    assert_eq!(
        replica.get("/status").1["blocks_produced"].as_u64(),
        Some(0)
    );
    let common = replica.height().min(leader.height());
    for height in 1..=common {
        assert_eq!(
            replica.block_id(height),
            leader.block_id(height),
            "height {height} differs"
        );
    }
    let metrics = ureq::get(&replica.url("/metrics"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    let fetched = metrics
        .lines()
        .find_map(|line| line.strip_prefix("poa_blocks_fetched_from_peers_total "))
        .and_then(|value| value.trim().parse::<f64>().ok());
    assert!(
        fetched.is_some_and(|fetched| fetched >= 1.0),
        "poa_blocks_fetched_from_peers_total: {fetched:?}"
    );
}

#[test]
fn history__when_a_process_far_behind_has_no_peer__then_it_stands_aside_and_a_current_one_takes_over()
 {
    // given: three producers without peers; one is killed and stays down while the others
    // produce far past the streams' window
    let redis: Vec<RedisServer> = (0..3).map(|_| RedisServer::start()).collect();
    let args = leader_args(&redis);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut nodes: Vec<Node> = dirs
        .iter()
        .map(|dir| Node::start(dir.path(), &args))
        .collect();
    assert!(eventually(Duration::from_secs(30), || nodes
        .iter()
        .any(|node| node.height() >= 5)));
    let leader = (0..3).find(|index| nodes[*index].is_leader()).unwrap();
    let far = (leader + 1) % 3;
    let current = (leader + 2) % 3;
    nodes[far].kill();
    let stopped_at = nodes[leader].height();
    assert!(eventually(Duration::from_secs(40), || nodes[leader]
        .height()
        > stopped_at + 8 * STREAM_MAX_LEN));

    // when: it comes back far behind, and the leader dies
    nodes[far] = Node::start(dirs[far].path(), &args);
    assert!(eventually(Duration::from_secs(10), || {
        nodes[far].get("/status").1["standing_aside"].is_string()
    }));
    nodes[leader].kill();

    // then: the current process leads, the one far behind never does and says why
    assert!(
        eventually(
            Duration::from_secs(8),
            || nodes[current].get("/status").1["blocks_produced"]
                .as_u64()
                .unwrap_or(0)
                > 0
        ),
        "the current process did not take over"
    );
    let status = nodes[far].get("/status").1;
    assert_eq!(status["blocks_produced"].as_u64(), Some(0), "{status}");
    assert!(
        status["standing_aside"]
            .as_str()
            .is_some_and(|reason| reason.contains("history")),
        "{status}"
    );
    for height in 1..=nodes[far].height() {
        assert_eq!(
            nodes[far].block_id(height),
            nodes[current].block_id(height),
            "fork at {height}"
        );
    }
}
