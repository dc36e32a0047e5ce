//! The local chain database failing under a running node: a write refused by the file system
//! turns `/health` to 503 naming the cause, the node recovers once writes succeed again, and
//! exits with a clear error when they do not within `--chain-recovery-window`; a node started
//! on a chain it cannot write exits at once with the cause, and loses nothing.
//!
//! The fault is the process's file size limit (RLIMIT_FSIZE), lowered and raised again from
//! outside with `prlimit`: every write past the limit fails with "File too large", like a full
//! disk, without privileges or a mount. A tmpfs would need privileges many CI containers lack;
//! this runs everywhere util-linux does, and fails with an install hint where it does not.

use std::process::Command;
use std::time::Duration;

use crate::support::{Node, eventually, run_to_exit};

/// Generous upper bound that only catches a hang.
const HANG: Duration = Duration::from_secs(20);

/// A file size limit inside the database's header page: the header may be rewritten, every
/// data page write fails.
const FAULT_FILE_SIZE_LIMIT: &str = "4096";

/// Sets the soft file size limit of process `pid` (`unlimited` lifts it).
fn set_file_size_limit(node: &Node, soft: &str) {
    let status = Command::new("prlimit")
        .arg("--pid")
        .arg(node.pid().to_string())
        .arg(format!("--fsize={soft}:"))
        .status()
        .unwrap_or_else(|error| {
            panic!(
                "cannot run prlimit ({error}): install util-linux (apt-get install -y util-linux)"
            )
        });
    assert!(status.success(), "prlimit failed: {status}");
}

#[test]
fn node__when_chain_writes_fail_for_a_while__then_health_is_503_and_it_recovers() {
    // given
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), &["--block-time", "100ms"]);
    assert!(eventually(HANG, || node.height() >= 3));

    // when: writes fail
    set_file_size_limit(&node, FAULT_FILE_SIZE_LIMIT);
    let unhealthy = eventually(HANG, || node.get_text("/health").0 == 503);
    let (_, during) = node.get_text("/health");
    let stalled_at = node.height();

    // when: writes succeed again
    set_file_size_limit(&node, "unlimited");
    let healthy = eventually(HANG, || node.get_text("/health").0 == 200);
    let advanced = eventually(HANG, || node.height() >= stalled_at + 3);

    // then
    assert!(
        unhealthy,
        "/health stayed 200 while the chain could not be written"
    );
    assert!(during.contains("File too large"), "{during}");
    assert!(during.contains("chain.redb"), "{during}");
    assert!(node.log_contains("chain database i/o error"));
    assert!(healthy, "/health never recovered");
    assert!(advanced, "production never resumed after the fault");
    assert!(node.log_contains("chain database reopened after an i/o error"));
    let (_, metrics) = node.get_text("/metrics");
    assert!(metrics.contains("poa_chain_storage_healthy 1"), "{metrics}");
    assert!(
        metrics.contains("poa_chain_storage_reopens_total{outcome=\"recovered\"} 1"),
        "{metrics}"
    );
}

#[test]
fn node__when_chain_writes_fail_past_the_recovery_window__then_exits_with_the_cause() {
    // given
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(
        dir.path(),
        &["--block-time", "100ms", "--chain-recovery-window", "2s"],
    );
    assert!(eventually(HANG, || node.height() >= 2));

    // when
    set_file_size_limit(&node, FAULT_FILE_SIZE_LIMIT);
    let exit = node.wait_exit(HANG);

    // then
    let exit = exit.expect("the node kept running with a chain it cannot write");
    assert_eq!(exit.code(), Some(1), "{exit}");
    assert!(node.log_contains("local chain storage failed for good"));
    assert!(node.log_contains("File too large"));
    assert!(node.log_contains("restart the node"));
}

#[test]
fn node__when_its_data_dir_is_deleted_while_running__then_stops_committing_says_so_and_a_restart_is_loud()
 {
    // given
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let mut node = Node::start(&data_dir, &["--block-time", "100ms"]);
    assert!(eventually(HANG, || node.height() >= 3));

    // when
    std::fs::remove_dir_all(&data_dir).unwrap();
    let unhealthy = eventually(HANG, || node.get_text("/health").0 == 503);
    let (_, health) = node.get_text("/health");
    let stopped_at = node.height();
    std::thread::sleep(Duration::from_millis(500));
    let later = node.height();
    let exit = node.terminate();
    let restarted = Node::start(&data_dir, &["--block-time", "100ms"]);

    // then
    assert!(unhealthy, "/health stayed 200 with the chain file deleted");
    assert!(health.contains("deleted"), "{health}");
    assert!(health.contains("/proc/"), "{health}");
    assert!(
        later <= stopped_at + 1,
        "kept producing: {stopped_at} -> {later}"
    );
    assert!(node.log_contains("chain database file deleted or replaced while open"));
    assert_eq!(exit.code(), Some(1), "{exit}");
    assert!(node.log_contains("local chain file detached"));
    assert!(
        restarted.log_contains("no chain database at the path: creating a new chain from genesis")
    );
    assert!(restarted.log_contains(&data_dir.display().to_string()));
}

/// A data directory `data_dir` holding a chain of a few blocks, left by a node stopped cleanly.
fn stopped_chain(data_dir: &std::path::Path) {
    let mut node = Node::start(data_dir, &["--block-time", "50ms"]);
    assert!(eventually(HANG, || node.height() >= 5));
    assert!(node.terminate().success());
}

