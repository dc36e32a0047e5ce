//! Runs the demo binary end to end in plain (non-terminal) mode with a short duration.

#![allow(non_snake_case, reason = "test names read as subject__when__then")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code fails the test loudly"
)]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The poa-node binary next to the demo binary, built (or found up to date) by cargo.
fn node_binary() -> PathBuf {
    let demo = PathBuf::from(env!("CARGO_BIN_EXE_poa-demo"));
    let built = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "-p", "poa-node", "--bin", "poa-node"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("cannot run cargo build -p poa-node");
    assert!(built.success(), "cargo build -p poa-node failed");
    let node = demo.parent().unwrap().join("poa-node");
    assert!(node.exists(), "{} is missing", node.display());
    node
}

#[test]
fn demo__when_run_without_a_terminal__then_reports_a_takeover_and_exits_cleanly() {
    // given
    let node = node_binary();
    let started = Instant::now();

    // when
    let output = Command::new(env!("CARGO_BIN_EXE_poa-demo"))
        .arg("--node-binary")
        .arg(&node)
        .args(["--duration", "15s", "--kill-after", "2s"])
        .stdin(Stdio::null())
        .output()
        .unwrap();

    // then
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("SIGKILL node"), "{stdout}");
    assert!(stdout.contains("takeover: node"), "{stdout}");
    assert!(stdout.contains("no fork"), "{stdout}");
    assert!(
        !stdout.contains('\x1b'),
        "no ANSI escapes without a terminal"
    );
    assert!(stdout.contains("removed the demo's files"), "{stdout}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
}
