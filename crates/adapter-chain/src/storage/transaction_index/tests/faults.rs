//! The index file failing under a running store: its disk full, a panic inside redb. The index
//! is derived from the chain, so the store keeps committing, stays healthy, answers every
//! lookup from the chain meanwhile, and builds the index file again.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;
use redb::StorageBackend;
use redb::backends::FileBackend;

use super::*;
use crate::metrics::StorageMetrics;
use crate::storage::{BackendWrapper, OpenCheck, StorageHealth, StoreOptions};

/// Linux's errno for "No space left on device".
const ENOSPC: i32 = 28;

/// Generous upper bound that only catches a hang.
const HANG: Duration = Duration::from_secs(20);

/// Switches shared by a test and every backend the store opens for its index file.
#[derive(Debug, Clone, Default)]
struct IndexFaults {
    /// Writes and resizes fail with "No space left on device".
    full: Arc<AtomicBool>,
    /// Reads panic, as redb does on a page it cannot make sense of.
    reads_panic: Arc<AtomicBool>,
    /// How many writes the full disk refused.
    refused_writes: Arc<AtomicUsize>,
    /// How many reads panicked.
    panicked_reads: Arc<AtomicUsize>,
}

impl IndexFaults {
    fn wrapper(&self) -> BackendWrapper {
        let faults = self.clone();
        BackendWrapper::new(move |file| {
            Box::new(FaultyIndexBackend {
                file,
                faults: faults.clone(),
            })
        })
    }

    fn refuse(&self) -> io::Result<()> {
        if self.full.load(Ordering::SeqCst) {
            self.refused_writes.fetch_add(1, Ordering::SeqCst);
            return Err(io::Error::from_raw_os_error(ENOSPC));
        }
        Ok(())
    }
}

/// The real file backend of the index file, failing as its [`IndexFaults`] say.
#[derive(Debug)]
struct FaultyIndexBackend {
    file: FileBackend,
    faults: IndexFaults,
}

impl StorageBackend for FaultyIndexBackend {
    fn len(&self) -> io::Result<u64> {
        self.file.len()
    }

    fn read(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        if self.faults.reads_panic.load(Ordering::SeqCst) {
            self.faults.panicked_reads.fetch_add(1, Ordering::SeqCst);
            panic!("injected: a read of the index file at {offset} panicked");
        }
        self.file.read(offset, len)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.faults.refuse()?;
        self.file.set_len(len)
    }

    fn sync_data(&self, eventual: bool) -> io::Result<()> {
        self.file.sync_data(eventual)
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.faults.refuse()?;
        self.file.write(offset, data)
    }
}

impl Chain {
    fn open_with_index_faults(&self, faults: &IndexFaults, open_check: OpenCheck) -> ChainStore {
        self.open_with_index_faults_counted(faults, open_check, StorageMetrics::default())
    }

    fn open_with_index_faults_counted(
        &self,
        faults: &IndexFaults,
        open_check: OpenCheck,
        metrics: StorageMetrics,
    ) -> ChainStore {
        ChainStore::open_with_index_backend(
            self.spec,
            self.dir.path(),
            StoreOptions {
                open_check,
                metrics,
                ..StoreOptions::default()
            },
            faults.wrapper(),
        )
        .unwrap()
    }
}

/// The value of the sample `name` in `registry`'s text exposition.
fn sample(registry: &Registry, name: &str) -> Option<String> {
    let mut text = String::new();
    encode(&mut text, registry).unwrap();
    text.lines().find_map(|line| {
        line.strip_prefix(name)?
            .strip_prefix(' ')
            .map(str::to_owned)
    })
}

