//! What a `202` promises across a change of leader: fleets whose processes name each other as
//! peers lose no accepted transaction and include none twice when the leader steps down under
//! load, is SIGTERMed, is SIGKILLed after relaying, or is SIGKILLed and restarted to win the
//! lease while the others accepted transactions.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::thread;
use std::time::Duration;

use poa_test_support::{FaultProxy, ProxyMode, RedisServer};

use crate::support::{Node, eventually, fleet_flags, reserve_addresses};

/// How long the survivors may take to include every accepted transaction: generous, it only
/// catches transactions that are never included.
const INCLUDED_WITHIN: Duration = Duration::from_secs(40);

/// Processes on loopback that name each other as `--peer`s, each on its own data directory and
/// a reserved HTTP port (kept across restarts).
struct MeshedFleet {
    dirs: Vec<tempfile::TempDir>,
    args: Vec<Vec<String>>,
    nodes: Vec<Node>,
}

impl MeshedFleet {
    /// Starts one process per entry of `redis_urls` (the Redis URLs that process uses), in
    /// order, with `block_time` and `lease_ttl`; the first leads before the others start.
    fn start(redis_urls: &[Vec<String>], block_time: &str, lease_ttl: &str) -> Self {
        let count = redis_urls.len();
        let addresses = reserve_addresses(count);
        let dirs: Vec<_> = (0..count).map(|_| tempfile::tempdir().unwrap()).collect();
        let args: Vec<Vec<String>> = (0..count)
            .map(|index| {
                let mut args = fleet_flags(&redis_urls[index], block_time, lease_ttl, &[]);
                args.extend(["--http".to_owned(), addresses[index].clone()]);
                for (other, address) in addresses.iter().enumerate() {
                    if other != index {
                        args.extend(["--peer".to_owned(), format!("http://{address}")]);
                    }
                }
                args
            })
            .collect();
        let first = start_node(dirs[0].path(), &args[0]);
        assert!(
            eventually(Duration::from_secs(30), || first.is_leader()),
            "the first process does not lead"
        );
        let mut nodes = vec![first];
        nodes.extend((1..count).map(|index| start_node(dirs[index].path(), &args[index])));
        Self { dirs, args, nodes }
    }

    /// SIGKILLs process `index` and starts it again on its data directory and port.
    fn restart(&mut self, index: usize) {
        self.nodes[index].kill();
        self.nodes[index] = start_node(self.dirs[index].path(), &self.args[index]);
    }

    /// Waits until exactly one process leads, and returns its index.
    fn leader(&self) -> usize {
        let mut leader = None;
        assert!(
            eventually(Duration::from_secs(30), || {
                let leading: Vec<usize> = (0..self.nodes.len())
                    .filter(|&index| {
                        self.nodes[index].is_running() && self.nodes[index].is_leader()
                    })
                    .collect();
                leader = (leading.len() == 1).then(|| leading[0]);
                leader.is_some()
            }),
            "no single leader"
        );
        leader.unwrap()
    }
}

fn start_node(dir: &Path, args: &[String]) -> Node {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Node::start(dir, &args)
}

/// Submits `count` distinct transactions to `node`; returns the ids answered 202.
fn submit(node: &Node, tag: &str, count: usize) -> Vec<String> {
    (0..count)
        .filter_map(|index| {
            let (status, answer) = node.post("/transactions", format!("{tag} {index}").as_bytes());
            (status == 202).then(|| answer["id"].as_str().unwrap().to_owned())
        })
        .collect()
}

/// How many times each transaction id appears in `node`'s chain.
fn inclusions(node: &Node) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for height in 1..=node.height() {
        let (_, block) = node.get(&format!("/blocks/{height}"));
        for id in block["transactions"].as_array().into_iter().flatten() {
            *counts.entry(id.as_str().unwrap().to_owned()).or_default() += 1;
        }
    }
    counts
}

/// Asserts that `node`'s chain comes to include every one of `accepted`, each exactly once.
fn assert_included_once(node: &Node, accepted: &[String]) {
    let wanted: HashSet<&String> = accepted.iter().collect();
    let mut missing = wanted.len();
    let all_in = eventually(INCLUDED_WITHIN, || {
        let counts = inclusions(node);
        missing = wanted
            .iter()
            .filter(|id| !counts.contains_key(**id))
            .count();
        missing == 0
    });
    assert!(
        all_in,
        "{missing} of {} accepted transactions were never included",
        wanted.len()
    );
    let counts = inclusions(node);
    let twice: Vec<_> = counts.iter().filter(|(_, count)| **count > 1).collect();
    assert!(twice.is_empty(), "included more than once: {twice:?}");
}

