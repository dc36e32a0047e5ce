//! Every Redis node emptied at once (beyond any budget): the shared log no longer knows the
//! chain. A process never produces on its own head alone: it asks its peers, takes the highest
//! chain, and otherwise waits for them or for an operator.

use std::time::Duration;

use poa_test_support::RedisServer;

use crate::support::{Node, eventually, fleet_flags, reserve_addresses};

fn produced(node: &Node) -> u64 {
    node.get("/status").1["blocks_produced"]
        .as_u64()
        .unwrap_or(0)
}

fn standing_aside(node: &Node) -> String {
    node.get("/status").1["standing_aside"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn log_loss__when_every_redis_node_is_emptied_and_the_producer_behind_restarts_first__then_it_waits_for_its_peer_and_the_chain_does_not_fork()
 {
    // given: two producers that name each other as peers; one is stopped and falls behind
    let redis: Vec<RedisServer> = (0..3).map(|_| RedisServer::start()).collect();
    let urls: Vec<String> = redis.iter().map(RedisServer::url).collect();
    let http = reserve_addresses(2);
    let args_of = |me: usize| {
        let mut args = fleet_flags(&urls, "100ms", "1s", &[]);
        args.extend([
            "--http".to_owned(),
            http[me].clone(),
            "--peer".to_owned(),
            format!("http://{}", http[1 - me]),
        ]);
        args
    };
    let args: Vec<Vec<String>> = (0..2).map(args_of).collect();
    let args: Vec<Vec<&str>> = args
        .iter()
        .map(|args| args.iter().map(String::as_str).collect())
        .collect();
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut nodes: Vec<Node> = (0..2)
        .map(|index| Node::start(dirs[index].path(), &args[index]))
        .collect();
    assert!(eventually(Duration::from_secs(30), || nodes
        .iter()
        .any(|node| node.height() >= 5)));
    let ahead = (0..2).find(|index| nodes[*index].is_leader()).unwrap();
    let behind = 1 - ahead;
    nodes[behind].kill();
    let stopped_at = nodes[ahead].height();
    assert!(eventually(Duration::from_secs(20), || nodes[ahead]
        .height()
        >= stopped_at + 10));

    // when: every Redis node is emptied, the producer ahead dies, and the one behind restarts
    redis.iter().for_each(RedisServer::restart);
    nodes[ahead].kill();
    nodes[behind] = Node::start(dirs[behind].path(), &args[behind]);

    // then: it does not produce on its own head; it says that its peer must answer first
    assert!(
        eventually(Duration::from_secs(15), || standing_aside(&nodes[behind])
            .contains("lost blocks")),
        "{}",
        nodes[behind].get("/status").1
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(produced(&nodes[behind]), 0);
    assert!(standing_aside(&nodes[behind]).contains(&http[ahead]));

    // and when the producer ahead comes back, the fleet continues on the highest chain
    nodes[ahead] = Node::start(dirs[ahead].path(), &args[ahead]);
    let target = stopped_at + 20;
    assert!(
        eventually(Duration::from_secs(30), || nodes
            .iter()
            .all(|node| node.height() >= target)),
        "heights {} and {}",
        nodes[0].height(),
        nodes[1].height()
    );
    for height in 1..=target {
        assert_eq!(
            nodes[0].block_id(height),
            nodes[1].block_id(height),
            "fork at {height}"
        );
    }
}

#[test]
fn log_loss__when_every_redis_node_is_emptied_under_a_lone_producer__then_it_waits_for_the_operators_vouch()
 {
    // given: one producer without peers
    let redis: Vec<RedisServer> = (0..3).map(|_| RedisServer::start()).collect();
    let urls: Vec<String> = redis.iter().map(RedisServer::url).collect();
    let args = fleet_flags(&urls, "100ms", "1s", &[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(dir.path(), &args);
    assert!(eventually(Duration::from_secs(20), || node.height() >= 5));

    // when: every Redis node is emptied and the producer restarts
    node.kill();
    redis.iter().for_each(RedisServer::restart);
    node = Node::start(dir.path(), &args);

    // then: it stands aside and says nobody can confirm its head
    assert!(
        eventually(Duration::from_secs(15), || standing_aside(&node)
            .contains("no peer is configured")),
        "{}",
        node.get("/status").1
    );
    let held = node.height();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(node.height(), held);

    // and once the operator vouches for its head, it republishes it and produces on it
    let (status, answer) = node.post_admin("/admin/vouch-for-head");
    assert_eq!(status, 200, "{answer}");
    assert!(
        eventually(Duration::from_secs(15), || node.height() >= held + 5),
        "{}",
        node.get("/status").1
    );
    assert!(node.log_contains("republished the local head to the shared log"));
}