#[test]
fn node__when_its_chain_file_is_truncated__then_exits_1_naming_the_file_and_the_fix_without_a_panic()
 {
    // given
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    stopped_chain(&data_dir);
    let path = data_dir.join("chain.redb");
    let length = std::fs::metadata(&path).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(length / 2)
        .unwrap();
    let data_dir_arg = data_dir.display().to_string();

    // when
    let (status, _, stderr) = run_to_exit(
        &[
            "--data-dir",
            &data_dir_arg,
            "--http",
            "127.0.0.1:0",
            "--admin-http",
            "127.0.0.1:0",
        ],
        HANG,
    );
    let (check_status, _, check_stderr) =
        run_to_exit(&["check-chain", "--data-dir", &data_dir_arg], HANG);

    // then
    assert_eq!(status.code(), Some(1), "{status}: {stderr}");
    assert!(!stderr.contains("stack backtrace"), "{stderr}");
    assert!(!stderr.contains("thread 'main'"), "{stderr}");
    assert!(stderr.contains(&path.display().to_string()), "{stderr}");
    assert!(stderr.contains("is damaged"), "{stderr}");
    assert!(
        stderr.contains("restore the file from a backup"),
        "{stderr}"
    );
    assert_eq!(check_status.code(), Some(1), "{check_stderr}");
    assert!(check_stderr.contains("is damaged"), "{check_stderr}");
}

#[test]
fn node__when_started_on_a_killed_nodes_chain_that_cannot_be_written__then_exits_1_with_the_cause_and_a_later_start_keeps_every_block()
 {
    // given: a chain left by a killed node (its database needs a repair that writes)
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let mut node = Node::start(&data_dir, &["--block-time", "50ms"]);
    assert!(eventually(HANG, || node.height() >= 5));
    let committed = node.height();
    let committed_id = node.block_id(committed);
    node.kill();
    let data_dir_arg = data_dir.display().to_string();
    let local = ["--http", "127.0.0.1:0", "--admin-http", "127.0.0.1:0"];

    // when: started while no write to the file can succeed, as on a full disk
    let mut limited = Command::new("prlimit");
    limited
        .arg(format!("--fsize={FAULT_FILE_SIZE_LIMIT}"))
        .arg(crate::support::binary())
        .args(["--data-dir", &data_dir_arg])
        .args(local)
        .env("RUST_LOG", "info");
    let refused = limited.output().unwrap_or_else(|error| {
        panic!("cannot run prlimit ({error}): install util-linux (apt-get install -y util-linux)")
    });
    let restarted = Node::start(&data_dir, &["--block-time", "50ms"]);

    // then: a clear exit at start, and nothing lost once the disk takes writes again
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(
        refused.status.code(),
        Some(1),
        "{}: {stderr}",
        refused.status
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "cannot open the local chain in --data-dir {data_dir_arg}"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("File too large"), "{stderr}");
    assert!(committed_id.is_some());
    assert_eq!(restarted.block_id(committed), committed_id);
}

/// The first `sh` block of the section of docs/operations.md whose heading starts with
/// `heading`.
fn recipe(heading: &str) -> String {
    let guide = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/operations.md"),
    )
    .unwrap();
    let section = guide
        .split("\n### ")
        .find(|section| section.starts_with(heading))
        .unwrap_or_else(|| panic!("docs/operations.md has no section {heading}"));
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .unwrap_or_else(|| panic!("section {heading} has no sh block"));
    block.to_owned()
}

#[test]
fn check_chain_recipe__when_run_as_written_in_the_operations_guide__then_passes_a_sound_chain_and_fails_a_damaged_one()
 {
    // given: the recipe runs in a directory holding `poa-data`, with poa-node on PATH
    let dir = tempfile::tempdir().unwrap();
    stopped_chain(&dir.path().join("poa-data"));
    let script = recipe("9.3");
    let binary_dir = std::path::Path::new(crate::support::binary())
        .parent()
        .unwrap();
    let path = format!(
        "{}:{}",
        binary_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run = || {
        Command::new("sh")
            .arg("-c")
            .arg(&script)
            .current_dir(dir.path())
            .env("PATH", &path)
            .output()
            .unwrap()
    };

    // when
    let sound = run();
    let chain = dir.path().join("poa-data").join("chain.redb");
    let length = std::fs::metadata(&chain).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&chain)
        .unwrap()
        .set_len(length - 4096)
        .unwrap();
    let damaged = run();

    // then
    let stdout = String::from_utf8_lossy(&sound.stdout);
    assert!(
        sound.status.success(),
        "{script}: {stdout} {}",
        String::from_utf8_lossy(&sound.stderr)
    );
    assert!(stdout.contains("chain ok"), "{stdout}");
    assert_eq!(damaged.status.code(), Some(1), "{script}");
    assert!(String::from_utf8_lossy(&damaged.stderr).contains("is damaged"));
}

#[test]
fn node__when_the_chain_cache_is_set__then_opens_its_chain_with_that_bound() {
    // given
    let dir = tempfile::tempdir().unwrap();

    // when
    let node = Node::start(
        dir.path(),
        &["--block-time", "100ms", "--chain-cache-mib", "8"],
    );

    // then
    assert!(eventually(HANG, || node.height() >= 1));
    assert!(
        node.log_contains("\"cache_mib\":8"),
        "the opened chain reports its cache bound"
    );
}
