//! The membership decisions from tables (the fork of two node lists, bootstrap, a wiped
//! member, a restored one) and the properties of a joined view.

use proptest::prelude::*;

use super::*;

fn id(value: u8) -> ServerId {
    ServerId::from_random(u128::from(value) + 1)
}

fn record(generation: u64, members: &[u8]) -> MembershipRecord {
    MembershipRecord::new(generation, members.iter().map(|member| id(*member)), 3, 0)
}

fn holding(server: u8, held: &MembershipRecord) -> NodeMembership {
    NodeMembership::Answered {
        server_id: Some(id(server)),
        record: Some(held.clone()),
    }
}

fn blank() -> NodeMembership {
    NodeMembership::Answered {
        server_id: None,
        record: None,
    }
}

fn three() -> Quorum {
    Quorum::new(3, 0)
}

/// The decision to join `record` expecting servers `expected` (by number) at the URLs.
fn joins(record: &MembershipRecord, expected: [Option<u8>; 3]) -> MembershipDecision {
    MembershipDecision::Join(MembershipView {
        record: record.clone(),
        expected: expected.iter().map(|server| server.map(id)).collect(),
    })
}

#[test]
fn decide__when_every_node_is_blank__then_bootstraps() {
    // given
    let nodes = [blank(), blank(), blank()];

    // when
    let decision = decide_membership(&nodes, three(), 0);

    // then
    assert_eq!(decision, MembershipDecision::Bootstrap);
}

#[test]
fn decide__when_one_node_is_unreachable_and_the_others_blank__then_fails_closed_without_bootstrap()
{
    // given
    let nodes = [blank(), blank(), NodeMembership::Unreachable];

    // when
    let decision = decide_membership(&nodes, three(), 0);

    // then
    assert!(matches!(
        decision,
        MembershipDecision::FailClosed(MembershipMismatch::NoRecord { .. })
    ));
}

#[test]
fn decide__when_the_list_matches_the_record__then_joins_with_the_ids_read() {
    // given
    let abc = record(1, &[0, 1, 2]);
    let nodes = [
        holding(0, &abc),
        holding(1, &abc),
        NodeMembership::Unreachable,
    ];

    // when
    let decision = decide_membership(&nodes, three(), 0);

    // then
    assert_eq!(decision, joins(&abc, [Some(0), Some(1), None]));
}

#[test]
fn decide__when_a_list_names_a_server_of_another_set__then_fails_closed_naming_it() {
    // given: the fleet's record is {A,B,C}; this process lists A, B and D, which holds another
    // set's record
    let abc = record(1, &[0, 1, 2]);
    let other = record(1, &[3, 4, 5]);
    let nodes = [holding(0, &abc), holding(1, &abc), holding(3, &other)];

    // when
    let decision = decide_membership(&nodes, three(), 0);

    // then
    let MembershipDecision::FailClosed(mismatch) = decision else {
        panic!("joined {decision:?}");
    };
    assert!(mismatch.to_string().contains("not a member"), "{mismatch}");
}

#[test]
fn decide__when_more_members_lost_their_id_than_the_fleet_may_miss__then_fails_closed() {
    // given: {A,B,C} recorded with budget 0 (a quorum of 2: one member may be missed); B and C
    // answer blank
    let abc = record(1, &[0, 1, 2]);
    let nodes = [holding(0, &abc), blank(), blank()];

    // when
    let decision = decide_membership(&nodes, three(), 0);

    // then
    assert!(matches!(
        decision,
        MembershipDecision::FailClosed(MembershipMismatch::Conflict { .. })
    ));
}

#[test]
fn decide__when_a_bootstrap_raced_with_another_list__then_both_lists_fail_closed() {
    // given: {A,B,C} and {A,B,D} bootstrapped at once: A and C took the first record, B and D
    // the second
    let abc = record(1, &[0, 1, 2]);
    let abd = record(1, &[0, 1, 3]);
    let first = [holding(0, &abc), holding(1, &abd), holding(2, &abc)];
    let second = [holding(0, &abc), holding(1, &abd), holding(3, &abd)];

    // when
    let decisions = [
        decide_membership(&first, three(), 0),
        decide_membership(&second, three(), 0),
    ];

    // then
    for decision in decisions {
        assert!(
            matches!(decision, MembershipDecision::FailClosed(_)),
            "{decision:?}"
        );
    }
}

