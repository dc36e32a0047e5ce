//! Table tests and property tests of the pure quorum, validity, tally, vote and repair rules.

use proptest::prelude::*;

use super::*;
use crate::scripts::NodeError;

fn id(byte: u8) -> BlockId {
    BlockId::from_bytes([byte; 32])
}

fn unavailable() -> NodeError {
    NodeError::TimedOut {
        after: Duration::from_millis(1),
    }
}

#[test]
fn quorum__when_nodes_and_budget_vary__then_matches_the_table() {
    // given
    let table = [
        (1, 0, 1),
        (2, 0, 2),
        (3, 0, 2),
        (4, 0, 3),
        (5, 0, 3),
        (6, 0, 4),
        (7, 0, 4),
        (3, 1, 3),
        (5, 1, 4),
        (5, 9, 5),
    ];
    for (nodes, budget, expected) in table {
        // when
        let quorum = Quorum::new(nodes, budget);

        // then
        assert_eq!(quorum.size(), expected, "n={nodes} b={budget}");
    }
}

#[test]
fn drift__when_ttl_varies__then_is_one_percent_plus_two_millis() {
    assert_eq!(
        drift(Duration::from_millis(2000)),
        Duration::from_millis(22)
    );
    assert_eq!(
        drift(Duration::from_millis(3000)),
        Duration::from_millis(32)
    );
    assert_eq!(drift(Duration::from_millis(300)), Duration::from_millis(5));
}

#[test]
fn promote_tally__when_replies_arrive__then_decides_at_the_right_reply() {
    // given: (replies, validity left, expected decision after the last reply)
    let granted = |epoch| PromoteOutcome::Granted(Epoch::new(epoch));
    let valid = Some(Duration::from_millis(500));
    let cases: Vec<(Vec<PromoteOutcome>, Option<Duration>, AcquireDecision)> = vec![
        (vec![granted(3)], valid, AcquireDecision::Undecided),
        (
            vec![granted(3), granted(5)],
            valid,
            AcquireDecision::Acquired {
                epoch: Epoch::new(5),
                epoch_spread: 2,
            },
        ),
        (vec![granted(3), granted(5)], None, AcquireDecision::Failed),
        (
            vec![PromoteOutcome::HeldByAnother, PromoteOutcome::HeldByAnother],
            valid,
            AcquireDecision::HeldByAnother,
        ),
        (
            vec![
                PromoteOutcome::HeldByAnother,
                PromoteOutcome::Unavailable(unavailable()),
            ],
            valid,
            AcquireDecision::Failed,
        ),
        (
            vec![granted(1), PromoteOutcome::HeldByAnother],
            valid,
            AcquireDecision::Undecided,
        ),
    ];
    for (replies, validity, expected) in cases {
        let mut tally = PromoteTally::new(Quorum::new(3, 0));

        // when
        for reply in &replies {
            tally.record(reply);
        }

        // then
        assert_eq!(tally.decision(validity), expected, "{replies:?}");
    }
}

#[test]
fn promote_tally__when_a_promote_timed_out__then_the_failed_attempt_may_hold_a_grant() {
    // given: every timeout is an unknown outcome, so only refusals prove there is no grant
    let cases = [
        (vec![PromoteOutcome::HeldByAnother], false),
        (vec![PromoteOutcome::Granted(Epoch::new(1))], true),
        (
            vec![
                PromoteOutcome::HeldByAnother,
                PromoteOutcome::Unavailable(unavailable()),
            ],
            true,
        ),
    ];
    for (replies, expected) in cases {
        let mut tally = PromoteTally::new(Quorum::new(3, 0));

        // when
        for reply in &replies {
            tally.record(reply);
        }

        // then
        assert_eq!(tally.may_hold_grants(), expected, "{replies:?}");
        assert_eq!(
            replies.iter().any(PromoteOutcome::may_hold_grant),
            expected,
            "{replies:?}"
        );
    }
}

#[test]
fn ownership_tally__when_replies_arrive__then_decides_at_quorum_or_impossibility() {
    // given
    let quorum = Quorum::new(5, 0);
    let mut tally = OwnershipTally::new(quorum);

    // when / then
    tally.record(&OwnerOutcome::Owner);
    tally.record(&OwnerOutcome::NotOwner);
    tally.record(&OwnerOutcome::Unavailable(unavailable()));
    assert_eq!(tally.decision(), OwnershipDecision::Undecided);
    tally.record(&OwnerOutcome::NotOwner);
    assert_eq!(tally.decision(), OwnershipDecision::NotOwned);

    let mut tally = OwnershipTally::new(quorum);
    for _ in 0..3 {
        tally.record(&OwnerOutcome::Owner);
    }
    assert_eq!(tally.decision(), OwnershipDecision::Owned);
}

