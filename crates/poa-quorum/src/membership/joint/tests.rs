//! The joint phase from tables (the joint quorum's size, begin and commit, the new set's
//! share of the log) and its safety as properties over every pair of sets of 1 to 7 servers:
//! no two quorums that may serve at the same time are disjoint.

use std::collections::BTreeSet;

use proptest::prelude::*;

use super::*;

fn id(value: u8) -> ServerId {
    ServerId::from_random(u128::from(value) + 1)
}

fn ids(values: &[u8]) -> BTreeSet<ServerId> {
    values.iter().map(|value| id(*value)).collect()
}

fn plain(generation: u64, members: &[u8], budget: usize) -> MembershipRecord {
    MembershipRecord::new(
        generation,
        members.iter().map(|member| id(*member)),
        members.len(),
        budget,
    )
}

/// Whether `acked` is a quorum under `record`, as the adapter counts one: acknowledgements
/// come only from members (a node refuses a caller whose record is not its own), one per
/// server, and their count must reach the record's quorum.
fn counted_quorum(record: &MembershipRecord, acked: &BTreeSet<ServerId>) -> bool {
    let count = acked.iter().filter(|id| record.is_member(id)).count();
    record.quorum().reached(count)
}

#[test]
fn joint_quorum__when_sets_vary__then_matches_the_table() {
    // given: (old, new, shared, budget) -> (nodes, size)
    let table = [
        ((3, 3, 2, 0), (4, 3)),
        ((3, 3, 0, 0), (6, 5)),
        ((3, 5, 3, 0), (5, 4)),
        ((5, 3, 3, 0), (5, 4)),
        ((3, 3, 3, 0), (3, 2)),
        ((1, 1, 0, 0), (2, 2)),
        ((5, 5, 4, 1), (6, 5)),
    ];
    for ((old, new, shared, budget), (nodes, size)) in table {
        // when
        let quorum = Quorum::joint(old, new, shared, budget);

        // then
        assert_eq!(
            (quorum.nodes(), quorum.size()),
            (nodes, size),
            "old={old} new={new} shared={shared} budget={budget}"
        );
    }
}

#[test]
fn begin__when_the_record_is_plain__then_names_both_sets_one_generation_up_with_its_own_digest() {
    // given
    let current = plain(4, &[1, 2, 3], 0);

    // when
    let joint = plan_change_begin(&current, [id(1), id(2), id(4)]).unwrap();

    // then
    assert_eq!(joint.generation, 5);
    assert_eq!(
        joint.members,
        ids(&[1, 2, 3, 4]).into_iter().collect::<Vec<_>>()
    );
    let sides = joint.joint.clone().unwrap();
    assert_eq!(sides.old, ids(&[1, 2, 3]).into_iter().collect::<Vec<_>>());
    assert_eq!(sides.new, ids(&[1, 2, 4]).into_iter().collect::<Vec<_>>());
    assert_ne!(joint.digest(), current.digest());
    assert_ne!(joint.digest(), sides.new_record(0).digest());
    assert_eq!(joint.quorum(), Quorum::joint(3, 3, 2, 0));
}

#[test]
fn begin__when_a_change_is_in_progress_or_nothing_changes_or_a_slot_is_vacant__then_refuses() {
    // given
    let current = plain(1, &[1, 2, 3], 0);
    let joint = plan_change_begin(&current, [id(1), id(2), id(4)]).unwrap();
    let vacant = MembershipRecord::new(1, [id(1), id(2)], 3, 0);

    // when / then
    assert_eq!(
        plan_change_begin(&joint, [id(5)]),
        Err(ChangeRefusal::ChangeInProgress)
    );
    assert_eq!(
        plan_change_begin(&current, [id(3), id(2), id(1)]),
        Err(ChangeRefusal::NothingToChange)
    );
    assert_eq!(
        plan_change_begin(&vacant, [id(1), id(2), id(4)]),
        Err(ChangeRefusal::Vacancies { vacancies: 1 })
    );
}

