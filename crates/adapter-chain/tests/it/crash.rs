//! Crash safety: a process committing blocks is killed with SIGKILL; every height it reported
//! committed must be in the store it leaves behind, and that store must open and link cleanly.
//!
//! The test re-executes this test binary, filtered to this one test, with
//! [`CHILD_DATA_DIR_ENV`] set: in that mode the test is the child that commits blocks in a loop
//! and prints [`COMMITTED_MARKER`] and the height after each commit returns.

#![allow(non_snake_case)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use adapter_chain::{AuthorityKey, ChainSpec, ChainStore, Ed25519BlockSigner};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use poa_ports::BlockHeight;

use crate::support::{Node, assert_chain_links};

/// Set in the child's environment to the data directory it commits into.
const CHILD_DATA_DIR_ENV: &str = "ADAPTER_CHAIN_CRASH_CHILD_DATA_DIR";

/// This test's name inside the `it` binary, to re-run exactly it in the child.
const TEST_NAME: &str =
    "crash::commit__when_process_is_killed_mid_stream__then_every_reported_height_survives";

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
        commit_blocks_until_killed(Path::new(&data_dir));
        return;
    }

    // given
    let dir = tempfile::tempdir().unwrap();
    let mut spawned = Command::new(std::env::current_exe().unwrap())
        .args([TEST_NAME, "--exact", "--nocapture", "--test-threads", "1"])
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

    // when
    child.sigkill();
    reader.join().unwrap();
    committed.extend(reported.try_iter());

    // then
    let (spec, _) = spec_and_signer();
    let store = ChainStore::open(spec, dir.path()).expect("store opens cleanly after SIGKILL");
    let chain = assert_chain_links(&store);
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

/// The child: one leader cycle after another, each with a transaction, printing each committed
/// height only after `commit` returned (so only after the fsync).
fn commit_blocks_until_killed(data_dir: &Path) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (spec, signer) = spec_and_signer();
        let node = Node::open(spec, data_dir);
        let started = Instant::now();
        let mut round: u64 = 0;
        while started.elapsed() < CHILD_LIFETIME {
            node.submit(&[&round.to_be_bytes()]);
            let block = node.produce_and_commit(&signer).await;
            println!("{COMMITTED_MARKER}{}", block.height());
            round += 1;
        }
    });
}
