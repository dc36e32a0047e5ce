//! The transaction relay between processes: a frozen peer costs the submit path nothing, and a
//! healthy peer is reached over a few reused connections.

use std::collections::HashSet;
use std::thread;
use std::time::Duration;

use poa_test_support::{FaultProxy, HalfAliveListener, RedisServer};

use crate::support::{Node, eventually, fleet_flags};

/// Client threads submitting at once.
const CLIENTS: usize = 8;

/// A node on one redis-server with `peers`, and its data directory.
fn start_node(redis: &RedisServer, peers: &[String]) -> (tempfile::TempDir, Node) {
    let mut args = fleet_flags(&[redis.url()], "100ms", "3s", &[]);
    for peer in peers {
        args.extend(["--peer".to_owned(), peer.clone()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), &args);
    (dir, node)
}

/// A leader on `redis`, started first so it takes the lease.
fn start_leader(redis: &RedisServer) -> (tempfile::TempDir, Node) {
    let (dir, leader) = start_node(redis, &[]);
    assert!(
        eventually(Duration::from_secs(30), || leader.is_leader()),
        "the first node does not lead"
    );
    (dir, leader)
}

/// Submits `count` distinct transactions to `node` from [`CLIENTS`] threads; returns the ids of
/// those answered 202 and panics on any other answer.
fn submit_many(node: &Node, tag: &str, count: usize) -> HashSet<String> {
    thread::scope(|scope| {
        let workers: Vec<_> = (0..CLIENTS)
            .map(|client| {
                scope.spawn(move || {
                    (client..count)
                        .step_by(CLIENTS)
                        .map(|index| {
                            let body = format!("{tag} transaction {index}");
                            let (status, answer) = node.post("/transactions", body.as_bytes());
                            assert_eq!(status, 202, "{answer}");
                            answer["id"].as_str().unwrap().to_owned()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| worker.join().unwrap())
            .collect()
    })
}

/// Every transaction id in `node`'s blocks.
fn included(node: &Node) -> HashSet<String> {
    let mut ids = HashSet::new();
    for height in 1..=node.height() {
        let (_, block) = node.get(&format!("/blocks/{height}"));
        for id in block["transactions"].as_array().into_iter().flatten() {
            ids.insert(id.as_str().unwrap().to_owned());
        }
    }
    ids
}

#[test]
fn relay__when_one_peer_is_frozen__then_submits_are_answered_and_the_frozen_peer_costs_few_threads_and_connections()
 {
    // given: a follower whose peers are a frozen listener and the leader
    let redis = RedisServer::start();
    let frozen = HalfAliveListener::start();
    let (_leader_dir, leader) = start_leader(&redis);
    let (_follower_dir, follower) = start_node(
        &redis,
        &[
            format!("http://{}", frozen.addr()),
            format!("http://{}", leader.http),
        ],
    );

    // when many clients submit through the follower
    let accepted = submit_many(&follower, "frozen", 1_000);

    // then every submission was answered, the leader includes them all, and the frozen peer
    // holds neither a thread nor a connection per transaction
    assert_eq!(accepted.len(), 1_000);
    assert!(
        eventually(Duration::from_secs(60), || included(&leader)
            .is_superset(&accepted)),
        "the leader did not include every relayed transaction"
    );
    let threads = follower.proc_status("Threads");
    let workers = thread::available_parallelism().map_or(1, usize::from);
    assert!(
        threads <= u64::try_from(workers).unwrap() + 64,
        "the follower runs {threads} threads with a frozen peer"
    );
    let connections = frozen.accepted_connections();
    assert!(
        connections <= 50,
        "the follower opened {connections} connections to the frozen peer"
    );
}

#[test]
fn relay__when_a_follower_relays_many_transactions__then_reuses_a_few_connections_to_its_peer() {
    // given: a follower that reaches the leader through a proxy counting connections
    let redis = RedisServer::start();
    let (_leader_dir, leader) = start_leader(&redis);
    let proxy = FaultProxy::start(leader.http.parse().unwrap());
    let (_follower_dir, follower) = start_node(&redis, &[format!("http://{}", proxy.addr())]);

    // when
    let accepted = submit_many(&follower, "pooled", 500);

    // then
    assert!(
        eventually(Duration::from_secs(60), || included(&leader)
            .is_superset(&accepted)),
        "the leader did not include every relayed transaction"
    );
    let connections = proxy.accepted_connections();
    assert!(
        connections <= 16,
        "relaying 500 transactions opened {connections} connections"
    );
}