/// Waits (bounded by [`HANG`]) until `done` holds; whether it did.
fn wait_until(mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + HANG;
    while !done() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

/// Every transaction of `blocks` with the height the store answers for it.
fn answered_heights(
    store: &ChainStore,
    blocks: &[SealedBlock],
) -> Vec<Result<Option<BlockHeight>, String>> {
    blocks
        .iter()
        .flat_map(|block| &block.block.transactions)
        .map(|transaction| {
            store
                .transaction_height(&transaction.id())
                .map_err(|error| error.to_string())
        })
        .collect()
}

/// Every transaction of `blocks` with its block's height.
fn expected_heights(blocks: &[SealedBlock]) -> Vec<Result<Option<BlockHeight>, String>> {
    blocks
        .iter()
        .flat_map(|block| {
            block
                .block
                .transactions
                .iter()
                .map(|_| Ok(Some(block.height())))
        })
        .collect()
}

/// A block on the head repeating a committed transaction (`repeated`) beside a new one.
fn repeating_block(chain: &Chain, store: &ChainStore, repeated: &[u8]) -> SealedBlock {
    let head = store.head().unwrap().block.header;
    child_block(
        &chain.signer,
        &head,
        &[b"never committed", repeated],
        |_| {},
    )
}

/// Asserts that `result` refused a block for repeating a committed transaction.
fn assert_refused_as_repeat(result: &Result<(), ImportError>) {
    assert!(
        matches!(result, Err(ImportError::DuplicateTransaction { .. })),
        "{result:?}"
    );
}

/// Asserts that the store is healthy and finds every transaction of `blocks`, and that once
/// closed it leaves an index file with `file`'s watermark and number of entries.
fn assert_healthy_and_complete(
    chain: &Chain,
    store: ChainStore,
    blocks: &[SealedBlock],
    file: (BlockHeight, u64),
) {
    assert_eq!(*store.health().borrow(), StorageHealth::Healthy);
    assert_every_transaction_found(&store, blocks);
    drop(store);
    assert_eq!(read_index_file(&chain.index_file()), file);
}

#[test]
fn commit__when_the_index_file_disk_is_full__then_the_store_stays_healthy_and_builds_the_index_again()
 {
    // given: a store whose index file holds its first blocks
    let chain = Chain::new();
    let faults = IndexFaults::default();
    let mut registry = Registry::default();
    let metrics = StorageMetrics::register(&mut registry);
    let store = chain.open_with_index_faults_counted(&faults, OpenCheck::Full, metrics);
    let health = store.health();
    let mut blocks = chain.commit(&store, &[&[b"a", b"b"], &[b"c"]]);
    assert!(wait_until(|| store.shared.index.holds_every_block()));

    // when: the index file's disk fills while blocks are committed
    faults.full.store(true, Ordering::SeqCst);
    let rounds: [&[&[u8]]; 2] = [&[b"d"], &[b"e", b"f"]];
    let during_fault = rounds
        .into_iter()
        .map(|transactions| {
            let head = store.head().unwrap().block.header;
            let block = child_block(&chain.signer, &head, transactions, |_| {});
            store.verify(&block)?;
            store.commit(&block)?;
            Ok(block)
        })
        .collect::<Result<Vec<_>, ImportError>>();
    let refused = wait_until(|| faults.refused_writes.load(Ordering::SeqCst) > 0);
    blocks.extend(during_fault.unwrap_or_default());
    let health_while_full = health.borrow().clone();
    let answered_while_full = answered_heights(&store, &blocks);
    let repeat = repeating_block(&chain, &store, b"c");
    let repeat_while_full = store.verify(&repeat);
    faults.full.store(false, Ordering::SeqCst);
    let rebuilt = wait_until(|| store.shared.index.holds_every_block());

    // then
    assert!(
        refused,
        "the index file was never written while the disk was full"
    );
    assert_eq!(
        blocks.len(),
        4,
        "commits failed while the index file's disk was full"
    );
    assert_eq!(health_while_full, StorageHealth::Healthy);
    assert_eq!(answered_while_full, expected_heights(&blocks));
    assert_refused_as_repeat(&repeat_while_full);
    assert!(
        rebuilt,
        "the index file was not built again once the disk had room"
    );
    assert_eq!(
        sample(&registry, "poa_chain_transaction_index_failures_total").as_deref(),
        Some("1")
    );
    assert_eq!(
        sample(&registry, "poa_chain_storage_healthy").as_deref(),
        Some("1")
    );
    assert_healthy_and_complete(&chain, store, &blocks, (BlockHeight::new(4), 6));
}

#[test]
fn transaction_height__when_redb_panics_reading_the_index_file__then_answers_from_the_chain_and_builds_the_index_again()
 {
    // given: a reopened store, whose index file's pages are not cached yet
    let chain = Chain::new();
    let mut blocks = chain.commit_and_close(&[&[b"a", b"b"], &[b"c"], &[b"d"]]);
    let faults = IndexFaults::default();
    let store = chain.open_with_index_faults(&faults, OpenCheck::Quick);
    let health = store.health();

    // when: every read of the index file panics inside redb
    faults.reads_panic.store(true, Ordering::SeqCst);
    let answered_while_panicking = answered_heights(&store, &blocks);
    let panicked = faults.panicked_reads.load(Ordering::SeqCst);
    let repeat_while_panicking = store.verify(&repeating_block(&chain, &store, b"d"));
    let committed_while_panicking = chain.commit(&store, &[&[b"e"]]);
    let health_while_panicking = health.borrow().clone();
    faults.reads_panic.store(false, Ordering::SeqCst);
    let rebuilt = wait_until(|| store.shared.index.holds_every_block());
    blocks.extend(committed_while_panicking);

    // then
    assert!(panicked > 0, "no read of the index file panicked");
    assert_eq!(answered_while_panicking, expected_heights(&blocks[..3]));
    assert_refused_as_repeat(&repeat_while_panicking);
    assert_eq!(health_while_panicking, StorageHealth::Healthy);
    assert!(rebuilt, "the index file was not built again");
    assert_healthy_and_complete(&chain, store, &blocks, (BlockHeight::new(4), 5));
}

#[test]
fn transaction_height__when_the_index_file_is_overwritten_while_open__then_answers_from_the_chain_and_builds_it_again()
 {
    // given: a reopened store over a few hundred transactions, whose index pages are not cached
    let chain = Chain::new();
    let transactions: Vec<[u8; 4]> = (0..200u32).map(u32::to_be_bytes).collect();
    let transactions: Vec<&[u8]> = transactions.iter().map(<[u8; 4]>::as_slice).collect();
    let rounds: Vec<&[&[u8]]> = transactions.chunks(4).collect();
    let mut blocks = chain.commit_and_close(&rounds);
    let store = chain.open_with_index_faults(&IndexFaults::default(), OpenCheck::Quick);

    // when: everything past the file's header is overwritten on disk (a page type redb does not
    // know, on which it panics)
    let mut bytes = std::fs::read(chain.index_file()).unwrap();
    bytes[4096..].fill(0xff);
    std::fs::write(chain.index_file(), bytes).unwrap();
    let answered_after_damage = answered_heights(&store, &blocks);
    let repeat_after_damage = store.verify(&repeating_block(&chain, &store, &0u32.to_be_bytes()));
    let committed_after_damage = chain.commit(&store, &[&[b"after"]]);
    let rebuilt = wait_until(|| store.shared.index.holds_every_block());
    blocks.extend(committed_after_damage);

    // then
    assert_eq!(
        answered_after_damage,
        expected_heights(&blocks[..blocks.len() - 1])
    );
    assert_refused_as_repeat(&repeat_after_damage);
    assert!(rebuilt, "the index file was not built again");
    assert_healthy_and_complete(&chain, store, &blocks, (BlockHeight::new(51), 201));
}