#[test]
fn write_tally__when_publish_gets_a_quorum_of_refusals__then_is_impossible_before_the_last_reply() {
    // given: 4 nodes, quorum 3
    let mut tally = WriteTally::publish(Quorum::new(4, 0));

    // when
    tally.record(&WriteOutcome::HeightTaken);
    assert_eq!(tally.decision(), WriteDecision::Undecided);
    tally.record(&WriteOutcome::Failed(unavailable()));

    // then
    assert_eq!(tally.decision(), WriteDecision::Impossible);
}

#[test]
fn write_tally__when_already_stored_and_written_reach_quorum__then_stored() {
    // given
    let mut tally = WriteTally::publish(Quorum::new(3, 0));

    // when
    tally.record(&WriteOutcome::AlreadyStored);
    tally.record(&WriteOutcome::Written);

    // then
    assert_eq!(tally.decision(), WriteDecision::Stored);
}

#[test]
fn write_tally__when_publish_is_fenced_on_a_quorum__then_reports_fenced() {
    // given
    let fenced = WriteOutcome::Fenced {
        reason: "token is stale".into(),
    };
    let mut tally = WriteTally::publish(Quorum::new(3, 0));

    // when
    tally.record(&WriteOutcome::Written);
    tally.record(&fenced);
    assert_eq!(tally.decision(), WriteDecision::Undecided);
    tally.record(&fenced);

    // then
    assert_eq!(tally.decision(), WriteDecision::Fenced);
}

#[test]
fn write_tally__when_repair_has_pre_existing_nodes__then_stops_at_quorum_and_aborts_on_fence() {
    // given: 5 nodes, quorum 3, 2 hold the block, 3 targets
    let quorum = Quorum::new(5, 0);
    let mut tally = WriteTally::repair(quorum, 2, 3);

    // when
    tally.record(&WriteOutcome::AlreadyStored);

    // then
    assert_eq!(tally.decision(), WriteDecision::Stored);

    let mut fenced = WriteTally::repair(quorum, 2, 3);
    fenced.record(&WriteOutcome::Fenced { reason: "x".into() });
    assert_eq!(fenced.decision(), WriteDecision::Fenced);
}

#[test]
fn latest_tally__when_backlog_is_seen_on_a_quorum_of_answers__then_backlog() {
    // given
    let quorum = Quorum::new(3, 0);
    let mut tally = LatestTally::new(quorum);

    // when
    tally.record(Some(true));
    assert_eq!(tally.decision(), LatestDecision::Undecided);
    tally.record(Some(false));

    // then
    assert_eq!(tally.decision(), LatestDecision::Backlog);

    let mut failing = LatestTally::new(quorum);
    failing.record(None);
    failing.record(None);
    assert_eq!(failing.decision(), LatestDecision::NoQuorum);

    let mut in_sync = LatestTally::new(quorum);
    in_sync.record(Some(false));
    in_sync.record(Some(false));
    assert_eq!(in_sync.decision(), LatestDecision::InSync);
}

#[test]
fn winner__when_candidates_differ__then_quorum_beats_epoch_and_ties_take_smallest_id() {
    let quorum = Quorum::new(3, 0);

    // a quorum candidate wins over a higher-epoch orphan
    let mut votes = HeightVotes::default();
    votes.add(0, id(9), Epoch::new(1));
    votes.add(1, id(9), Epoch::new(1));
    votes.add(2, id(1), Epoch::new(8));
    assert_eq!(votes.winner(quorum).map(|c| c.id), Some(id(9)));
    assert_eq!(votes.committed(quorum).map(|c| c.id), Some(id(9)));

    // no quorum: highest epoch
    let mut votes = HeightVotes::default();
    votes.add(0, id(9), Epoch::new(3));
    votes.add(2, id(1), Epoch::new(4));
    assert_eq!(votes.winner(quorum).map(|c| c.id), Some(id(1)));
    assert_eq!(votes.committed(quorum), None);

    // equal epochs: smallest id
    let mut votes = HeightVotes::default();
    votes.add(0, id(9), Epoch::new(7));
    votes.add(1, id(4), Epoch::new(7));
    assert_eq!(votes.winner(quorum).map(|c| c.id), Some(id(4)));
}

#[test]
fn votes__when_one_node_holds_the_same_block_twice__then_counts_once() {
    // given
    let quorum = Quorum::new(3, 0);
    let mut votes = HeightVotes::default();

    // when
    votes.add(0, id(5), Epoch::new(1));
    votes.add(0, id(5), Epoch::new(2));

    // then
    let winner = votes.winner(quorum).unwrap();
    assert_eq!(winner.nodes.len(), 1);
    assert_eq!(winner.max_epoch, Epoch::new(2));
    assert_eq!(votes.committed(quorum), None);
}