#[test]
fn commit__when_the_record_is_not_joint__then_refuses_so_no_commit_skips_the_joint_phase() {
    // given: the new set's record written straight over the old one would let {1,3} serve a
    // process of the old set while {2,4} serves one of the new set
    let current = plain(1, &[1, 2, 3], 0);
    let new = plain(2, &[1, 2, 4], 0);
    assert!(counted_quorum(&current, &ids(&[1, 3])));
    assert!(counted_quorum(&new, &ids(&[2, 4])));

    // when
    let commit = plan_change_commit(&current);

    // then
    assert_eq!(commit, Err(ChangeRefusal::NoChangeBegun));
}

#[test]
fn commit__when_the_record_is_joint__then_is_the_new_set_alone_one_generation_up() {
    // given
    let joint = plan_change_begin(&plain(1, &[1, 2, 3], 0), [id(1), id(2), id(4)]).unwrap();

    // when
    let new = plan_change_commit(&joint).unwrap();

    // then
    assert_eq!(new, plain(3, &[1, 2, 4], 0));
}

#[test]
fn holds_joint_quorum__when_holders_vary__then_needs_a_quorum_of_each_set() {
    // given
    let joint = plan_change_begin(&plain(1, &[1, 2, 3], 0), [id(1), id(4), id(5)]).unwrap();
    let table: [(&[u8], bool); 5] = [
        (&[1, 2, 3, 4, 5], true),
        (&[1, 2, 4], true),
        (&[2, 3, 4, 5], true),
        (&[2, 3, 4], false),
        (&[1, 4, 5], false),
    ];
    for (holding, expected) in table {
        // when
        let holds = holds_joint_quorum(&joint, &ids(holding));

        // then
        assert_eq!(holds, expected, "holding {holding:?}");
    }
}

#[test]
fn short_on_new_set__when_heights_lack_a_new_quorum__then_names_them() {
    // given
    let joint = plan_change_begin(&plain(1, &[1, 2, 3], 0), [id(1), id(2), id(4)]).unwrap();
    let heights = [
        (BlockHeight::new(5), ids(&[1, 2, 3])),
        (BlockHeight::new(6), ids(&[1, 3])),
        (BlockHeight::new(7), ids(&[1, 3, 4])),
        (BlockHeight::new(8), ids(&[3])),
    ];

    // when
    let short = short_on_new_set(&joint, &heights);

    // then
    assert_eq!(short, vec![BlockHeight::new(6), BlockHeight::new(8)]);
}

#[test]
fn heights_short_before_commit__when_the_window_is_read__then_names_heights_up_to_the_old_top_short_on_the_new_set()
 {
    // given: old {1,2,3}, new {1,2,4}; height 5 on all of old, 6 on {1,3} (short on new),
    // 7 named by no node, 8 on {2,3} (the top: a quorum of old), 9 on {4} alone (above the top)
    let joint = plan_change_begin(&plain(1, &[1, 2, 3], 0), [id(1), id(2), id(4)]).unwrap();
    let block = |byte: u8| BlockId::from_bytes([byte; 32]);
    let mut claims = WindowClaims::new();
    let mut claim = |height: u64, byte: u8, holders: &[u8]| {
        claims
            .entry(BlockHeight::new(height))
            .or_default()
            .insert(block(byte), ids(holders));
    };
    claim(4, 1, &[3]);
    claim(5, 2, &[1, 2, 3]);
    claim(6, 3, &[1, 3]);
    claim(6, 4, &[2]);
    claim(8, 5, &[2, 3]);
    claim(9, 6, &[4]);

    // when
    let short = heights_short_before_commit(&joint, &claims, BlockHeight::new(5));

    // then: 4 is below the window, 9 above the top
    assert_eq!(
        short,
        vec![
            BlockHeight::new(6),
            BlockHeight::new(7),
            BlockHeight::new(8)
        ]
    );
    let plain_record = plain(1, &[1, 2, 3], 0);
    assert!(heights_short_before_commit(&plain_record, &claims, BlockHeight::new(5)).is_empty());
}

/// Two sets of 1 to 7 servers drawn from 10, and a budget both allow.
fn sets() -> impl Strategy<Value = (Vec<u8>, Vec<u8>, usize)> {
    (
        proptest::sample::subsequence((0u8..10).collect::<Vec<_>>(), 1..=7),
        proptest::sample::subsequence((0u8..10).collect::<Vec<_>>(), 1..=7),
        0usize..3,
    )
        .prop_map(|(old, new, budget)| {
            let allowed = [old.len(), new.len()]
                .iter()
                .map(|nodes| nodes - crate::quorum::majority(*nodes))
                .min()
                .unwrap_or(0);
            (old, new, budget.min(allowed))
        })
}

