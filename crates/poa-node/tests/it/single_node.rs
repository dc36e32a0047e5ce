//! A single node without Redis: it produces a signed chain, survives kill -9, refuses bad
//! configuration by naming the flag, and serves its API.

use std::process::Command;
use std::time::Duration;

use crate::support::{Node, binary, eventually};

#[test]
fn node__when_started_alone__then_produces_blocks_that_link_to_each_other() {
    // given
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), &["--block-time", "100ms"]);

    // when
    assert!(eventually(Duration::from_secs(20), || node.height() >= 3));

    // then
    let (status, latest) = node.get("/blocks/latest");
    assert_eq!(status, 200);
    let height = latest["height"].as_u64().unwrap();
    let (_, parent) = node.get(&format!("/blocks/{}", height - 1));
    assert_eq!(latest["parent_id"], parent["id"]);
    assert_eq!(latest["seal"], "authority");
    assert_eq!(latest["id"].as_str().unwrap().len(), 64);
    assert!(node.is_leader());
    assert_eq!(node.get("/health").0, 200);
    assert_eq!(node.get("/blocks/999999").0, 404);
}

#[test]
fn node__when_killed_and_restarted__then_continues_the_same_chain() {
    // given
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(dir.path(), &["--block-time", "100ms"]);
    assert!(eventually(Duration::from_secs(20), || node.height() >= 3));
    let height_before = node.height();
    let id_before = node.block_id(height_before).unwrap();

    // when
    node.kill();
    let node = Node::start(dir.path(), &["--block-time", "100ms"]);

    // then: the block seen before the kill is still there, and the chain grows on top of it
    assert_eq!(node.block_id(height_before), Some(id_before.clone()));
    assert!(eventually(Duration::from_secs(20), || node.height()
        > height_before + 1));
    let (_, next) = node.get(&format!("/blocks/{}", height_before + 1));
    assert_eq!(next["parent_id"], id_before);
}

#[test]
fn node__when_a_transaction_is_submitted__then_a_block_includes_it_once() {
    // given
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), &["--instant"]);

    // when
    let (status, accepted) = node.post("/transactions", b"transfer 5 to bob");
    assert_eq!(status, 202);
    let id = accepted["id"].as_str().unwrap().to_owned();

    // then
    assert!(eventually(Duration::from_secs(20), || node.height() >= 1));
    let (_, block) = node.get("/blocks/1");
    assert_eq!(block["transactions"], serde_json::json!([id]));
    let (status, _) = node.post("/transactions", b"transfer 5 to bob");
    assert_eq!(status, 409, "a committed transaction is refused");
    assert_eq!(node.post("/transactions", b"").0, 400);
    // Just over the pool's 64 KiB limit: the whole body is read, then refused by the pool.
    assert_eq!(
        node.post("/transactions", &vec![7_u8; 64 * 1024 + 1]).0,
        413
    );
}

#[test]
fn node__when_manual__then_produces_only_when_asked() {
    // given
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), &["--manual"]);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(node.height(), 0);

    // when
    let (status, outcome) = node.post_admin("/admin/produce");

    // then
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(outcome["height"], 1);
    assert_eq!(node.height(), 1);
}

#[test]
fn node__when_terminated__then_exits_cleanly() {
    // given
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(dir.path(), &["--block-time", "100ms"]);

    // when
    let status = node.terminate();

    // then
    assert!(status.success(), "{status:?}");
    assert!(node.log_contains("node stopped"));
}

#[test]
fn node__when_metrics_are_scraped__then_serves_prometheus_text() {
    // given
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), &["--block-time", "100ms"]);
    assert!(eventually(Duration::from_secs(20), || node.height() >= 1));

    // when
    let mut response = ureq::get(&node.url("/metrics")).call().unwrap();
    let text = response.body_mut().read_to_string().unwrap();

    // then
    assert!(text.contains("poa_blocks_produced_total"), "{text}");
    assert!(text.contains("poa_block_height"));
}

#[test]
fn node__when_configuration_is_invalid__then_exits_non_zero_naming_the_flag() {
    let cases: &[(&[&str], &str)] = &[
        (&["--block-time", "0s"], "--block-time"),
        (
            &["--lease-ttl", "50ms", "--node-timeout", "100ms"],
            "--lease-ttl",
        ),
        (
            &[
                "--quorum-disruption-budget",
                "3",
                "--redis-url",
                "redis://127.0.0.1:1",
            ],
            "--quorum-disruption-budget",
        ),
        (&["--key-file", "/nonexistent/key"], "--key-file"),
        (&["--block-time", "soon"], "--block-time"),
    ];
    for (args, flag) in cases {
        let output = Command::new(binary()).args(*args).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} was accepted");
        assert!(stderr.contains(flag), "{args:?}: {stderr}");
    }
}

#[test]
fn node__when_lease_ttl_is_not_above_node_timeout__then_exits_naming_both_flags_and_the_fix() {
    // when
    let output = Command::new(binary())
        .args(["--lease-ttl", "100ms", "--node-timeout", "200ms"])
        .output()
        .unwrap();

    // then
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "error: invalid --lease-ttl: --lease-ttl (100ms) must be larger than --node-timeout (200ms): raise the ttl or lower the timeout"
        ),
        "{stderr}"
    );
}

#[test]
fn keygen__when_run__then_writes_a_key_the_node_runs_with() {
    // given
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("authority.key");

    // when
    let output = Command::new(binary())
        .args(["keygen", "--key-file"])
        .arg(&key_file)
        .output()
        .unwrap();

    // then
    assert!(output.status.success());
    let printed = String::from_utf8_lossy(&output.stdout);
    let node = Node::start(
        &dir.path().join("data"),
        &[
            "--key-file",
            key_file.to_str().unwrap(),
            "--block-time",
            "100ms",
        ],
    );
    let (_, status) = node.get("/status");
    assert!(
        printed.contains(status["authority"].as_str().unwrap()),
        "{printed} vs {status}"
    );
    assert!(eventually(Duration::from_secs(20), || node.height() >= 1));
    let again = Command::new(binary())
        .args(["keygen", "--key-file"])
        .arg(&key_file)
        .output()
        .unwrap();
    assert!(
        !again.status.success(),
        "an existing key file is never overwritten"
    );
}
