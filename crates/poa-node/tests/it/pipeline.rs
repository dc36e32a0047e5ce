//! The commit pipeline under SIGKILL: a lone producer on three redis-servers, whose every fsync
//! `strace` holds for a while so each state of the pipeline lasts long enough to be seen, is
//! killed in each state (a block published above the one committing, a block committing,
//! nothing in flight), restarted, and must then hold every block that reached a quorum, one
//! block per height, each extending the one below.
//!
//! A state is read just before the kill: the committed height from `/status` (a block shows
//! there once its commit ended) on both sides of the highest height a quorum of the nodes
//! holds. A kill that a publish outran (the quorum's top moved before the process was gone) is
//! tried again, so each state is asserted as it was when the process died.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use poa_test_support::{RedisServer, RespValue};

use crate::support::{Node, eventually, fleet_flags, run_to_exit};

/// How long each fsync of the killed process is held: the length of each state.
const FSYNC_DELAY: Duration = Duration::from_millis(400);
/// Generous bound that only catches a hang.
const DEADLINE: Duration = Duration::from_secs(60);
/// Kills a state may take before the test gives up on seeing it (a publish outrunning the
/// kill is rare: the states last `FSYNC_DELAY`).
const ATTEMPTS: usize = 5;
/// The lease key `poa-node` uses by default.
const LEASE_KEY: &str = "poa:leader:lock";

/// A state of the pipeline, by how many blocks are on a quorum above the committed head.
#[derive(Debug, Clone, Copy)]
enum State {
    /// Block h + 1 is published and waits for the commit of h, which runs.
    PublishedAboveACommit,
    /// Block h is published and its commit runs.
    Committing,
    /// Every published block is committed.
    BetweenCommits,
}

impl State {
    fn blocks_above_the_committed_head(self) -> u64 {
        match self {
            Self::PublishedAboveACommit => 2,
            Self::Committing => 1,
            Self::BetweenCommits => 0,
        }
    }

    /// A block time shorter than a commit keeps a block published above the committing one;
    /// a longer one leaves time between commits.
    fn block_time(self) -> &'static str {
        match self {
            Self::PublishedAboveACommit => "100ms",
            Self::Committing | Self::BetweenCommits => "1s",
        }
    }
}

/// Height to block id of what one node's heights index holds.
fn node_log(server: &RedisServer) -> BTreeMap<u64, String> {
    let index = format!("{LEASE_KEY}:heights:index");
    let RespValue::Array(members) = server.command(&[b"ZRANGE", index.as_bytes(), b"0", b"-1"])
    else {
        panic!("ZRANGE did not answer an array");
    };
    members
        .into_iter()
        .filter_map(|member| match member {
            RespValue::Bulk(bytes) => {
                let text = String::from_utf8(bytes).unwrap();
                let mut parts = text.split(':');
                let height = parts.next()?.parse().ok()?;
                let id = parts.next()?.to_owned();
                Some((height, id))
            }
            _ => None,
        })
        .collect()
}

/// Height to block id of every block a quorum (two of the three nodes) holds.
fn quorum_log(redis: &[RedisServer]) -> BTreeMap<u64, String> {
    let logs: Vec<BTreeMap<u64, String>> = redis.iter().map(node_log).collect();
    let mut on_quorum = BTreeMap::new();
    for (height, id) in logs.iter().flatten() {
        let holders = logs
            .iter()
            .filter(|log| log.get(height) == Some(id))
            .count();
        if holders >= 2 {
            on_quorum.insert(*height, id.clone());
        }
    }
    on_quorum
}

fn quorum_top(redis: &[RedisServer]) -> u64 {
    quorum_log(redis).keys().last().copied().unwrap_or(0)
}

fn produced(node: &Node) -> u64 {
    node.get("/status").1["blocks_produced"].as_u64().unwrap()
}

