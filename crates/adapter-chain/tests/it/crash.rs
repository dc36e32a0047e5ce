//! Crash safety: a process committing blocks is killed with SIGKILL; every height it reported
//! committed must be in the store it leaves behind, that store must open and link cleanly, and
//! it must find every transaction of its chain (the transaction index file, written beside the
//! commits, catches up when the store opens). With deferred durability the same holds for every
//! fsynced height (every n-th commit).
//!
//! Each test re-executes this test binary, filtered to that one test, with
//! [`CHILD_DATA_DIR_ENV`] set: in that mode the test is the child that commits blocks in a loop
//! and prints [`COMMITTED_MARKER`] and the height after each fsynced commit returns.

#![allow(non_snake_case)]

use std::io::{BufRead, BufReader};
use std::num::NonZeroU32;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use adapter_chain::{AuthorityKey, ChainSpec, ChainStore, CommitDurability, Ed25519BlockSigner};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use poa_ports::BlockHeight;

use crate::support::{Node, assert_chain_links, assert_transactions_indexed};

/// Set in the child's environment to the data directory it commits into.
const CHILD_DATA_DIR_ENV: &str = "ADAPTER_CHAIN_CRASH_CHILD_DATA_DIR";

/// The tests' names inside the `it` binary, to re-run exactly one in the child.
const IMMEDIATE_TEST_NAME: &str =
    "crash::commit__when_process_is_killed_mid_stream__then_every_reported_height_survives";
const DEFERRED_TEST_NAME: &str =
    "crash::commit__when_deferred_process_is_killed_mid_stream__then_every_fsynced_height_survives";

/// Commits per fsync of the deferred child.
const FSYNC_EVERY: u32 = 4;

/// What the child prints before each committed height. libtest may print its own text earlier on
/// the same line, so the parent looks for it anywhere in a line.
const COMMITTED_MARKER: &str = "adapter-chain-committed-height=";

/// How many commits the parent waits to see before killing the child.
const HEIGHTS_BEFORE_KILL: usize = 15;

/// Generous upper bound that only catches a hung child.
const HANG: Duration = Duration::from_secs(15);

/// How long an orphaned child keeps committing before it stops on its own.
const CHILD_LIFETIME: Duration = Duration::from_secs(60);

/// Both processes use the dev key, so they agree on the spec without sharing anything.
fn spec_and_signer() -> (ChainSpec, Ed25519BlockSigner) {
    let key = AuthorityKey::dev();
    (
        ChainSpec::dev(key.public_key()),
        Ed25519BlockSigner::new(key),
    )
}

/// Kills the child when the test ends early, so a failed assertion leaks no process.
struct KillOnDrop(Option<Child>);

impl KillOnDrop {
    /// Sends SIGKILL and reaps the child, once: after reaping, its pid may belong to another
    /// process.
    fn sigkill(&mut self) {
        if let Some(mut child) = self.0.take() {
            let pid = Pid::from_raw(i32::try_from(child.id()).unwrap());
            // The child may have stopped on its own already; the wait below reaps it either way.
            let _ = kill(pid, Signal::SIGKILL);
            let _ = child.wait();
        }
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        self.sigkill();
    }
}

#[test]
fn commit__when_process_is_killed_mid_stream__then_every_reported_height_survives() {
    if let Some(data_dir) = std::env::var_os(CHILD_DATA_DIR_ENV) {
        commit_blocks_until_killed(Path::new(&data_dir), CommitDurability::Immediate);
        return;
    }

    // given / when
    let (dir, committed) = kill_child_after_reports(IMMEDIATE_TEST_NAME);

    // then
    let (spec, _) = spec_and_signer();
    let store = ChainStore::open(spec, dir.path()).expect("store opens cleanly after SIGKILL");
    let chain = assert_chain_links(&store);
    assert_transactions_indexed(&store, &chain);
    for height in &committed {
        assert!(
            store.block_at(BlockHeight::new(*height)).unwrap().is_some(),
            "reported height {height} is missing; head is {}",
            chain.len() - 1
        );
    }
    assert_eq!(
        committed,
        (1..=committed.len() as u64).collect::<Vec<_>>(),
        "the child reports every height once, in order"
    );
}

