//! What a real process tells about its life: an error that stops it is printed once (on
//! standard error, not again in the log), and each lifecycle event (start, leadership gained,
//! step-down, lease release, hand-on, shutdown) is one log line, not two lines from two layers.

use std::time::Duration;

use poa_test_support::RedisServer;
use serde_json::Value;

use crate::support::{
    Node, eventually, fleet_flags, fleet_flags_with_trigger, reserve_addresses, run_refused,
    start_peered_pair,
};

/// Generous upper bound that only catches a hang.
const HANG: Duration = Duration::from_secs(30);

/// A lifecycle event: its name, and the beginnings of the messages of every layer that may
/// tell of it.
type Event = (&'static str, &'static [&'static str]);

/// The events of a process that started on Redis and led.
const STARTED_AND_LED: &[Event] = &[
    ("the start", &["node running", "production service started"]),
    (
        "the chain's opening",
        &["local chain opened", "chain store opened"],
    ),
    (
        "the lease's start",
        &[
            "redis reconciliation adapter started",
            "leader lease on redis",
        ],
    ),
    ("the leadership gained", &["lease acquired"]),
];

/// The release of the lease a process held.
const RELEASE: Event = ("the lease release", &["lease released"]);

/// Pending transactions handed on to the peers when a process stops leading.
const HAND_ON: Event = (
    "the hand-on",
    &[
        "no longer leading",
        "handing pending transactions on",
        "pending transactions handed on",
    ],
);

/// How many times `needle` appears in the process's standard output and error together.
fn occurrences(stdout: &str, stderr: &str, needle: &str) -> usize {
    stdout.matches(needle).count() + stderr.matches(needle).count()
}

/// The `message` of every JSON log line of `node`.
fn messages(node: &Node) -> Vec<String> {
    node.log
        .lock()
        .unwrap()
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter_map(|event| event["message"].as_str().map(str::to_owned))
        .collect()
}

/// How many of `messages` tell of one event, whichever layer's words they use.
fn lines_telling(messages: &[String], words: &[&str]) -> usize {
    messages
        .iter()
        .filter(|message| words.iter().any(|word| message.starts_with(word)))
        .count()
}

/// Asserts each event is logged exactly once.
fn assert_each_logged_once(messages: &[String], events: &[Event]) {
    for (event, words) in events {
        assert_eq!(
            lines_telling(messages, words),
            1,
            "{event} is not logged exactly once:\n{}",
            messages.join("\n")
        );
    }
}

/// Asserts a start with `extra` flags exits with `code`, and that `reason` is in everything it
/// wrote exactly once, on stderr.
fn assert_refused_once(extra: &[&str], code: i32, reason: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (exit, stdout, stderr) = run_refused(dir.path(), extra);
    assert_eq!(exit, Some(code), "{stdout}{stderr}");
    assert!(stderr.contains(reason), "{stderr}");
    assert_eq!(
        occurrences(&stdout, &stderr, reason),
        1,
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
}

#[test]
fn node__when_a_setting_is_invalid__then_prints_the_error_once() {
    // given: a lease TTL shorter than the node timeout
    let flags = [
        "--redis-url",
        "redis://127.0.0.1:1",
        "--lease-ttl",
        "1s",
        "--node-timeout",
        "2s",
    ];

    // when / then: refused, and the reason appears once in everything the process wrote
    assert_refused_once(
        &flags,
        2,
        "invalid --lease-ttl: --lease-ttl (1s) must be larger",
    );
}

#[test]
fn node__when_its_http_address_is_taken__then_prints_the_error_once() {
    // given: the HTTP address held by another socket
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();

    // when / then
    assert_refused_once(&["--http", &address], 1, "cannot listen on --http");
}

#[test]
fn node__when_a_leader_steps_down_and_its_successor_is_terminated__then_each_lifecycle_event_is_logged_once()
 {
    // given: two producers on three redis-servers, each the other's peer; the first leads
    let redis: Vec<RedisServer> = (0..3).map(|_| RedisServer::start()).collect();
    let urls: Vec<String> = redis.iter().map(RedisServer::url).collect();
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let (first, mut second) = start_peered_pair(&dirs, &fleet_flags(&urls, "100ms", "1s", &[]));

    // when: the first steps down, the second takes over, then the second gets SIGTERM
    let (status, answer) = first.post_admin("/admin/step-down?hold_off=1h");
    assert_eq!(status, 200, "{answer}");
    assert!(
        eventually(HANG, || second.is_leader()),
        "the second node does not lead"
    );
    assert!(eventually(HANG, || second.height() >= first.height() + 2));
    assert!(second.terminate().success());

    // then: the one who stepped down told each of its events once
    let stepped_down = messages(&first);
    assert_each_logged_once(&stepped_down, STARTED_AND_LED);
    assert_each_logged_once(
        &stepped_down,
        &[("the step-down", &["stepping down"]), RELEASE, HAND_ON],
    );
    // and the terminated leader told each of its events once, its shutdown included
    let terminated = messages(&second);
    assert_each_logged_once(&terminated, STARTED_AND_LED);
    assert_each_logged_once(
        &terminated,
        &[
            (
                "the shutdown",
                &["terminate received", "production service stopping"],
            ),
            RELEASE,
            HAND_ON,
            ("the stop", &["node stopped"]),
        ],
    );
}

#[test]
fn node__when_a_leader_loses_its_redis_quorum__then_the_lost_leadership_is_logged_once() {
    // given: a manual leader (its cycles only renew the lease) on three redis-servers, with a
    // peer to hand pending transactions on to
    let redis: Vec<RedisServer> = (0..3).map(|_| RedisServer::start()).collect();
    let urls: Vec<String> = redis.iter().map(RedisServer::url).collect();
    let peer = format!("http://{}", reserve_addresses(1).remove(0));
    let flags = fleet_flags_with_trigger(&urls, &["--manual"], "1s", &["--peer", &peer]);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), &flags);
    assert!(
        eventually(HANG, || node.is_leader()),
        "the node does not lead"
    );

    // when: two of the three nodes stop, so no renewal reaches a quorum
    redis[1].stop();
    redis[2].stop();
    assert!(
        eventually(HANG, || !node.is_leader()),
        "the node still leads"
    );
    assert!(eventually(HANG, || lines_telling(
        &messages(&node),
        HAND_ON.1
    ) > 0));

    // then
    assert_each_logged_once(
        &messages(&node),
        &[
            (
                "the leadership lost",
                &["lease not held by this process", "lease no longer held"],
            ),
            HAND_ON,
        ],
    );
}