/// The producer's flags: `block_time`, a 2 s lease.
fn flags(redis: &[RedisServer], block_time: &str) -> Vec<String> {
    let urls: Vec<String> = redis.iter().map(RedisServer::url).collect();
    fleet_flags(&urls, block_time, "2s", &[])
}

/// Starts the producer on `data_dir` with its fsyncs held, waits for it to produce and for
/// `state`, and kills it with SIGKILL there: the committed height and the quorum's top it was
/// killed at.
fn kill_in(data_dir: &Path, redis: &[RedisServer], state: State) -> (u64, u64) {
    let args = flags(redis, state.block_time());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let above = state.blocks_above_the_committed_head();
    for _ in 0..ATTEMPTS {
        let mut node = Node::start_with_slow_fsync(data_dir, &args, FSYNC_DELAY);
        assert!(
            eventually(DEADLINE, || produced(&node) >= 2),
            "the producer does not produce"
        );
        let mut seen = (0, 0);
        let in_state = eventually(DEADLINE, || {
            let committed = node.height();
            let top = quorum_top(redis);
            seen = (committed, top);
            top == committed + above && node.height() == committed
        });
        node.kill();
        assert!(in_state, "never saw {state:?}: last {seen:?}");
        if quorum_top(redis) == seen.1 {
            return seen;
        }
    }
    panic!("every kill in {state:?} came after another publish");
}

/// Asserts that `node` holds every block of `log` and that its chain links from height 1 up.
fn assert_holds_in_order(node: &Node, log: &BTreeMap<u64, String>) {
    for (height, id) in log {
        assert_eq!(
            node.block_id(*height).as_deref(),
            Some(id.as_str()),
            "height {height}, on a quorum, is not in the restarted chain"
        );
    }
    let mut parent = node.get("/blocks/0").1["id"].as_str().unwrap().to_owned();
    for height in 1..=node.height() {
        let (status, block) = node.get(&format!("/blocks/{height}"));
        assert_eq!(status, 200, "height {height} is missing");
        assert_eq!(block["height"].as_u64(), Some(height));
        assert_eq!(
            block["parent_id"].as_str(),
            Some(parent.as_str()),
            "height {height}"
        );
        parent = block["id"].as_str().unwrap().to_owned();
    }
}

#[test]
fn pipeline__when_the_leader_is_killed_in_each_state_of_the_commit_pipeline__then_it_loses_nothing_that_reached_a_quorum()
 {
    // given: a lone producer on three Redis nodes
    let redis: Vec<RedisServer> = (0..3).map(|_| RedisServer::start()).collect();
    let dir = tempfile::tempdir().unwrap();
    for state in [
        State::PublishedAboveACommit,
        State::Committing,
        State::BetweenCommits,
    ] {
        // when: it is killed in `state`, and restarted
        let (committed, top) = kill_in(dir.path(), &redis, state);
        eprintln!("killed {state:?}: committed height {committed}, quorum's top {top}");
        let on_quorum = quorum_log(&redis);
        let args = flags(&redis, "1s");
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut restarted = Node::start(dir.path(), &args);
        let caught_up = eventually(DEADLINE, || restarted.height() >= top);

        // then: it holds every block that reached a quorum, one per height, in order
        assert_eq!(
            top,
            committed + state.blocks_above_the_committed_head(),
            "{state:?}"
        );
        assert_eq!(on_quorum.keys().last().copied(), Some(top), "{state:?}");
        assert!(
            caught_up,
            "{state:?}: stuck at {} below {top}",
            restarted.height()
        );
        assert_holds_in_order(&restarted, &on_quorum);
        assert!(restarted.terminate().success(), "{state:?}");
    }

    // and the chain file is sound from genesis to head
    let data_dir = dir.path().display().to_string();
    let (status, stdout, stderr) = run_to_exit(&["check-chain", "--data-dir", &data_dir], DEADLINE);
    assert!(status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("chain ok"), "{stdout}");
}