fn redis_urls(redis: &[RedisServer]) -> Vec<String> {
    redis.iter().map(RedisServer::url).collect()
}

#[test]
fn handover__when_the_leader_steps_down_under_load__then_every_accepted_transaction_is_included_once()
 {
    // given: three processes that name each other as peers
    let redis: Vec<RedisServer> = (0..3).map(|_| RedisServer::start()).collect();
    let urls = redis_urls(&redis);
    let fleet = MeshedFleet::start(&[urls.clone(), urls.clone(), urls], "100ms", "1s");
    let leader = fleet.leader();
    let old_leader = &fleet.nodes[leader];

    // when the leader steps down (for longer than this test) while a client submits to it
    let accepted = thread::scope(|scope| {
        let load = scope.spawn(|| submit(old_leader, "step-down load", 300));
        thread::sleep(Duration::from_millis(300));
        let (status, answer) = old_leader.post_admin("/admin/step-down?hold_off=5m");
        assert_eq!(status, 200, "{answer}");
        load.join().unwrap()
    });

    // then the next leader includes every transaction the old one accepted, once
    assert!(accepted.len() > 250, "only {} accepted", accepted.len());
    let next = fleet.leader();
    assert_ne!(next, leader);
    assert_included_once(&fleet.nodes[next], &accepted);
}

#[test]
fn handover__when_the_leader_is_terminated_right_after_accepting__then_the_next_leader_includes_them_once()
 {
    // given: one-second blocks, so most of what the leader accepts is still pending
    let redis: Vec<RedisServer> = (0..3).map(|_| RedisServer::start()).collect();
    let urls = redis_urls(&redis);
    let mut fleet = MeshedFleet::start(&[urls.clone(), urls.clone(), urls], "1s", "3s");
    let leader = fleet.leader();

    // when it accepts 50 transactions and is SIGTERMed at once
    let accepted = submit(&fleet.nodes[leader], "sigterm", 50);
    let status = fleet.nodes[leader].terminate();

    // then
    assert!(status.success(), "{status:?}");
    assert_eq!(accepted.len(), 50);
    let next = fleet.leader();
    assert_included_once(&fleet.nodes[next], &accepted);
}

#[test]
fn handover__when_the_leader_is_killed_after_relaying__then_the_next_leader_includes_what_it_accepted()
 {
    // given
    let redis: Vec<RedisServer> = (0..3).map(|_| RedisServer::start()).collect();
    let urls = redis_urls(&redis);
    let mut fleet = MeshedFleet::start(&[urls.clone(), urls.clone(), urls], "1s", "3s");
    let leader = fleet.leader();

    // when it accepts 50 transactions, has had far more than one relay round trip, and is
    // SIGKILLed
    let accepted = submit(&fleet.nodes[leader], "sigkill", 50);
    thread::sleep(Duration::from_millis(500));
    fleet.nodes[leader].kill();

    // then
    assert_eq!(accepted.len(), 50);
    let next = fleet.leader();
    assert_included_once(&fleet.nodes[next], &accepted);
}

#[test]
fn handover__when_the_killed_leader_restarts_and_wins_the_lease__then_it_includes_what_the_others_accepted_meanwhile()
 {
    // given: the first process reaches Redis directly and leads; the two others go through
    // proxies, so they can be kept from taking the lease
    let redis: Vec<RedisServer> = (0..3).map(|_| RedisServer::start()).collect();
    let proxies: Vec<FaultProxy> = (0..6)
        .map(|index| FaultProxy::start(redis[index % 3].addr()))
        .collect();
    let through = |first: usize| -> Vec<String> {
        proxies[first..first + 3]
            .iter()
            .map(FaultProxy::url)
            .collect()
    };
    let mut fleet = MeshedFleet::start(&[redis_urls(&redis), through(0), through(3)], "1s", "3s");
    assert_eq!(fleet.leader(), 0);

    // when the leader is killed, the others accept transactions while nobody leads, cut off
    // from Redis, and the killed process restarts and takes the lease
    fleet.nodes[0].kill();
    for proxy in &proxies {
        proxy.set_mode(ProxyMode::Blackhole);
    }
    let mut accepted = submit(&fleet.nodes[1], "while leaderless one", 25);
    accepted.extend(submit(&fleet.nodes[2], "while leaderless two", 25));
    fleet.restart(0);
    assert!(
        eventually(Duration::from_secs(30), || fleet.nodes[0].is_leader()),
        "the restarted process did not take the lease"
    );
    for proxy in &proxies {
        proxy.set_mode(ProxyMode::Pass);
    }

    // then it includes every transaction the others accepted, once
    assert_eq!(accepted.len(), 50);

    assert_included_once(&fleet.nodes[0], &accepted);
}
