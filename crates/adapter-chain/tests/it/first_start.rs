//! The very first start of a data directory killed with SIGKILL: whatever moment the kill
//! lands, the next open of that directory succeeds (the chain file appears only once genesis is
//! committed), never "invalid data".
//!
//! The test re-executes this test binary, filtered to this one test, with [`CHILD_ROOT_ENV`]
//! set: in that mode the test is the child, which opens one fresh data directory after another
//! under the root, printing [`OPENING_MARKER`] before each, until it is killed.

#![allow(non_snake_case)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use adapter_chain::{AuthorityKey, ChainSpec, ChainStore};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::support::assert_chain_links;

/// Set in the child's environment to the directory it creates data directories under.
const CHILD_ROOT_ENV: &str = "ADAPTER_CHAIN_FIRST_START_CHILD_ROOT";

/// The test's name inside the `it` binary, to re-run exactly it in the child.
const TEST_NAME: &str =
    "first_start::open__when_the_first_start_is_killed_at_any_moment__then_the_next_open_succeeds";

/// What the child prints before each first start.
const OPENING_MARKER: &str = "adapter-chain-opening=";

/// Children killed, each at another moment of its first starts.
const KILLS: u32 = 20;

/// The first bytes of every redb database file, written last when redb creates one.
const REDB_MAGIC: &[u8] = b"redb";

/// Generous upper bound that only catches a hung child.
const HANG: Duration = Duration::from_secs(15);

fn spec() -> ChainSpec {
    ChainSpec::dev(AuthorityKey::dev().public_key())
}

#[test]
fn open__when_the_first_start_is_killed_at_any_moment__then_the_next_open_succeeds() {
    if let Some(root) = std::env::var_os(CHILD_ROOT_ENV) {
        first_start_until_killed(Path::new(&root));
        return;
    }

    // given / when: each child is killed after a different number of microseconds into one of
    // its first starts
    let root = tempfile::tempdir().unwrap();
    for kill_number in 0..KILLS {
        let child_root = root.path().join(format!("child-{kill_number}"));
        std::fs::create_dir(&child_root).unwrap();
        kill_during_a_first_start(
            &child_root,
            Duration::from_micros(u64::from(kill_number) * 150),
        );
    }

    // then: the chain file is either absent or a whole database, and every data directory any
    // child touched opens as the chain
    let mut opened = 0;
    for child_root in std::fs::read_dir(root.path()).unwrap() {
        for data_dir in std::fs::read_dir(child_root.unwrap().path()).unwrap() {
            let data_dir = data_dir.unwrap().path();
            let file = data_dir.join(adapter_chain::DATABASE_FILE_NAME);
            if let Ok(bytes) = std::fs::read(&file) {
                assert!(
                    bytes.starts_with(REDB_MAGIC),
                    "{} was left half-created ({} bytes)",
                    file.display(),
                    bytes.len()
                );
            }
            let store = ChainStore::open(spec(), &data_dir).unwrap_or_else(|error| {
                panic!(
                    "{} does not open after the kill: {error}",
                    data_dir.display()
                )
            });
            assert_eq!(assert_chain_links(&store).len(), 1);
            opened += 1;
        }
    }
    assert!(opened >= KILLS as usize);
}

/// Starts the child, waits until it starts its third first start, sleeps `delay` and kills it.
fn kill_during_a_first_start(root: &Path, delay: Duration) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([TEST_NAME, "--exact", "--nocapture", "--test-threads", "1"])
        .env(CHILD_ROOT_ENV, root)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let deadline = Instant::now() + HANG;
    let mut openings = 0;
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        if line.contains(OPENING_MARKER) {
            openings += 1;
            if openings == 3 {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the child did not start opening in time"
        );
    }
    std::thread::sleep(delay);
    let pid = Pid::from_raw(i32::try_from(child.id()).unwrap());
    let _ = kill(pid, Signal::SIGKILL);
    let _ = child.wait();
}

/// The child: first start after first start, each in a fresh data directory.
fn first_start_until_killed(root: &Path) {
    let started = Instant::now();
    let mut number: u64 = 0;
    while started.elapsed() < HANG {
        let data_dir = root.join(format!("data-{number}"));
        println!("{OPENING_MARKER}{number}");
        drop(ChainStore::open(spec(), &data_dir).unwrap());
        number += 1;
    }
}