/// A quorum of `record`: the members `picked` names, then the others in order until the
/// count is reached.
fn quorum_of(record: &MembershipRecord, picked: &[bool]) -> BTreeSet<ServerId> {
    let mut quorum: BTreeSet<ServerId> = record
        .members
        .iter()
        .zip(picked)
        .filter(|(_, picked)| **picked)
        .map(|(member, _)| member.clone())
        .collect();
    for member in &record.members {
        if counted_quorum(record, &quorum) {
            break;
        }
        quorum.insert(member.clone());
    }
    quorum
}

/// The three records of a change from `old` to `new`.
fn records(old: &[u8], new: &[u8], budget: usize) -> Option<[MembershipRecord; 3]> {
    let before = plain(1, old, budget);
    let joint = plan_change_begin(&before, new.iter().map(|member| id(*member))).ok()?;
    let after = plan_change_commit(&joint).ok()?;
    Some([before, joint, after])
}

proptest! {
    #[test]
    fn joint_quorum__for_any_two_sets__then_every_counted_quorum_holds_a_quorum_of_each(
        (old, new, budget) in sets(),
        picked in proptest::collection::vec(any::<bool>(), 14),
    ) {
        let Some([before, joint, after]) = records(&old, &new, budget) else {
            return Ok(());
        };
        let acked = quorum_of(&joint, &picked);
        prop_assert!(counted_quorum(&before, &acked));
        prop_assert!(counted_quorum(&after, &acked));
    }

    #[test]
    fn change__for_any_two_sets__then_no_two_quorums_that_may_serve_together_are_disjoint(
        (old, new, budget) in sets(),
        picked in proptest::collection::vec(any::<bool>(), 14),
        first in 0usize..3,
        second in 0usize..3,
    ) {
        // Only neighbours serve together: the joint record holds a quorum of the old set
        // before any node takes the new record (checked below), so a process of the old set
        // and one of the new set are never both served.
        prop_assume!(first.abs_diff(second) <= 1);
        let Some(records) = records(&old, &new, budget) else {
            return Ok(());
        };
        let (one, other) = (&records[first], &records[second]);
        let quorum = quorum_of(one, &picked);
        // The largest quorum of the other record that avoids this one.
        let disjoint: BTreeSet<ServerId> = other
            .members
            .iter()
            .filter(|member| !quorum.contains(*member))
            .cloned()
            .collect();
        prop_assert!(!counted_quorum(other, &disjoint));
    }

    #[test]
    fn change__for_any_two_sets_and_any_nodes_reached__then_old_and_new_are_never_both_served(
        (old, new, budget) in sets(),
        took_joint in proptest::collection::vec(any::<bool>(), 10),
        took_new in proptest::collection::vec(any::<bool>(), 10),
    ) {
        let Some([before, joint, after]) = records(&old, &new, budget) else {
            return Ok(());
        };
        // begin reached some nodes; commit installs the new record only over the joint one,
        // and only once the joint record holds a quorum of each set.
        let joint_holders: BTreeSet<ServerId> = (0u8..10)
            .filter(|server| took_joint[usize::from(*server)] && joint.is_member(&id(*server)))
            .map(id)
            .collect();
        let committed = holds_joint_quorum(&joint, &joint_holders);
        let new_holders: BTreeSet<ServerId> = joint_holders
            .iter()
            .filter(|server| committed && after.is_member(server))
            .filter(|server| {
                let position = (0u8..10).position(|value| id(value) == **server).unwrap_or(0);
                took_new[position]
            })
            .cloned()
            .collect();
        // The old record is still held by the old set's nodes begin did not reach.
        let old_holders: BTreeSet<ServerId> = before
            .members
            .iter()
            .filter(|member| !joint_holders.contains(*member))
            .cloned()
            .collect();
        prop_assert!(!(counted_quorum(&before, &old_holders) && counted_quorum(&after, &new_holders)));
        if !new_holders.is_empty() {
            prop_assert!(!counted_quorum(&before, &old_holders));
        }
    }
}
