//! The polling helpers: they return at the first poll that holds, or after the deadline.

#![allow(non_snake_case)]

use std::cell::Cell;
use std::time::{Duration, Instant};

use poa_test_support::{POLL_INTERVAL, wait_for, wait_for_async};

#[test]
fn wait_for__when_predicate_becomes_true__then_returns_true_at_that_poll() {
    // given
    let calls = Cell::new(0);

    // when
    let satisfied = wait_for(Duration::from_secs(5), || {
        calls.set(calls.get() + 1);
        calls.get() == 3
    });

    // then
    assert!(satisfied);
    assert_eq!(calls.get(), 3);
}

#[test]
fn wait_for__when_predicate_stays_false__then_returns_false_once_the_deadline_passed() {
    // given
    let deadline = Duration::from_millis(100);
    let started = Instant::now();

    // when
    let satisfied = wait_for(deadline, || false);

    // then
    assert!(!satisfied);
    assert!(started.elapsed() >= deadline);
}

#[tokio::test]
async fn wait_for_async__when_predicate_becomes_true__then_polls_at_the_interval() {
    // given
    let calls = Cell::new(0);
    let started = Instant::now();

    // when
    let satisfied = wait_for_async(Duration::from_secs(5), || {
        calls.set(calls.get() + 1);
        let done = calls.get() == 3;
        async move { done }
    })
    .await;

    // then
    assert!(satisfied);
    assert_eq!(calls.get(), 3);
    assert!(started.elapsed() >= 2 * POLL_INTERVAL);
}

#[tokio::test]
async fn wait_for_async__when_predicate_stays_false__then_returns_false_once_the_deadline_passed() {
    // given
    let deadline = Duration::from_millis(100);
    let started = Instant::now();

    // when
    let satisfied = wait_for_async(deadline, || async { false }).await;

    // then
    assert!(!satisfied);
    assert!(started.elapsed() >= deadline);
}