#[test]
fn decide__when_a_member_lags_one_generation__then_joins_the_newer_record() {
    // given: C was re-admitted with a new id (6) at generation 2; B has not taken it yet
    let old = record(1, &[0, 1, 2]);
    let new = old.successor(&[(id(2), id(6))], &[]);
    let nodes = [holding(0, &new), holding(1, &old), holding(6, &new)];

    // when
    let decision = decide_membership(&nodes, three(), 0);

    // then
    assert_eq!(decision, joins(&new, [Some(0), Some(1), Some(6)]));
}

#[test]
fn decide__when_a_member_restarted_empty_within_the_budget__then_joins_without_it() {
    // given: N=3 with budget 1 (a quorum of 3): C answers blank
    let abc = MembershipRecord::new(1, [id(0), id(1), id(2)], 3, 1);
    let nodes = [holding(0, &abc), holding(1, &abc), blank()];

    // when
    let decision = decide_membership(&nodes, Quorum::new(3, 1), 1);

    // then
    assert_eq!(decision, joins(&abc, [Some(0), Some(1), None]));
}

#[test]
fn decide__when_a_readmission_reached_only_some_nodes__then_joins_the_newer_record_with_the_laggard()
 {
    // given: C re-admitted as server 6; A still holds the older record
    let old = MembershipRecord::new(1, [id(0), id(1), id(2)], 3, 1);
    let new = old.successor(&[(id(2), id(6))], &[]);
    let nodes = [holding(0, &old), holding(1, &new), holding(6, &new)];

    // when
    let decision = decide_membership(&nodes, Quorum::new(3, 1), 1);

    // then
    assert_eq!(decision, joins(&new, [Some(0), Some(1), Some(6)]));
}

#[test]
fn decide__when_a_stop_the_world_change_retired_a_listed_node__then_joins_without_counting_it() {
    // given: {A,B,C} changed to {A,B,D}; a process still lists C, which holds the old record
    let abc = record(1, &[0, 1, 2]);
    let abd = record(2, &[0, 1, 3]);
    let nodes = [holding(0, &abd), holding(1, &abd), holding(2, &abc)];

    // when
    let decision = decide_membership(&nodes, three(), 0);

    // then: C is never asked (its writes could not count toward the new set's quorums)
    assert_eq!(decision, joins(&abd, [Some(0), Some(1), None]));
}

#[test]
fn decide__when_every_node_has_an_id_but_none_a_record__then_bootstraps() {
    // given: a bootstrap cut short after it wrote the ids
    let nodes = [0, 1, 2].map(|server| NodeMembership::Answered {
        server_id: Some(id(server)),
        record: None,
    });

    // when
    let decision = decide_membership(&nodes, three(), 0);

    // then
    assert_eq!(decision, MembershipDecision::Bootstrap);
}

/// A node emptied and given server `server` by another process's re-admission, which
/// installed no record there yet.
fn claimed(server: u8) -> NodeMembership {
    NodeMembership::Answered {
        server_id: Some(id(server)),
        record: None,
    }
}

#[test]
fn decide__when_another_process_gave_an_emptied_member_a_new_id__then_joins_without_it() {
    // given: C restarted empty and another process claimed it as server 6, no record yet
    let abc = record(1, &[0, 1, 2]);
    let nodes = [holding(0, &abc), holding(1, &abc), claimed(6)];

    // when
    let decision = decide_membership(&nodes, three(), 0);

    // then: the same as for a blank C, not a server of another set
    assert_eq!(decision, joins(&abc, [Some(0), Some(1), None]));
}

#[test]
fn plan_readmission__when_another_process_gave_an_emptied_member_a_new_id__then_readmits_it_keeping_that_id()
 {
    // given: the leader read C's id before; C restarted empty and another process claimed it
    let abc = record(1, &[0, 1, 2]);
    let view = MembershipView {
        record: abc.clone(),
        expected: vec![Some(id(0)), Some(id(1)), None],
    };
    let known = [Some(id(0)), Some(id(1)), Some(id(2))];
    let now = [holding(0, &abc), holding(1, &abc), claimed(6)];

    // when
    let plan = plan_readmission(&view, &known, &now);

    // then: nothing to overwrite (the claim returns server 6), so both processes build the
    // same successor record
    assert_eq!(
        plan,
        vec![Readmission {
            node: 2,
            replaces: Some(id(2)),
            found: None,
        }]
    );
}

#[test]
fn missing_members_allowed__when_the_budget_or_the_spare_nodes_vary__then_is_the_larger() {
    // given
    let table = [
        (3, 0, 1),
        (3, 1, 1),
        (5, 0, 2),
        (5, 1, 1),
        (5, 2, 2),
        (4, 0, 1),
    ];
    for (nodes, budget, expected) in table {
        // when
        let allowed = missing_members_allowed(Quorum::new(nodes, budget), budget);

        // then
        assert_eq!(allowed, expected, "n={nodes} b={budget}");
    }
}