#[test]
fn votes__when_same_block_has_different_epochs_on_every_node__then_committed_without_repair() {
    // given: the devnet 2026-04-17 shape, 6 nodes, quorum 4
    let quorum = Quorum::new(6, 0);
    let mut votes = HeightVotes::default();
    for (node, epoch) in [(0, 268), (1, 268), (2, 268), (3, 269), (4, 270), (5, 270)] {
        votes.add(node, id(1), Epoch::new(epoch));
    }

    // when
    let committed = votes.committed(quorum).unwrap();

    // then
    assert_eq!(committed.nodes.len(), 6);
    assert_eq!(plan_repair(quorum, &votes, committed), None);
}

#[test]
fn plan_repair__when_winner_is_short__then_targets_nodes_without_any_block() {
    // given: 5 nodes, quorum 3; winner on node 0, another block on node 1
    let quorum = Quorum::new(5, 0);
    let mut votes = HeightVotes::default();
    votes.add(0, id(2), Epoch::new(5));
    votes.add(1, id(1), Epoch::new(4));
    let winner = votes.winner(quorum).unwrap().clone();

    // when
    let plan = plan_repair(quorum, &votes, &winner).unwrap();

    // then
    assert_eq!(plan.pre_existing, 1);
    assert_eq!(plan.needed, 2);
    assert_eq!(plan.targets, vec![2, 3, 4]);
}

#[test]
fn plan_repair__when_too_few_nodes_are_free__then_none() {
    // given: 3 nodes, winner on 0, others hold other blocks
    let quorum = Quorum::new(3, 0);
    let mut votes = HeightVotes::default();
    votes.add(0, id(3), Epoch::new(9));
    votes.add(1, id(1), Epoch::new(1));
    votes.add(2, id(2), Epoch::new(1));
    let winner = votes.winner(quorum).unwrap().clone();

    // when / then
    assert_eq!(plan_repair(quorum, &votes, &winner), None);
}

