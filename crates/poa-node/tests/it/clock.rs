//! A wrong wall clock on one producer: the blocks of the chain are never dated in the future,
//! the chain keeps advancing, and the process with the wrong clock says why it stands aside.
//! The clock is shifted for real, with libfaketime preloaded into the process.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use poa_test_support::RedisServer;

use crate::support::{Node, eventually, fleet_flags};

/// The tolerance the nodes run with (`--max-clock-skew`, its default).
const MAX_CLOCK_SKEW_MS: u64 = 2_000;

fn now_millis() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

fn set_offset(file: &Path, offset: &str) {
    std::fs::write(file, format!("{offset}\n")).unwrap();
}

/// Asserts that no block `node` holds is dated after the real clock plus the tolerance.
fn assert_no_block_from_the_future(node: &Node) {
    let latest_allowed = now_millis() + MAX_CLOCK_SKEW_MS;
    for height in 1..=node.height() {
        let (status, block) = node.get(&format!("/blocks/{height}"));
        assert_eq!(status, 200);
        let timestamp = block["timestamp"].as_u64().unwrap();
        assert!(
            timestamp <= latest_allowed,
            "block {height} is dated {} ms in the future",
            timestamp - now_millis()
        );
    }
}

#[test]
fn clock__when_the_leaders_clock_jumps_a_day_ahead_for_a_moment__then_no_block_is_dated_in_the_future_and_the_chain_advances()
 {
    // given: a leader whose wall clock the test controls, and a second producer
    let redis: Vec<RedisServer> = (0..3).map(|_| RedisServer::start()).collect();
    let urls: Vec<String> = redis.iter().map(RedisServer::url).collect();
    let args = fleet_flags(&urls, "100ms", "1s", &[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let clock = tempfile::NamedTempFile::new().unwrap();
    set_offset(clock.path(), "+0");
    let (shifted_dir, honest_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let shifted = Node::start_with_clock_from(shifted_dir.path(), &args, clock.path());
    assert!(
        eventually(Duration::from_secs(20), || shifted.height() >= 5),
        "the process under a controlled clock did not lead"
    );
    let honest = Node::start(honest_dir.path(), &args);
    assert!(eventually(Duration::from_secs(20), || honest.height()
        >= shifted.height()));

    // when: its clock jumps a day ahead for a moment and comes back
    set_offset(clock.path(), "+86400");
    std::thread::sleep(Duration::from_millis(1_500));
    set_offset(clock.path(), "+0");
    let after_jump = honest.height();

    // then: the chain advances, no block is dated in the future, and both agree on every block
    assert!(
        eventually(Duration::from_secs(20), || honest.height()
            >= after_jump + 20),
        "the chain stopped at {} after the jump",
        honest.height()
    );
    assert_no_block_from_the_future(&honest);
    assert!(eventually(Duration::from_secs(10), || shifted.height()
        >= after_jump + 20));
    for height in 1..=after_jump + 20 {
        assert_eq!(
            shifted.block_id(height),
            honest.block_id(height),
            "height {height}"
        );
    }
}

#[test]
fn clock__when_a_producer_runs_a_day_ahead__then_it_never_produces_says_why_and_follows_the_honest_one()
 {
    // given: a producer whose wall clock is a day ahead of the Redis nodes', alone at first
    let redis: Vec<RedisServer> = (0..3).map(|_| RedisServer::start()).collect();
    let urls: Vec<String> = redis.iter().map(RedisServer::url).collect();
    let args = fleet_flags(&urls, "100ms", "1s", &[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let clock = tempfile::NamedTempFile::new().unwrap();
    set_offset(clock.path(), "+86400");
    let (shifted_dir, honest_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let shifted = Node::start_with_clock_from(shifted_dir.path(), &args, clock.path());

    // when: it has had the lease to itself for a while, then an honest producer joins
    assert!(
        eventually(Duration::from_secs(20), || {
            shifted.get("/status").1["standing_aside"]
                .as_str()
                .is_some_and(|reason| reason.starts_with("clock"))
        }),
        "{}",
        shifted.get("/status").1
    );
    let honest = Node::start(honest_dir.path(), &args);

    // then: the honest one produces, the shifted one follows and never produces
    assert!(eventually(Duration::from_secs(20), || honest.height() >= 20));
    assert!(eventually(Duration::from_secs(10), || shifted.height() >= 20));
    let status = shifted.get("/status").1;
    assert_eq!(status["blocks_produced"].as_u64(), Some(0), "{status}");
    assert!(shifted.log_contains("clock"));
    assert_no_block_from_the_future(&honest);
}
