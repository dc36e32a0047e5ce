//! Behaviour of the transaction pool: limits, FIFO selection, removal on commit, wake-ups.

use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::clock::SystemClock;

/// Generous upper bound that only catches a hang.
const HANG: Duration = Duration::from_secs(5);

fn transaction(bytes: &[u8]) -> Transaction {
    Transaction::new(bytes.to_vec())
}

fn small_pool() -> MemoryTransactionPool {
    MemoryTransactionPool::new(PoolLimits {
        max_transactions: 3,
        max_transaction_bytes: 4,
        max_total_bytes: 10,
        max_age: Duration::from_secs(60),
    })
}

#[test]
fn submit__when_transaction_is_acceptable__then_returns_its_id_and_counts_it() {
    // given
    let pool = small_pool();

    // when
    let id = pool.submit(transaction(b"abc")).unwrap();

    // then
    assert_eq!(id, transaction(b"abc").id());
    assert_eq!(pool.pending_count(), 1);
    assert_eq!(pool.pending_bytes(), 3);
    assert!(pool.contains(&id));
}

#[test]
fn first_seen__when_pending_then_committed__then_tells_the_relayed_time_then_nothing() {
    // given
    let pool = small_pool();
    let now = SystemClock.now();
    let first_seen = Timestamp::from_unix_millis(now.as_unix_millis() - 5_000);
    let id = pool
        .submit_relayed(transaction(b"abc"), first_seen)
        .unwrap();

    // when
    let while_pending = pool.first_seen(&id);
    pool.remove_committed(&[id]);

    // then
    assert_eq!(while_pending, Some(first_seen));
    assert_eq!(pool.first_seen(&id), None);
    assert_eq!(pool.first_seen(&transaction(b"never").id()), None);
}

#[test]
fn submit__when_a_limit_is_broken__then_refuses_with_its_variant() {
    struct Case {
        name: &'static str,
        already: Vec<&'static [u8]>,
        submitted: &'static [u8],
        expected: PoolError,
    }
    let cases = [
        Case {
            name: "empty",
            already: vec![],
            submitted: b"",
            expected: PoolError::Empty,
        },
        Case {
            name: "too large",
            already: vec![],
            submitted: b"abcde",
            expected: PoolError::TooLarge { bytes: 5, limit: 4 },
        },
        Case {
            name: "duplicate",
            already: vec![b"ab"],
            submitted: b"ab",
            expected: PoolError::Duplicate,
        },
        Case {
            name: "count full",
            already: vec![b"a", b"b", b"c"],
            submitted: b"d",
            expected: PoolError::Full,
        },
        Case {
            name: "bytes full",
            already: vec![b"aaaa", b"bbbb"],
            submitted: b"ccc",
            expected: PoolError::Full,
        },
    ];
    for case in cases {
        // given
        let pool = small_pool();
        for bytes in case.already {
            pool.submit(transaction(bytes)).unwrap();
        }
        let pending = pool.pending_count();

        // when
        let result = pool.submit(transaction(case.submitted));

        // then
        assert_eq!(result, Err(case.expected), "case: {}", case.name);
        assert_eq!(pool.pending_count(), pending, "case: {}", case.name);
    }
}

#[test]
fn select__when_called__then_returns_oldest_first_without_removing() {
    // given
    let pool = small_pool();
    for bytes in [b"a", b"b", b"c"] {
        pool.submit(transaction(bytes)).unwrap();
    }

    // when
    let first = pool.select(2, 100);
    let second = pool.select(2, 100);

    // then
    assert_eq!(first, vec![transaction(b"a"), transaction(b"b")]);
    assert_eq!(second, first);
    assert_eq!(pool.pending_count(), 3);
}

#[test]
fn select__when_a_transaction_exceeds_the_remaining_bytes__then_passes_over_it() {
    // given
    let pool = small_pool();
    for bytes in [&b"aa"[..], b"bbbb", b"c"] {
        pool.submit(transaction(bytes)).unwrap();
    }

    // when
    let selected = pool.select(10, 4);

    // then
    assert_eq!(selected, vec![transaction(b"aa"), transaction(b"c")]);
}

#[test]
fn remove_committed__when_some_ids_are_pending__then_removes_only_those() {
    // given
    let pool = small_pool();
    let a = pool.submit(transaction(b"a")).unwrap();
    pool.submit(transaction(b"bb")).unwrap();
    let unknown = transaction(b"zz").id();

    // when
    let removed = pool.remove_committed(&[a, unknown]);

    // then
    assert_eq!(removed, 1);
    assert_eq!(pool.select(10, 100), vec![transaction(b"bb")]);
    assert_eq!(pool.pending_bytes(), 2);
    assert!(!pool.contains(&a));
}

#[test]
fn submit__when_removed_transaction_is_submitted_again__then_queues_it_last() {
    // given
    let pool = small_pool();
    let a = pool.submit(transaction(b"a")).unwrap();
    pool.submit(transaction(b"b")).unwrap();
    pool.remove_committed(&[a]);

    // when
    pool.submit(transaction(b"a")).unwrap();

    // then
    assert_eq!(
        pool.select(10, 100),
        vec![transaction(b"b"), transaction(b"a")]
    );
}

#[test]
fn standard__when_compared_with_block_limits__then_any_accepted_transaction_fits_a_block() {
    // given
    let pool = PoolLimits::standard();
    let block = crate::BlockLimits::standard();

    // then
    assert!(pool.max_transaction_bytes <= block.max_bytes);
    assert!(pool.max_transaction_bytes <= pool.max_total_bytes);
}