#[test]
fn decide__when_a_record_has_another_budget__then_fails_closed() {
    // given
    let abc = MembershipRecord::new(1, [id(0), id(1), id(2)], 3, 1);
    let nodes = [holding(0, &abc), holding(1, &abc), holding(2, &abc)];

    // when
    let decision = decide_membership(&nodes, Quorum::new(3, 0), 0);

    // then
    assert!(matches!(
        decision,
        MembershipDecision::FailClosed(MembershipMismatch::Conflict { .. })
    ));
}

#[test]
fn plan_readmission__when_a_member_answers_without_an_id__then_readmits_it_in_its_place() {
    // given: the leader read C's id before; C restarted empty
    let abc = MembershipRecord::new(1, [id(0), id(1), id(2)], 3, 1);
    let view = MembershipView {
        record: abc.clone(),
        expected: vec![Some(id(0)), Some(id(1)), None],
    };
    let known = [Some(id(0)), Some(id(1)), Some(id(2))];
    let now = [holding(0, &abc), holding(1, &abc), blank()];

    // when
    let plan = plan_readmission(&view, &known, &now);

    // then
    assert_eq!(
        plan,
        vec![Readmission {
            node: 2,
            replaces: Some(id(2)),
            found: None,
        }]
    );
}

#[test]
fn plan_readmission__when_a_node_never_held_a_member_id_and_there_is_no_vacancy__then_readmits_nothing()
 {
    // given: a process listing a fresh D where the record has no vacancy
    let abc = MembershipRecord::new(1, [id(0), id(1), id(2)], 3, 1);
    let view = MembershipView {
        record: abc.clone(),
        expected: vec![Some(id(0)), Some(id(1)), None],
    };
    let known = [Some(id(0)), Some(id(1)), None];
    let now = [holding(0, &abc), holding(1, &abc), blank()];

    // when
    let plan = plan_readmission(&view, &known, &now);

    // then
    assert!(plan.is_empty());
}

#[test]
fn plan_readmission__when_the_record_has_a_vacancy__then_fills_it_once() {
    // given: initialised while C was down
    let ab = MembershipRecord::new(1, [id(0), id(1)], 3, 0);
    let view = MembershipView {
        record: ab.clone(),
        expected: vec![Some(id(0)), Some(id(1)), None],
    };
    let now = [holding(0, &ab), holding(1, &ab), blank()];

    // when
    let plan = plan_readmission(&view, &[None, None, None], &now);

    // then
    assert_eq!(
        plan,
        vec![Readmission {
            node: 2,
            replaces: None,
            found: None,
        }]
    );
}

#[test]
fn digest__when_members_are_listed_in_another_order__then_is_the_same() {
    // given
    let one = MembershipRecord::new(1, [id(0), id(1), id(2)], 3, 0);
    let other = MembershipRecord::new(4, [id(2), id(0), id(1)], 3, 0);

    // then
    assert_eq!(one.digest(), other.digest());
    assert_ne!(one.digest(), record(1, &[0, 1, 3]).digest());
    assert_ne!(
        one.digest(),
        MembershipRecord::new(1, [id(0), id(1), id(2)], 3, 1).digest()
    );
}

fn node_strategy() -> impl Strategy<Value = NodeMembership> {
    let records = prop_oneof![
        Just(None),
        Just(Some(record(1, &[0, 1, 2]))),
        Just(Some(record(1, &[0, 1, 3]))),
        Just(Some(record(2, &[0, 1, 4]))),
    ];
    prop_oneof![
        1 => Just(NodeMembership::Unreachable),
        6 => (proptest::option::of(0u8..6), records).prop_map(|(server, record)| {
            NodeMembership::Answered {
                server_id: server.map(id),
                record,
            }
        }),
    ]
}

proptest! {
    #[test]
    fn decide__for_any_answers__then_a_joined_view_expects_distinct_members_after_a_quorum_answered(
        nodes in proptest::collection::vec(node_strategy(), 3),
    ) {
        // when
        let decision = decide_membership(&nodes, three(), 0);

        // then
        if let MembershipDecision::Join(view) = decision {
            let expected: Vec<&ServerId> = view.expected.iter().flatten().collect();
            let distinct: BTreeSet<&ServerId> = expected.iter().copied().collect();
            prop_assert_eq!(distinct.len(), expected.len());
            prop_assert!(expected.iter().all(|id| view.record.is_member(id)));
            let answered = nodes
                .iter()
                .filter(|node| matches!(node, NodeMembership::Answered { .. }))
                .count();
            prop_assert!(three().reached(answered));
        }
    }
}