proptest! {
    #[test]
    fn quorum__for_any_size_and_budget__then_two_quorums_overlap_in_one_plus_twice_the_budget(
        nodes in 1usize..16,
        budget in 0usize..8,
    ) {
        prop_assume!(majority(nodes) + budget <= nodes);
        let quorum = Quorum::new(nodes, budget);
        prop_assert!(quorum.size() <= nodes);
        prop_assert!(2 * quorum.size() >= nodes + 1 + 2 * budget);
        // the early-failure threshold and the success threshold never both hold
        for failed in 0..=nodes {
            let stored = nodes - failed;
            prop_assert!(!(quorum.impossible(failed) && quorum.reached(stored)));
            prop_assert!(quorum.impossible(failed) || quorum.reached(stored));
        }
    }

    #[test]
    fn remaining_validity__for_any_times__then_positive_exactly_while_elapsed_plus_drift_is_below_ttl(
        ttl_ms in 1u64..100_000,
        elapsed_ms in 0u64..200_000,
    ) {
        let ttl = Duration::from_millis(ttl_ms);
        let elapsed = Duration::from_millis(elapsed_ms);
        let drift = drift(ttl);
        let validity = remaining_validity(ttl, drift, elapsed);
        if elapsed + drift >= ttl {
            prop_assert_eq!(validity, None);
        } else {
            prop_assert_eq!(validity, Some(ttl - elapsed - drift));
        }
    }

    #[test]
    fn fold_epoch__for_any_sequence__then_is_the_running_maximum(
        epochs in proptest::collection::vec(0u64..1000, 1..50),
    ) {
        let mut current = None;
        for (seen, epoch) in epochs.iter().enumerate() {
            let next = fold_epoch(current, Epoch::new(*epoch));
            prop_assert!(current.is_none_or(|c| next >= c));
            prop_assert_eq!(next.get(), *epochs[..=seen].iter().max().unwrap());
            current = Some(next);
        }
    }

    #[test]
    fn write_tally__for_any_replies__then_decides_exactly_when_it_should(
        nodes in 1usize..8,
        replies in proptest::collection::vec(0u8..5, 0..8),
    ) {
        let quorum = Quorum::new(nodes, 0);
        let mut tally = WriteTally::publish(quorum);
        let (mut stored, mut fenced) = (0usize, 0usize);
        for (answered, reply) in replies.iter().take(nodes).enumerate() {
            let outcome = match reply {
                0 => WriteOutcome::Written,
                1 => WriteOutcome::AlreadyStored,
                2 => WriteOutcome::HeightTaken,
                3 => WriteOutcome::Fenced { reason: String::new() },
                _ => WriteOutcome::Failed(unavailable()),
            };
            match &outcome {
                WriteOutcome::Written | WriteOutcome::AlreadyStored => stored += 1,
                WriteOutcome::Fenced { .. } => fenced += 1,
                _ => {}
            }
            tally.record(&outcome);
            let expected = if stored >= quorum.size() {
                WriteDecision::Stored
            } else if stored + (nodes - answered - 1) < quorum.size() {
                if fenced > 0 { WriteDecision::Fenced } else { WriteDecision::Impossible }
            } else {
                WriteDecision::Undecided
            };
            prop_assert_eq!(tally.decision(), expected);
            if answered + 1 == nodes {
                prop_assert_ne!(tally.decision(), WriteDecision::Undecided);
            }
        }
    }

    #[test]
    fn promote_tally__for_any_replies__then_never_acquires_below_quorum_and_always_decides_at_the_end(
        nodes in 1usize..8,
        replies in proptest::collection::vec((0u8..3, 1u64..50), 0..8),
    ) {
        let quorum = Quorum::new(nodes, 0);
        let mut tally = PromoteTally::new(quorum);
        let mut granted = 0;
        for (answered, (kind, epoch)) in replies.iter().take(nodes).enumerate() {
            let outcome = match kind {
                0 => { granted += 1; PromoteOutcome::Granted(Epoch::new(*epoch)) }
                1 => PromoteOutcome::HeldByAnother,
                _ => PromoteOutcome::Unavailable(unavailable()),
            };
            tally.record(&outcome);
            let decision = tally.decision(Some(Duration::from_secs(1)));
            prop_assert_eq!(matches!(decision, AcquireDecision::Acquired { .. }), granted >= quorum.size());
            if answered + 1 == nodes {
                prop_assert_ne!(decision, AcquireDecision::Undecided);
            }
        }
    }

    /// Writers race to put different blocks at one height on random subsets of nodes; each
    /// node keeps the first block (the heights index). Whatever subset of nodes answers a
    /// reconciliation read, there is never more than one committed block, and any block
    /// stored on a quorum of nodes is seen by every quorum of answers; a repair never brings a
    /// second block to a quorum.
    #[test]
    fn votes__for_any_write_race_and_any_answering_nodes__then_at_most_one_committed_winner(
        nodes in 1usize..7,
        writes in proptest::collection::vec((0u8..4, 0u64..4, proptest::collection::vec(any::<bool>(), 7)), 0..10),
        answering in proptest::collection::vec(any::<bool>(), 7),
    ) {
        let quorum = Quorum::new(nodes, 0);
        let mut stored: Vec<Option<(BlockId, Epoch)>> = vec![None; nodes];
        for (block, epoch, targets) in &writes {
            for node in 0..nodes {
                if targets[node] && stored[node].is_none() {
                    stored[node] = Some((id(*block), Epoch::new(*epoch)));
                }
            }
        }
        let on_quorum: BTreeSet<BlockId> = stored
            .iter()
            .flatten()
            .map(|(block, _)| *block)
            .filter(|block| {
                quorum.reached(stored.iter().flatten().filter(|(b, _)| b == block).count())
            })
            .collect();
        prop_assert!(on_quorum.len() <= 1);

        let mut votes = HeightVotes::default();
        let mut answered = 0;
        for node in 0..nodes {
            if answering[node] {
                answered += 1;
                if let Some((block, epoch)) = stored[node] {
                    votes.add(node, block, epoch);
                }
            }
        }
        if let Some(committed) = votes.committed(quorum) {
            prop_assert!(on_quorum.contains(&committed.id));
        }
        // Repair the winner the way the scripts would: a node stores it only if it holds
        // nothing at this height or already holds it. It never becomes a second committed block.
        if let Some(winner) = votes.winner(quorum).cloned()
            && let Some(plan) = plan_repair(quorum, &votes, &winner)
        {
            let accepted = plan
                .targets
                .iter()
                .filter(|target| stored[**target].is_none_or(|(b, _)| b == winner.id))
                .count();
            if quorum.reached(plan.pre_existing + accepted) {
                prop_assert!(on_quorum.is_empty() || on_quorum.contains(&winner.id));
            }
        }
        // With a quorum of answers, a committed block is always seen (quorums overlap).
        if quorum.reached(answered)
            && let Some(block) = on_quorum.iter().next()
        {
            prop_assert!((0..nodes).any(|node| answering[node]
                && stored[node].is_some_and(|(b, _)| b == *block)));
        }
    }
}
