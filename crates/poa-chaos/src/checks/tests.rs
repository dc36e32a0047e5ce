//! Tests of the invariant checks, from hand-made timelines and chains.

#![allow(non_snake_case)]

use super::*;

fn sample(at_ms: u64, heights: &[Option<u64>], leader: Option<usize>, reachable: bool) -> Sample {
    Sample {
        at: Duration::from_millis(at_ms),
        heights: heights.to_vec(),
        leader,
        quorum_reachable: reachable,
    }
}

fn block(id: &str, transactions: &[&str]) -> BlockSummary {
    BlockSummary {
        id: id.to_owned(),
        transactions: transactions.iter().map(|t| (*t).to_owned()).collect(),
    }
}

#[test]
fn longest_stall__when_heights_stop_for_a_while__then_measures_that_gap() {
    // given
    let samples = [
        sample(0, &[Some(1)], Some(0), true),
        sample(100, &[Some(2)], Some(0), true),
        sample(1100, &[Some(2)], None, true),
        sample(2100, &[Some(2)], None, true),
        sample(2200, &[Some(3)], Some(0), true),
    ];

    // when
    let stall = longest_stall(&samples, Duration::ZERO, true);

    // then
    assert_eq!(stall.from, Duration::from_millis(100));
    assert_eq!(stall.length, Duration::from_millis(2000));
}

#[test]
fn longest_stall__when_no_quorum_was_reachable__then_that_time_is_not_counted() {
    // given
    let samples = [
        sample(0, &[Some(1)], Some(0), true),
        sample(1000, &[Some(1)], None, false),
        sample(2000, &[Some(1)], None, false),
        sample(2500, &[Some(1)], None, true),
        sample(2600, &[Some(2)], Some(0), true),
    ];

    // when
    let counted = longest_stall(&samples, Duration::ZERO, true);
    let total = longest_stall(&samples, Duration::ZERO, false);

    // then
    assert_eq!(counted.length, Duration::from_millis(500));
    assert_eq!(total.length, Duration::from_millis(2500));
}

#[test]
fn time_to_progress__when_the_height_grows_later__then_is_the_delay() {
    // given
    let samples = [
        sample(0, &[Some(5), None], Some(0), true),
        sample(500, &[Some(5), None], None, true),
        sample(900, &[None, Some(6)], Some(1), true),
    ];

    // when / then
    assert_eq!(
        time_to_progress(&samples, Duration::from_millis(100)),
        Some(Duration::from_millis(800))
    );
    assert_eq!(time_to_progress(&samples, Duration::from_millis(900)), None);
}

#[test]
fn time_to_new_leader__when_another_node_leads_and_produces__then_is_the_failover_time() {
    // given
    let samples = [
        sample(0, &[Some(5), Some(5)], Some(0), true),
        sample(300, &[None, Some(6)], None, true),
        sample(1200, &[None, Some(6)], Some(1), true),
        sample(1300, &[None, Some(7)], Some(1), true),
    ];

    // when / then
    assert_eq!(
        time_to_new_leader(&samples, Duration::from_millis(100), 0),
        Some(Duration::from_millis(1100))
    );
    assert_eq!(
        time_to_new_leader(&samples, Duration::from_millis(100), 1),
        None
    );
}

#[test]
fn leader_changes__when_leadership_moves_with_gaps__then_counts_each_new_leader() {
    // given
    let samples = [
        sample(0, &[Some(1)], Some(0), true),
        sample(100, &[Some(1)], None, true),
        sample(200, &[Some(1)], Some(0), true),
        sample(300, &[Some(1)], Some(2), true),
        sample(400, &[Some(1)], Some(1), true),
    ];

    // when
    let changes = leader_changes(&samples);

    // then
    assert_eq!(
        changes,
        vec![
            (Duration::from_millis(300), 2),
            (Duration::from_millis(400), 1)
        ]
    );
}

#[test]
fn no_fork__when_final_chains_differ_at_a_height__then_fails_naming_it() {
    // given
    let chains = vec![
        vec![block("a1", &[]), block("a2", &[])],
        vec![block("a1", &[]), block("b2", &[]), block("b3", &[])],
    ];

    // when
    let verdict = no_fork(&[], &chains);

    // then
    assert!(!verdict.passed);
    assert!(verdict.detail.contains("height 2"), "{}", verdict.detail);
}

