//! The quorum table and the overlap property.

use proptest::prelude::*;

use super::*;

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
}
