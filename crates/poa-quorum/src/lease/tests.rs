//! Drift, validity, the epoch fold and the promote and ownership tallies.

use proptest::prelude::*;

use super::*;

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
    let granted = |epoch| PromoteReply::Granted(Epoch::new(epoch));
    let valid = Some(Duration::from_millis(500));
    let cases: Vec<(Vec<PromoteReply>, Option<Duration>, AcquireDecision)> = vec![
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
            vec![PromoteReply::HeldByAnother, PromoteReply::HeldByAnother],
            valid,
            AcquireDecision::HeldByAnother,
        ),
        (
            vec![PromoteReply::HeldByAnother, PromoteReply::Unavailable],
            valid,
            AcquireDecision::Failed,
        ),
        (
            vec![granted(1), PromoteReply::HeldByAnother],
            valid,
            AcquireDecision::Undecided,
        ),
    ];
    for (replies, validity, expected) in cases {
        let mut tally = PromoteTally::new(Quorum::new(3, 0));

        // when
        for reply in &replies {
            tally.record(*reply);
        }

        // then
        assert_eq!(tally.decision(validity), expected, "{replies:?}");
    }
}

#[test]
fn promote_tally__when_a_promote_timed_out__then_the_failed_attempt_may_hold_a_grant() {
    // given: every timeout is an unknown outcome, so only refusals prove there is no grant
    let cases = [
        (vec![PromoteReply::HeldByAnother], false),
        (vec![PromoteReply::Granted(Epoch::new(1))], true),
        (
            vec![PromoteReply::HeldByAnother, PromoteReply::Unavailable],
            true,
        ),
    ];
    for (replies, expected) in cases {
        let mut tally = PromoteTally::new(Quorum::new(3, 0));

        // when
        for reply in &replies {
            tally.record(*reply);
        }

        // then
        assert_eq!(tally.may_hold_grants(), expected, "{replies:?}");
        assert_eq!(
            replies.iter().any(|reply| reply.may_hold_grant()),
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
    tally.record(OwnerReply::Owner);
    tally.record(OwnerReply::NotOwner);
    tally.record(OwnerReply::Unavailable);
    assert_eq!(tally.decision(), OwnershipDecision::Undecided);
    tally.record(OwnerReply::NotOwner);
    assert_eq!(tally.decision(), OwnershipDecision::NotOwned);

    let mut tally = OwnershipTally::new(quorum);
    for _ in 0..3 {
        tally.record(OwnerReply::Owner);
    }
    assert_eq!(tally.decision(), OwnershipDecision::Owned);
}

proptest! {
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
    fn promote_tally__for_any_replies__then_never_acquires_below_quorum_and_always_decides_at_the_end(
        nodes in 1usize..8,
        replies in proptest::collection::vec((0u8..3, 1u64..50), 0..8),
    ) {
        let quorum = Quorum::new(nodes, 0);
        let mut tally = PromoteTally::new(quorum);
        let mut granted = 0;
        for (answered, (kind, epoch)) in replies.iter().take(nodes).enumerate() {
            let reply = match kind {
                0 => { granted += 1; PromoteReply::Granted(Epoch::new(*epoch)) }
                1 => PromoteReply::HeldByAnother,
                _ => PromoteReply::Unavailable,
            };
            tally.record(reply);
            let decision = tally.decision(Some(Duration::from_secs(1)));
            prop_assert_eq!(matches!(decision, AcquireDecision::Acquired { .. }), granted >= quorum.size());
            if answered + 1 == nodes {
                prop_assert_ne!(decision, AcquireDecision::Undecided);
            }
        }
    }
}
