//! A failing disk behind the store: a fault-injecting redb backend (a full disk, a failing
//! `fsync`) wraps the real file. The store closes its database on an I/O error, reopens it once
//! the disk takes writes again, and gives up for good (without reopening) when the disk stays
//! full past its recovery window or an `fsync` fails.

#![allow(non_snake_case)]

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use adapter_chain::{
    BackendWrapper, ChainStore, RecoveryPolicy, StorageError, StorageHealth, StoreOptions,
};
use poa_ports::{BlockHeight, ImportError};
use redb::StorageBackend;
use redb::backends::FileBackend;

use crate::support::{Node, assert_chain_links, fresh_authority};

/// Linux's errno for "No space left on device".
const ENOSPC: i32 = 28;
/// Linux's errno for "Input/output error".
const EIO: i32 = 5;

/// Generous upper bound that only catches a hang.
const HANG: Duration = Duration::from_secs(10);

/// Switches shared by the test and every backend the store opens.
#[derive(Debug, Clone, Default)]
struct DiskFaults {
    full: Arc<AtomicBool>,
    fsync_fails: Arc<AtomicBool>,
}

impl DiskFaults {
    fn wrapper(&self) -> BackendWrapper {
        let faults = self.clone();
        BackendWrapper::new(move |file| {
            Box::new(FaultyBackend {
                file,
                faults: faults.clone(),
            })
        })
    }
}

/// The real file backend, failing writes while the disk is "full" and syncs while they "fail".
#[derive(Debug)]
struct FaultyBackend {
    file: FileBackend,
    faults: DiskFaults,
}

impl StorageBackend for FaultyBackend {
    fn len(&self) -> io::Result<u64> {
        self.file.len()
    }

    fn read(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        self.file.read(offset, len)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    fn sync_data(&self, eventual: bool) -> io::Result<()> {
        if self.faults.fsync_fails.load(Ordering::SeqCst) {
            return Err(io::Error::from_raw_os_error(EIO));
        }
        self.file.sync_data(eventual)
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        if self.faults.full.load(Ordering::SeqCst) {
            return Err(io::Error::from_raw_os_error(ENOSPC));
        }
        self.file.write(offset, data)
    }
}

fn options(faults: &DiskFaults, recovery: RecoveryPolicy) -> StoreOptions {
    StoreOptions {
        backend: faults.wrapper(),
        recovery,
        ..StoreOptions::default()
    }
}

/// The storage error's message (it names the file, the operation and the cause).
fn storage_message(result: Result<(), ImportError>) -> String {
    match result {
        Err(ImportError::Storage(error)) => error.to_string(),
        other => panic!("expected a storage error, got {other:?}"),
    }
}

#[tokio::test]
async fn commit__when_the_disk_fills_and_is_freed__then_the_store_reopens_and_commits_again() {
    // given
    let dir = tempfile::tempdir().unwrap();
    let (spec, signer) = fresh_authority();
    let faults = DiskFaults::default();
    let recovery = RecoveryPolicy {
        retry_every: Duration::from_millis(50),
        give_up_after: Duration::from_secs(60),
    };
    let store = ChainStore::open_with(spec, dir.path(), options(&faults, recovery)).unwrap();
    let node = Node::from_store(store.clone());
    node.produce_and_commit(&signer).await;
    let health = store.health();

    // when: the disk is full for one commit and its retries
    faults.full.store(true, Ordering::SeqCst);
    let block = node.produce_sealed(&signer).await;
    let failed = storage_message(store.commit(&block));
    let during = health.borrow().clone();
    let retried = store.commit(&block);
    faults.full.store(false, Ordering::SeqCst);
    let deadline = Instant::now() + HANG;
    let recovered = loop {
        match store.commit(&block) {
            Ok(()) => break true,
            Err(_) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(_) => break false,
        }
    };

    // then
    assert!(failed.contains("No space left on device"), "{failed}");
    assert!(
        failed.contains(&store.path().display().to_string()),
        "{failed}"
    );
    assert!(
        matches!(during, StorageHealth::Recovering { .. }),
        "{during:?}"
    );
    assert!(retried.is_err(), "still full: {retried:?}");
    assert!(
        recovered,
        "the store never took a commit after the disk was freed"
    );
    assert_eq!(*health.borrow(), StorageHealth::Healthy);
    let next = node.produce_and_commit(&signer).await;
    assert_eq!(next.height(), BlockHeight::new(3));
    assert_eq!(assert_chain_links(&store).len(), 4);
}

#[tokio::test]
async fn commit__when_the_disk_stays_full_past_the_recovery_window__then_the_store_fails_for_good()
{
    // given
    let dir = tempfile::tempdir().unwrap();
    let (spec, signer) = fresh_authority();
    let faults = DiskFaults::default();
    let recovery = RecoveryPolicy {
        retry_every: Duration::from_millis(10),
        give_up_after: Duration::from_millis(200),
    };
    let store = ChainStore::open_with(spec, dir.path(), options(&faults, recovery)).unwrap();
    let node = Node::from_store(store.clone());
    let block = node.produce_sealed(&signer).await;

    // when
    faults.full.store(true, Ordering::SeqCst);
    let deadline = Instant::now() + HANG;
    while !store.health().borrow().is_failed() && Instant::now() < deadline {
        assert!(store.commit(&block).is_err(), "the disk is full");
        std::thread::sleep(Duration::from_millis(5));
    }
    faults.full.store(false, Ordering::SeqCst);
    std::thread::sleep(recovery.retry_every * 3);

    // then
    let health = store.health().borrow().clone();
    let StorageHealth::Failed { cause } = &health else {
        panic!("expected the store to give up, got {health:?}");
    };
    assert!(cause.contains("No space left on device"), "{cause}");
    assert!(cause.contains("restart"), "{cause}");
    let after = store.head();
    assert!(
        matches!(after, Err(StorageError::Failed { .. })),
        "a failed store stays failed: {after:?}"
    );
}

#[tokio::test]
async fn commit__when_fsync_fails__then_the_store_fails_for_good_without_reopening() {
    // given
    let dir = tempfile::tempdir().unwrap();
    let (spec, signer) = fresh_authority();
    let faults = DiskFaults::default();
    let store = ChainStore::open_with(
        spec,
        dir.path(),
        options(&faults, RecoveryPolicy::default()),
    )
    .unwrap();
    let node = Node::from_store(store.clone());
    let block = node.produce_sealed(&signer).await;

    // when
    faults.fsync_fails.store(true, Ordering::SeqCst);
    let failed = storage_message(store.commit(&block));
    faults.fsync_fails.store(false, Ordering::SeqCst);

    // then
    assert!(failed.contains("fsync"), "{failed}");
    assert!(failed.contains("Input/output error"), "{failed}");
    assert!(store.health().borrow().is_failed());
    assert!(matches!(store.head(), Err(StorageError::Failed { .. })));
}
