//! What a real process tells about its life: an error that stops it is printed once (on
//! standard error, not again in the log), and each lifecycle event (start, leadership gained,
//! step-down, lease release, hand-on, shutdown) is one log line, not two lines from two layers.

use std::time::Duration;

use poa_test_support::RedisServer;
use serde_json::Value;

use crate::support::{Node, eventually, fleet_flags, reserve_addresses, run_to_exit};

/// Generous upper bound that only catches a hang.
const HANG: Duration = Duration::from_secs(30);

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

/// Asserts each event (a name and the messages that tell of it) is logged exactly once.
fn assert_each_logged_once(messages: &[String], events: &[(&str, &[&str])]) {
    for (event, words) in events {
        assert_eq!(
            lines_telling(messages, words),
            1,
            "{event} is not logged exactly once:\n{}",
            messages.join("\n")
        );
    }
}

#[test]
fn node__when_a_setting_is_invalid__then_prints_the_error_once() {
    // given: a lease TTL shorter than the node timeout
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().display().to_string();

    // when
    let (status, stdout, stderr) = run_to_exit(
        &[
            "--data-dir",
            &data_dir,
            "--http",
            "127.0.0.1:0",
            "--admin-http",
            "127.0.0.1:0",
            "--redis-url",
            "redis://127.0.0.1:1",
            "--lease-ttl",
            "1s",
            "--node-timeout",
            "2s",
        ],
        HANG,
    );

    // then: refused, and the reason appears once in everything the process wrote
    assert_eq!(status.code(), Some(2), "{stdout}{stderr}");
    assert!(stderr.contains("invalid --lease-ttl"), "{stderr}");
    assert_eq!(
        occurrences(&stdout, &stderr, "must be larger than --node-timeout"),
        1,
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
}

#[test]
fn node__when_its_http_address_is_taken__then_prints_the_error_once() {
    // given: the HTTP address held by another socket
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().display().to_string();

    // when
    let (status, stdout, stderr) = run_to_exit(
        &[
            "--data-dir",
            &data_dir,
            "--http",
            &address,
            "--admin-http",
            "127.0.0.1:0",
        ],
        HANG,
    );

    // then
    assert_eq!(status.code(), Some(1), "{stdout}{stderr}");
    assert!(stderr.contains("cannot listen on --http"), "{stderr}");
    assert_eq!(
        occurrences(&stdout, &stderr, "cannot listen on --http"),
        1,
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
}

#[test]
fn node__when_a_leader_steps_down_and_its_successor_is_terminated__then_each_lifecycle_event_is_logged_once()
 {
    // given: two producers on three redis-servers, each the other's peer; the first leads
    let redis: Vec<RedisServer> = (0..3).map(|_| RedisServer::start()).collect();
    let urls: Vec<String> = redis.iter().map(RedisServer::url).collect();
    let addresses = reserve_addresses(2);
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let start = |index: usize| {
        let extra = [
            "--http",
            &addresses[index],
            "--peer",
            &format!("http://{}", addresses[1 - index]),
        ]
        .map(str::to_owned);
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let args = fleet_flags(&urls, "100ms", "1s", &extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Node::start(dirs[index].path(), &args)
    };
    let first = start(0);
    assert!(
        eventually(HANG, || first.is_leader()),
        "the first node does not lead"
    );
    let mut second = start(1);

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
    assert_each_logged_once(
        &stepped_down,
        &[
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
            ("the step-down", &["stepping down"]),
            ("the lease release", &["lease released"]),
            (
                "the hand-on",
                &["no longer leading", "pending transactions handed on"],
            ),
        ],
    );
    // and the terminated leader told each of its events once, its shutdown included
    let terminated = messages(&second);
    assert_each_logged_once(
        &terminated,
        &[
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
            (
                "the shutdown",
                &["terminate received", "production service stopping"],
            ),
            ("the lease release", &["lease released"]),
            (
                "the hand-on",
                &["no longer leading", "pending transactions handed on"],
            ),
            ("the stop", &["node stopped"]),
        ],
    );
}
