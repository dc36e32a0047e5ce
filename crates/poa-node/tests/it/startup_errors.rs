//! A node refused at startup by its data directory or key file: each refusal exits promptly
//! with a message that names the file (or flag) and the fix, and loses nothing.

use std::path::Path;
use std::time::Duration;

use crate::support::{Node, eventually, run_refused};

/// Generous upper bound that only catches a hang.
const HANG: Duration = Duration::from_secs(20);

/// Runs a node on `data_dir` with `extra` flags until it exits: status code and stderr.
fn start_refused(data_dir: &Path, extra: &[&str]) -> (Option<i32>, String) {
    let (code, _, stderr) = run_refused(data_dir, extra);
    (code, stderr)
}

/// A data directory with a chain of a few blocks, from a node stopped cleanly.
fn stopped_chain(data_dir: &Path, extra: &[&str]) {
    let mut flags = vec!["--block-time", "50ms"];
    flags.extend_from_slice(extra);
    let mut node = Node::start(data_dir, &flags);
    assert!(eventually(HANG, || node.height() >= 2));
    assert!(node.terminate().success());
}

#[test]
fn node__when_data_dir_is_a_regular_file__then_exits_naming_the_flag_and_the_fix() {
    // given
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"precious").unwrap();

    // when
    let (code, stderr) = start_refused(&file, &[]);

    // then
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("--data-dir"), "{stderr}");
    assert!(stderr.contains("is not a directory"), "{stderr}");
    assert!(stderr.contains("point it at a directory"), "{stderr}");
    assert_eq!(std::fs::read(&file).unwrap(), b"precious");
}

#[test]
fn node__when_the_chain_file_is_empty__then_refuses_to_make_it_a_new_chain() {
    // given
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("chain.redb"), b"").unwrap();

    // when
    let (code, stderr) = start_refused(dir.path(), &[]);

    // then
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("chain.redb is empty"), "{stderr}");
    assert!(stderr.contains("restore it from a backup"), "{stderr}");
    assert!(stderr.contains("rm "), "{stderr}");
    assert_eq!(
        std::fs::metadata(dir.path().join("chain.redb"))
            .unwrap()
            .len(),
        0,
        "the file is left as it was"
    );
}

#[test]
fn node__when_the_chain_file_is_not_a_database__then_names_the_file_and_the_fix_not_invalid_data() {
    // given
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("chain.redb"), vec![0x5a; 8192]).unwrap();

    // when
    let (code, stderr) = start_refused(dir.path(), &[]);

    // then
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("chain.redb is not a database"), "{stderr}");
    assert!(stderr.contains("mv "), "{stderr}");
    assert!(!stderr.contains("invalid data"), "{stderr}");
}

#[test]
fn node__when_the_chain_file_is_cut_inside_its_header__then_names_the_damage_and_the_fix() {
    // given
    let dir = tempfile::tempdir().unwrap();
    stopped_chain(dir.path(), &[]);
    let path = dir.path().join("chain.redb");
    let head = std::fs::read(&path).unwrap()[..100].to_vec();
    std::fs::write(&path, head).unwrap();

    // when
    let (code, stderr) = start_refused(dir.path(), &[]);

    // then
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("is damaged"), "{stderr}");
    assert!(
        stderr.contains("restore the file from a backup"),
        "{stderr}"
    );
    assert!(!stderr.contains("stack backtrace"), "{stderr}");
}

#[test]
fn node__when_the_data_dir_holds_another_chain__then_names_chain_id_key_file_and_genesis_time() {
    // given
    let dir = tempfile::tempdir().unwrap();
    stopped_chain(dir.path(), &["--chain-id", "7"]);

    // when
    let (code, stderr) = start_refused(dir.path(), &[]);

    // then
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("belongs to another chain"), "{stderr}");
    assert!(stderr.contains("chain id 7 there, 0 here"), "{stderr}");
    for flag in ["--chain-id", "--key-file", "--genesis-time"] {
        assert!(stderr.contains(flag), "{flag}: {stderr}");
    }
}

#[test]
fn node__when_the_key_file_is_a_fifo__then_refuses_at_once_naming_the_flag() {
    // given
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("authority.key");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let fifo = fifo.display().to_string();

    // when
    let (code, stderr) = start_refused(&dir.path().join("data"), &["--key-file", &fifo]);

    // then
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--key-file"), "{stderr}");
    assert!(stderr.contains("named pipe"), "{stderr}");
    assert!(stderr.contains("poa-node keygen"), "{stderr}");
}

#[test]
fn node__when_the_epoch_file_holds_no_epoch__then_exits_naming_the_file_and_the_fix() {
    // given: a data directory whose epoch file was damaged, and a Redis fleet
    let redis: Vec<poa_test_support::RedisServer> = (0..3)
        .map(|_| poa_test_support::RedisServer::start())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let epoch_file = dir.path().join("lease-epoch");
    std::fs::write(&epoch_file, b"not a number\n").unwrap();
    let urls: Vec<String> = redis
        .iter()
        .map(poa_test_support::RedisServer::url)
        .collect();
    let mut flags = Vec::new();
    for url in &urls {
        flags.extend(["--redis-url", url.as_str()]);
    }

    // when
    let (code, stderr) = start_refused(dir.path(), &flags);

    // then: refused, naming the file and what to write there; the file is left as it was
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&epoch_file.display().to_string()),
        "{stderr}"
    );
    assert!(stderr.contains("does not hold an epoch"), "{stderr}");
    assert!(stderr.contains("epoch:token"), "{stderr}");
    assert_eq!(std::fs::read(&epoch_file).unwrap(), b"not a number\n");
}
