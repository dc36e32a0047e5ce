//! The runtime's blocking pool under a burst: requests that each read the chain database wait
//! for a blocking thread past the ceiling instead of adding threads, and are all answered.

use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

use crate::support::Node;

/// The most blocking threads a `poa-node` process runs (`docs/operations.md`, 9.6).
const MAX_BLOCKING_THREADS: u64 = 64;

/// Threads of the chain store's own: the transaction index's writer.
const STORE_THREADS: u64 = 1;

/// Clients reading at once: three times the ceiling.
const CLIENTS: usize = 192;

/// Transactions a little under the pool's 64 KiB limit: 15 of them fill most of a block's
/// 1 MiB.
const TRANSACTION_BYTES: usize = 60 * 1024;

#[test]
fn blocking_threads__when_many_clients_read_a_large_block_at_once__then_all_are_answered_within_the_thread_ceiling()
 {
    // given: a block of about 900 KiB, which every read decodes and checks on a blocking thread
    // (long enough for the reads to overlap), and the process's thread count before the burst
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), &["--manual"]);
    for index in 0..15_u8 {
        let (status, answer) = node.post("/transactions", &vec![index; TRANSACTION_BYTES]);
        assert_eq!(status, 202, "{answer}");
    }
    let (status, answer) = node.post_admin("/admin/produce");
    assert_eq!(status, 200, "{answer}");
    let (_, block) = node.get("/blocks/1");
    assert_eq!(block["transaction_count"], 15, "{block}");
    let most_threads = AtomicU64::new(node.proc_status("Threads"));
    let burst_over = AtomicBool::new(false);
    let start = Barrier::new(CLIENTS);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(120)))
        .http_status_as_error(false)
        .build()
        .into();

    // when: every client asks for the block at the same moment, while a sampler keeps the
    // largest thread count it reads
    let answers: Vec<Result<u16, String>> = thread::scope(|scope| {
        scope.spawn(|| {
            while !burst_over.load(Ordering::Acquire) {
                most_threads.fetch_max(node.proc_status("Threads"), Ordering::AcqRel);
                thread::sleep(Duration::from_millis(1));
            }
        });
        let clients: Vec<_> = (0..CLIENTS)
            .map(|_| {
                scope.spawn(|| {
                    start.wait();
                    agent
                        .get(&node.url("/blocks/1"))
                        .call()
                        .map(|answer| answer.status().as_u16())
                        .map_err(|error| error.to_string())
                })
            })
            .collect();
        let answers = clients
            .into_iter()
            .map(|client| client.join().unwrap_or_else(|_| Err("panicked".to_owned())))
            .collect();
        burst_over.store(true, Ordering::Release);
        answers
    });

    // then: every read is answered, and the process never ran more than its main thread, one
    // worker per core, the store's own threads and the ceiling of blocking threads
    let workers = thread::available_parallelism().map_or(1, usize::from);
    let ceiling = 1 + u64::try_from(workers).unwrap() + STORE_THREADS + MAX_BLOCKING_THREADS;
    assert!(
        answers.iter().all(|answer| *answer == Ok(200)),
        "{answers:?}"
    );
    let most = most_threads.load(Ordering::Acquire);
    assert!(
        most <= ceiling,
        "the node ran {most} threads during the burst, over {ceiling}"
    );
}
