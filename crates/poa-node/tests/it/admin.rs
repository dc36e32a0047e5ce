//! The admin API (`--admin-http`): step-down with its hold-off bounds, and the manual
//! production trigger.

use std::process::{Command, Output, Stdio};
use std::time::Duration;
use std::time::Instant;

use crate::support::{Node, binary, eventually};

#[test]
fn step_down__when_the_hold_off_is_beyond_the_maximum__then_refuses_it_and_keeps_leading() {
    // given
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), &["--block-time", "100ms"]);
    assert!(eventually(Duration::from_secs(20), || node.is_leader()));

    for hold_off in ["18446744073709551615s", "25h", "600000000000000000000s"] {
        // when
        let (status, answer) = node.post_admin(&format!("/admin/step-down?hold_off={hold_off}"));

        // then
        assert_eq!(status, 400, "{hold_off}: {answer}");
        assert_eq!(
            answer["error"]["code"], "invalid_query",
            "{hold_off}: {answer}"
        );
        assert!(
            answer["error"]["message"].as_str().unwrap().contains("24h"),
            "{hold_off}: {answer}"
        );
    }
    let height = node.height();
    assert!(eventually(Duration::from_secs(20), || node.height() > height + 2));
    assert!(node.is_leader());
}

#[test]
fn step_down__when_the_hold_off_is_within_the_maximum__then_steps_down_for_it() {
    // given
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), &["--block-time", "100ms"]);
    assert!(eventually(Duration::from_secs(20), || node.is_leader()));

    // when
    let (status, answer) = node.post_admin("/admin/step-down?hold_off=24h");

    // then
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["hold_off_ms"], 24 * 3_600 * 1_000);
    assert!(!node.is_leader());
}

#[test]
fn step_down_hold_off__when_configured_beyond_the_maximum__then_refuses_to_start_naming_the_flag() {
    // given
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(binary());
    command
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--http", "127.0.0.1:0", "--admin-http", "127.0.0.1:0"])
        .args(["--step-down-hold-off", "25h"]);

    // when
    let output = output_within(&mut command, Duration::from_secs(20));

    // then
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "started with the hold-off: {stderr}"
    );
    assert!(stderr.contains("--step-down-hold-off"), "{stderr}");
    assert!(stderr.contains("24h"), "{stderr}");
}

/// Runs `command` to its exit, or kills it after `deadline` (a node that should have refused to
/// start runs until then).
fn output_within(command: &mut Command, deadline: Duration) -> Output {
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let end = Instant::now() + deadline;
    while child.try_wait().unwrap().is_none() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    child.wait_with_output().unwrap()
}

#[test]
fn produce__when_manual__then_only_the_admin_api_produces_a_block() {
    // given
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), &["--manual"]);

    // when
    let (public, _) = node.post("/blocks/produce", b"");
    let (status, outcome) = node.post_admin("/admin/produce");

    // then
    assert!(
        public == 404 || public == 405,
        "the public API answered {public} to a produce request"
    );
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(outcome["height"], 1);
    assert_eq!(node.height(), 1);
}

#[test]
fn produce__when_the_trigger_is_an_interval__then_refuses_and_never_raises_the_block_rate() {
    // given: one block a second
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), &["--block-time", "1s"]);
    assert!(eventually(Duration::from_secs(20), || node.height() >= 1));
    let started = Instant::now();
    let height = node.height();

    // when a client asks for blocks as fast as it can
    let mut answers = Vec::new();
    while started.elapsed() < Duration::from_millis(1_500) {
        answers.push(node.post_admin("/admin/produce").0);
    }

    // then every request was refused, and no more blocks came than the interval allows
    assert!(answers.iter().all(|status| *status == 409), "{answers:?}");
    let produced = node.height() - height;
    let allowed = started.elapsed().as_secs() + 1;
    assert!(
        produced <= allowed,
        "{produced} blocks in {:?}",
        started.elapsed()
    );
}