#[tokio::test]
async fn wait_for_pending__when_a_transaction_is_pending__then_resolves_at_once() {
    // given
    let pool = small_pool();
    pool.submit(transaction(b"a")).unwrap();

    // when
    let waited = tokio::time::timeout(HANG, pool.wait_for_pending()).await;

    // then
    assert!(waited.is_ok());
}

#[tokio::test]
async fn wait_for_pending__when_pool_is_empty__then_resolves_after_a_submit() {
    // given
    let pool = small_pool();
    let waiter = tokio::spawn({
        let pool = pool.clone();
        async move { pool.wait_for_pending().await }
    });
    tokio::task::yield_now().await;
    assert!(!waiter.is_finished());

    // when
    pool.submit(transaction(b"a")).unwrap();

    // then
    tokio::time::timeout(HANG, waiter).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_pending__when_submits_race_with_waiters__then_no_waiter_is_lost() {
    for round in 0..200u32 {
        // given
        let pool = small_pool();
        let waiter = tokio::spawn({
            let pool = pool.clone();
            async move { pool.wait_for_pending().await }
        });

        // when
        pool.submit(transaction(&round.to_be_bytes())).unwrap();

        // then
        tokio::time::timeout(HANG, waiter)
            .await
            .unwrap_or_else(|_| panic!("waiter lost in round {round}"))
            .unwrap();
    }
}

proptest! {
    #[test]
    fn select__for_any_pool_and_budget__then_respects_limits_and_arrival_order(
        sizes in proptest::collection::vec(1usize..40, 0..40),
        max_count in 0usize..20,
        max_bytes in 0usize..200,
    ) {
        let pool = MemoryTransactionPool::new(PoolLimits {
            max_transactions: 100,
            max_transaction_bytes: 40,
            max_total_bytes: 10_000,
            max_age: Duration::from_secs(60),
        });
        let mut submitted = Vec::new();
        for (index, size) in sizes.iter().enumerate() {
            let mut bytes = vec![0u8; *size];
            bytes[0] = u8::try_from(index).unwrap();
            let transaction = Transaction::new(bytes);
            if pool.submit(transaction.clone()).is_ok() {
                submitted.push(transaction);
            }
        }

        let selected = pool.select(max_count, max_bytes);

        prop_assert!(selected.len() <= max_count);
        let total: usize = selected.iter().map(|t| t.as_bytes().len()).sum();
        prop_assert!(total <= max_bytes);
        let mut remaining = submitted.iter();
        for transaction in &selected {
            prop_assert!(remaining.any(|t| t == transaction), "selection is not in arrival order");
        }
        prop_assert_eq!(pool.pending_count(), submitted.len());
        let pending_bytes: usize = submitted.iter().map(|t| t.as_bytes().len()).sum();
        prop_assert_eq!(pool.pending_bytes(), pending_bytes);
    }
}

fn at(millis: u64) -> Timestamp {
    Timestamp::from_unix_millis(millis)
}

#[test]
fn expire__when_transactions_are_older_than_the_max_age__then_drops_only_those() {
    // given: one transaction first seen 61 s before now, one 59 s before, by a peer's word
    let pool = small_pool();
    let now = SystemClock.now().as_unix_millis();
    pool.submit_relayed(transaction(b"old"), at(now - 61_000))
        .unwrap_err();
    pool.submit_relayed(transaction(b"new"), at(now - 59_000))
        .unwrap();
    pool.submit(transaction(b"now")).unwrap();

    // when
    let expired = pool.expire(at(now + 2_000));

    // then: the one past its age at now + 2 s is gone, with its bytes
    assert_eq!(expired, 1);
    assert!(!pool.contains(&transaction(b"new").id()));
    assert!(pool.contains(&transaction(b"now").id()));
    assert_eq!(pool.pending_bytes(), 3);
}

#[test]
fn submit_relayed__when_first_seen_is_already_past_the_max_age__then_refuses_it_as_expired() {
    // given
    let pool = small_pool();
    let now = SystemClock.now().as_unix_millis();

    // when
    let outcome = pool.submit_relayed(transaction(b"old"), at(now - 61_000));

    // then
    assert_eq!(outcome, Err(PoolError::Expired));
    assert_eq!(pool.pending_count(), 0);
}

#[test]
fn submit_relayed__when_first_seen_is_in_the_future__then_keeps_now_instead() {
    // given
    let pool = small_pool();
    let before = SystemClock.now();

    // when
    pool.submit_relayed(transaction(b"fast"), at(u64::MAX))
        .unwrap();

    // then
    let first_seen = pool.oldest_first_seen().unwrap();
    assert!(first_seen >= before && first_seen <= SystemClock.now());
}

#[test]
fn first_seen_by__when_some_are_younger_than_the_cutoff__then_returns_the_older_ones_with_their_times()
 {
    // given
    let pool = small_pool();
    let now = SystemClock.now().as_unix_millis();
    pool.submit_relayed(transaction(b"a"), at(now - 10_000))
        .unwrap();
    pool.submit(transaction(b"b")).unwrap();
    pool.submit_relayed(transaction(b"c"), at(now - 20_000))
        .unwrap();

    // when
    let old = pool.first_seen_by(at(now - 5_000), 10);

    // then: in arrival order, and the oldest is what the pool reports as oldest
    assert_eq!(
        old,
        vec![
            (transaction(b"a"), at(now - 10_000)),
            (transaction(b"c"), at(now - 20_000))
        ]
    );
    assert_eq!(pool.oldest_first_seen(), Some(at(now - 20_000)));
    assert_eq!(pool.first_seen_by(at(now - 5_000), 1).len(), 1);
}