#[test]
fn commit__when_deferred_process_is_killed_mid_stream__then_every_fsynced_height_survives() {
    if let Some(data_dir) = std::env::var_os(CHILD_DATA_DIR_ENV) {
        commit_blocks_until_killed(Path::new(&data_dir), deferred());
        return;
    }

    // given / when
    let (dir, fsynced) = kill_child_after_reports(DEFERRED_TEST_NAME);

    // then
    let (spec, _) = spec_and_signer();
    let store = ChainStore::open(spec, dir.path()).expect("store opens cleanly after SIGKILL");
    let chain = assert_chain_links(&store);
    assert_transactions_indexed(&store, &chain);
    let last_fsynced = *fsynced.last().unwrap();
    assert!(
        chain.len() as u64 > last_fsynced,
        "fsynced height {last_fsynced} is missing; head is {}",
        chain.len() - 1
    );
    assert_eq!(
        fsynced,
        (1..=fsynced.len() as u64)
            .map(|round| round * u64::from(FSYNC_EVERY))
            .collect::<Vec<_>>(),
        "the child reports every fsynced height once, in order"
    );
}

/// The durability of the deferred child: one fsync every [`FSYNC_EVERY`] commits.
fn deferred() -> CommitDurability {
    CommitDurability::Deferred {
        fsync_every: NonZeroU32::new(FSYNC_EVERY).unwrap(),
    }
}

/// Starts this binary as the child of `test_name`, waits for [`HEIGHTS_BEFORE_KILL`] reported
/// heights, kills it with SIGKILL and returns its data directory and every height it reported.
fn kill_child_after_reports(test_name: &str) -> (tempfile::TempDir, Vec<u64>) {
    let dir = tempfile::tempdir().unwrap();
    let mut spawned = Command::new(std::env::current_exe().unwrap())
        .args([test_name, "--exact", "--nocapture", "--test-threads", "1"])
        .env(CHILD_DATA_DIR_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = spawned.stdout.take().unwrap();
    let mut child = KillOnDrop(Some(spawned));
    let (heights, reported) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some((_, height)) = line.split_once(COMMITTED_MARKER) {
                let _ = heights.send(height.trim().parse::<u64>().unwrap());
            }
        }
    });
    let mut committed = Vec::new();
    while committed.len() < HEIGHTS_BEFORE_KILL {
        let height = reported
            .recv_timeout(HANG)
            .unwrap_or_else(|_| panic!("child reported only {committed:?} in time"));
        committed.push(height);
    }
    child.sigkill();
    reader.join().unwrap();
    committed.extend(reported.try_iter());
    (dir, committed)
}

/// The child: one leader cycle after another, each with a transaction, printing each committed
/// height only after `commit` returned and only if that commit was fsynced (every one with
/// [`CommitDurability::Immediate`], every n-th with [`CommitDurability::Deferred`]).
fn commit_blocks_until_killed(data_dir: &Path, durability: CommitDurability) {
    let fsync_every = match durability {
        CommitDurability::Deferred { fsync_every } => u64::from(fsync_every.get()),
        CommitDurability::Immediate => 1,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (spec, signer) = spec_and_signer();
        let node = Node::open_with_durability(spec, data_dir, durability);
        let started = Instant::now();
        let mut round: u64 = 0;
        while started.elapsed() < CHILD_LIFETIME {
            node.submit(&[&round.to_be_bytes()]);
            let block = node.produce_and_commit(&signer).await;
            if block.height().get() % fsync_every == 0 {
                println!("{COMMITTED_MARKER}{}", block.height());
            }
            round += 1;
        }
    });
}