#[test]
fn no_fork__when_chains_are_prefixes_of_each_other__then_holds() {
    // given
    let chains = vec![
        vec![block("a1", &[])],
        vec![block("a1", &[]), block("a2", &[])],
    ];

    // when / then
    assert!(no_fork(&[], &chains).passed);
}

#[test]
fn no_fork__when_a_conflict_was_sighted_during_the_run__then_fails() {
    // given
    let sighting = |id: &str, node| Sighting {
        block: block(id, &[]),
        node,
        at: Duration::from_secs(3),
    };
    let conflicts = [Conflict {
        height: 7,
        first: sighting("x", 0),
        second: sighting("y", 1),
    }];

    // when
    let verdict = no_fork(&conflicts, &[]);

    // then
    assert!(!verdict.passed);
    assert_eq!(verdict.at, Some(Duration::from_secs(3)));
}

#[test]
fn nothing_lost__when_a_sighted_block_is_missing_on_one_node__then_fails() {
    // given
    let mut sightings = BTreeMap::new();
    sightings.insert(
        2,
        Sighting {
            block: block("a2", &[]),
            node: 0,
            at: Duration::from_secs(1),
        },
    );
    let chains = vec![
        vec![block("a1", &[]), block("a2", &[])],
        vec![block("a1", &[])],
    ];

    // when
    let verdict = nothing_lost(&sightings, &chains, 2);

    // then
    assert!(!verdict.passed);
    assert!(
        verdict.detail.contains("missing on n1"),
        "{}",
        verdict.detail
    );
}

#[test]
fn nothing_lost__when_every_node_holds_every_sighted_block__then_holds() {
    // given
    let mut sightings = BTreeMap::new();
    sightings.insert(
        1,
        Sighting {
            block: block("a1", &[]),
            node: 1,
            at: Duration::from_secs(1),
        },
    );
    let chains = vec![
        vec![block("a1", &[])],
        vec![block("a1", &[]), block("a2", &[])],
    ];

    // when / then
    assert!(nothing_lost(&sightings, &chains, 1).passed);
}

#[test]
fn nothing_lost__when_a_block_above_the_settled_height_is_not_imported_yet__then_holds() {
    // given
    let mut sightings = BTreeMap::new();
    sightings.insert(
        2,
        Sighting {
            block: block("a2", &[]),
            node: 0,
            at: Duration::from_secs(1),
        },
    );
    let chains = vec![
        vec![block("a1", &[]), block("a2", &[])],
        vec![block("a1", &[])],
    ];

    // when / then
    assert!(nothing_lost(&sightings, &chains, 1).passed);
}

#[test]
fn nothing_lost__when_a_block_above_the_settled_height_was_replaced__then_fails() {
    // given
    let mut sightings = BTreeMap::new();
    sightings.insert(
        2,
        Sighting {
            block: block("a2", &[]),
            node: 0,
            at: Duration::from_secs(1),
        },
    );
    let chains = vec![
        vec![block("a1", &[]), block("a2", &[])],
        vec![block("a1", &[]), block("b2", &[])],
    ];

    // when / then
    assert!(!nothing_lost(&sightings, &chains, 1).passed);
}

#[test]
fn no_duplicate_transaction__when_a_transaction_is_in_two_blocks__then_fails() {
    // given
    let chain = vec![
        block("a1", &["t1", "t2"]),
        block("a2", &["t3"]),
        block("a3", &["t2"]),
    ];

    // when
    let verdict = no_duplicate_transaction(&chain);

    // then
    assert!(!verdict.passed);
    assert!(
        verdict.detail.contains("heights 1 and 3"),
        "{}",
        verdict.detail
    );
}

#[test]
fn no_duplicate_transaction__when_each_transaction_is_once__then_holds() {
    // given
    let chain = vec![block("a1", &["t1", "t2"]), block("a2", &["t3"])];

    // when / then
    assert!(no_duplicate_transaction(&chain).passed);
}
