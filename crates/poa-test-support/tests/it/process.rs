//! [`ChildProcess`] with real programs (`sh`, `sleep`): one log across starts, readiness
//! failures that quote the log, signals, and no process left behind.

#![allow(non_snake_case)]

use std::path::Path;
use std::time::Duration;

use nix::sys::signal::Signal;
use poa_test_support::{ChildProcess, ProcessError, wait_for};

use crate::{HANG_GUARD, process_exists};

/// A shell running `script`, its output logged to `log`.
fn shell(script: &str, log: &Path) -> ChildProcess {
    ChildProcess::new("the shell", Path::new("/bin/sh"), log).with_args(["-c", script])
}

/// The one-letter state of a process in `/proc/<pid>/stat` (`S` sleeping, `T` stopped...).
fn state(pid: u32) -> char {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = stat.rsplit_once(')').unwrap().1;
    after_name.trim_start().chars().next().unwrap()
}

#[test]
fn start__when_started_twice__then_the_first_process_is_gone_and_the_log_holds_both() {
    // given
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("shell.log");
    let mut process =
        shell("echo \"started with $GREETING\"; exec sleep 30", &log).with_env("GREETING", "hello");
    process.start().unwrap();
    let first = process.pid().unwrap();
    assert!(wait_for(HANG_GUARD, || process
        .log_text()
        .contains("hello")));

    // when
    process.start().unwrap();

    // then
    assert!(!process_exists(first));
    assert_eq!(process.starts(), 2);
    assert!(wait_for(HANG_GUARD, || {
        process.log_text().matches("started with hello").count() == 2
    }));
}

#[test]
fn wait_until_ready__when_the_process_exits_first__then_exited_at_start_with_the_log_tail() {
    // given
    let dir = tempfile::tempdir().unwrap();
    let mut process = shell(
        "echo 'no config file'; exit 3",
        &dir.path().join("shell.log"),
    );
    process.start().unwrap();

    // when
    let result = process.wait_until_ready(HANG_GUARD, || false);

    // then
    let error = result.unwrap_err();
    assert!(
        matches!(&error, ProcessError::ExitedAtStart { tail, .. } if tail.contains("no config file")),
        "{error}"
    );
    assert!(!process.is_running());
}

#[test]
fn wait_until_ready__when_never_ready__then_not_ready_and_the_process_is_killed() {
    // given
    let dir = tempfile::tempdir().unwrap();
    let mut process = shell("echo waiting; exec sleep 30", &dir.path().join("shell.log"));
    process.start().unwrap();
    let pid = process.pid().unwrap();

    // when
    let result = process.wait_until_ready(Duration::from_millis(300), || false);

    // then
    assert!(
        matches!(result, Err(ProcessError::NotReady { .. })),
        "{result:?}"
    );
    assert!(!process.is_running());
    assert!(!process_exists(pid));
}

#[test]
fn wait_until_ready__when_the_probe_holds__then_ok_and_still_running() {
    // given
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("shell.log");
    let mut process = shell("echo ready; exec sleep 30", &log);
    process.start().unwrap();

    // when
    let result = process.wait_until_ready(HANG_GUARD, || {
        std::fs::read_to_string(&log).is_ok_and(|text| text.contains("ready"))
    });

    // then
    result.unwrap();
    assert!(process.is_running());
}

#[test]
fn freeze__when_frozen_then_thawed__then_stopped_then_running_again() {
    // given
    let dir = tempfile::tempdir().unwrap();
    let mut process = shell("exec sleep 30", &dir.path().join("shell.log"));
    process.start().unwrap();
    let pid = process.pid().unwrap();

    // when
    process.freeze().unwrap();
    let frozen = wait_for(HANG_GUARD, || state(pid) == 'T');
    process.thaw().unwrap();
    let thawed = wait_for(HANG_GUARD, || state(pid) != 'T');

    // then
    assert!(frozen, "never stopped");
    assert!(thawed, "never continued");
    assert!(!process.is_frozen());
}

#[test]
fn stop__when_the_process_exits_on_sigterm__then_its_exit_status() {
    // given: a shell that exits 0 on SIGTERM, and one frozen that must be continued first
    let dir = tempfile::tempdir().unwrap();
    let script = "trap 'exit 0' TERM; echo armed; while :; do sleep 0.05; done";
    let mut process = shell(script, &dir.path().join("shell.log"));
    process.start().unwrap();
    process
        .wait_until_ready(HANG_GUARD, || process_log_has(&dir, "armed"))
        .unwrap();
    process.freeze().unwrap();

    // when
    let status = process.stop(HANG_GUARD);

    // then
    assert!(status.is_some_and(|status| status.success()), "{status:?}");
    assert!(!process.is_running());
}

fn process_log_has(dir: &tempfile::TempDir, needle: &str) -> bool {
    std::fs::read_to_string(dir.path().join("shell.log")).is_ok_and(|text| text.contains(needle))
}

#[test]
fn signal__when_not_running__then_not_running_error() {
    // given
    let dir = tempfile::tempdir().unwrap();
    let process = shell("exit 0", &dir.path().join("shell.log"));

    // when
    let result = process.signal(Signal::SIGTERM);

    // then
    assert!(
        matches!(result, Err(ProcessError::NotRunning { .. })),
        "{result:?}"
    );
}

#[test]
fn drop__when_running__then_the_process_is_gone() {
    // given
    let dir = tempfile::tempdir().unwrap();
    let mut process = shell("exec sleep 30", &dir.path().join("shell.log"));
    process.start().unwrap();
    let pid = process.pid().unwrap();

    // when
    drop(process);

    // then
    assert!(!process_exists(pid));
}
