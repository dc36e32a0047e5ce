//! The walk's decisions from tables, and for any honest history (trimmed streams, capped reads,
//! nodes that lost their data within the budget, entries that fail verification): it never
//! takes a block other than the committed one.

use std::collections::BTreeSet;

use proptest::prelude::*;

use super::*;
use crate::fixtures::{chain, epoch, height, id};
use crate::script::{self, BlockWrite, NodeState};
use crate::votes::plan_repair;

/// A view over three nodes (quorum 2) where every node answered with a complete read.
fn view_of_three() -> LogView {
    let mut view = LogView::new(Quorum::new(3, 0));
    for node in 0..3 {
        view.answered(node, Coverage::Complete);
    }
    view
}

#[test]
fn decide__when_a_quorum_holds_a_block_extending_the_head__then_committed_and_otherwise_diverged() {
    // given
    let mut view = view_of_three();
    view.add(0, height(5), id(5, 0), id(4, 0), epoch(1));
    view.add(1, height(5), id(5, 0), id(4, 0), epoch(1));

    // when / then
    assert!(matches!(
        view.decide(height(5), id(4, 0)),
        HeightDecision::Committed(block) if block.id == id(5, 0)
    ));
    assert_eq!(
        view.decide(height(5), id(4, 9)),
        HeightDecision::Diverged { id: id(5, 0) }
    );
}

#[test]
fn decide__when_a_far_behind_reader_sees_a_stale_orphan_below_trimmed_streams__then_gap_not_orphan()
{
    // given: node 0 still holds an old orphan at the reader's next height; the others trimmed
    // their streams long ago and hold only blocks far above
    let mut view = view_of_three();
    view.add(0, height(14), id(14, 7), id(13, 0), epoch(2));
    view.add(1, height(900), id(900, 0), id(899, 0), epoch(9));
    view.add(2, height(903), id(903, 0), id(902, 0), epoch(9));

    // when
    let decision = view.decide(height(14), id(13, 0));

    // then
    assert_eq!(decision, HeightDecision::Gap);
}

#[test]
fn decide__when_a_short_block_is_extended_by_a_block_above__then_proven() {
    // given: the committed block at 5 lost copies; its child at 6 is on a quorum
    let mut view = view_of_three();
    view.add(0, height(5), id(5, 0), id(4, 0), epoch(1));
    view.add(1, height(5), id(5, 3), id(4, 0), epoch(4));
    for node in 0..2 {
        view.add(node, height(6), id(6, 0), id(5, 0), epoch(1));
    }

    // when / then: the extended block wins over a higher-epoch orphan
    assert!(matches!(
        view.decide(height(5), id(4, 0)),
        HeightDecision::Proven(block) if block.id == id(5, 0)
    ));
}

#[test]
fn decide__when_the_extended_block_does_not_extend_the_head_or_two_are_extended__then_diverged_or_conflicting()
 {
    // given
    let mut diverged = view_of_three();
    diverged.add(0, height(5), id(5, 1), id(4, 1), epoch(1));
    diverged.add(1, height(6), id(6, 1), id(5, 1), epoch(1));
    let mut conflicting = view_of_three();
    conflicting.add(0, height(5), id(5, 1), id(4, 0), epoch(1));
    conflicting.add(1, height(5), id(5, 2), id(4, 0), epoch(1));
    conflicting.add(0, height(6), id(6, 1), id(5, 1), epoch(1));
    conflicting.add(1, height(6), id(6, 2), id(5, 2), epoch(1));

    // when / then
    assert_eq!(
        diverged.decide(height(5), id(4, 0)),
        HeightDecision::Diverged { id: id(5, 1) }
    );
    assert_eq!(
        conflicting.decide(height(5), id(4, 0)),
        HeightDecision::Conflicting
    );
}

#[test]
fn decide__when_nothing_is_above__then_the_highest_epoch_orphan_extending_the_head_or_end() {
    // given: two orphans extend the head, one does not (a foreign parent)
    let mut view = view_of_three();
    view.add(0, height(5), id(5, 1), id(4, 0), epoch(3));
    view.add(1, height(5), id(5, 2), id(4, 0), epoch(2));
    view.add(2, height(5), id(5, 3), id(4, 9), epoch(9));

    // when / then
    assert!(matches!(
        view.decide(height(5), id(4, 0)),
        HeightDecision::Orphan(block) if block.id == id(5, 1)
    ));
    assert_eq!(view.decide(height(6), id(5, 1)), HeightDecision::End);
}

#[test]
fn decide__when_only_refused_entries_are_above__then_they_are_no_evidence() {
    // given: an entry far above that failed verification, on one node
    let mut view = view_of_three();
    view.refuse(0, height(40));

    // when / then
    assert_eq!(view.decide(height(5), id(4, 0)), HeightDecision::End);
    assert_eq!(view.refused_at(height(40)), BTreeSet::from([0]));
}

#[test]
fn decide__when_entries_that_fail_verification_hold_the_height_on_too_many_nodes__then_blocked() {
    // given: garbage at the next height on two of three nodes (quorum 2): only one node is left
    let mut blocked = view_of_three();
    blocked.refuse(0, height(5));
    blocked.add(1, height(5), id(5, 3), id(4, 9), epoch(1));
    let mut one = view_of_three();
    one.refuse(0, height(5));

    // when / then
    assert_eq!(
        blocked.decide(height(5), id(4, 0)),
        HeightDecision::Blocked {
            occupied: BTreeSet::from([0, 1])
        }
    );
    assert_eq!(one.decide(height(5), id(4, 0)), HeightDecision::End);
}

#[test]
fn decide__when_entries_that_fail_verification_leave_an_orphan_too_few_nodes__then_blocked_not_orphan()
 {
    // given: the leader's own block on node 2, garbage on nodes 0 and 1 (quorum 2 of 3)
    let mut blocked = view_of_three();
    blocked.refuse(0, height(5));
    blocked.refuse(1, height(5));
    blocked.add(2, height(5), id(5, 0), id(4, 0), epoch(1));
    let mut repairable = view_of_three();
    repairable.refuse(0, height(5));
    repairable.add(2, height(5), id(5, 0), id(4, 0), epoch(1));

    // when / then: it could never reach a quorum; with garbage on one node it still can
    assert_eq!(
        blocked.decide(height(5), id(4, 0)),
        HeightDecision::Blocked {
            occupied: BTreeSet::from([0, 1])
        }
    );
    assert!(matches!(
        repairable.decide(height(5), id(4, 0)),
        HeightDecision::Orphan(_)
    ));
}

#[test]
fn may_replace_at__when_every_node_answered_and_no_block_is_on_a_majority__then_true_else_false() {
    // given: one orphan on each of three nodes, every read complete
    let mut orphans = view_of_three();
    for node in 0..3u8 {
        orphans.add(
            usize::from(node),
            height(5),
            id(5, node),
            id(4, 0),
            epoch(u64::from(node)),
        );
    }
    let mut majority = view_of_three();
    majority.add(0, height(5), id(5, 1), id(4, 0), epoch(1));
    majority.add(1, height(5), id(5, 1), id(4, 0), epoch(1));
    let mut partial = LogView::new(Quorum::new(3, 0));
    partial.answered(0, Coverage::Complete);
    partial.answered(1, Coverage::Complete);
    let mut above = view_of_three();
    above.add(0, height(9), id(9, 0), id(8, 0), epoch(1));

    // when / then: only the first may be replaced
    assert!(orphans.may_replace_at(height(5)));
    assert!(!majority.may_replace_at(height(5)));
    assert!(!partial.may_replace_at(height(5)));
    assert!(!above.may_replace_at(height(5)));
}

#[test]
fn decide__when_capped_reads_do_not_reach_a_height__then_uncovered() {
    // given: nodes 1 and 2 returned as many entries as asked, up to height 6
    let mut view = LogView::new(Quorum::new(3, 0));
    view.answered(0, Coverage::Complete);
    view.answered(1, Coverage::UpTo(height(6)));
    view.answered(2, Coverage::UpTo(height(6)));
    view.add(0, height(7), id(7, 1), id(6, 0), epoch(1));

    // when / then
    assert_eq!(view.decide(height(7), id(6, 0)), HeightDecision::Uncovered);
}

/// One history of the log: a committed chain, orphans of failed publishes, per-node trimming,
/// nodes wiped within the budget, and entries that fail verification.
#[derive(Debug, Clone)]
struct History {
    nodes: usize,
    budget: usize,
    committed_on: Vec<Vec<bool>>,
    orphans: Vec<(u64, u8, u64, Vec<bool>)>,
    cuts: Vec<u64>,
    wiped: Vec<bool>,
    refused: Vec<(usize, u64)>,
    local: u64,
    answering: Vec<bool>,
    window: usize,
}

fn histories() -> impl Strategy<Value = History> {
    (3usize..6, 0usize..2, 1u64..10).prop_flat_map(|(nodes, budget, tip)| {
        let quorum = Quorum::new(nodes, budget).size();
        let flags = move || proptest::collection::vec(any::<bool>(), nodes);
        (
            proptest::collection::vec(
                proptest::sample::subsequence((0..nodes).collect::<Vec<_>>(), quorum..=nodes),
                usize::try_from(tip).unwrap_or(1),
            ),
            proptest::collection::vec((1..=tip + 1, 1u8..4, 0u64..20, flags()), 0..6),
            proptest::collection::vec(1..=tip, nodes),
            proptest::collection::vec(any::<bool>(), nodes),
            proptest::collection::vec((0..nodes, 1..=tip + 2), 0..3),
            0..=tip,
            proptest::sample::subsequence((0..nodes).collect::<Vec<_>>(), quorum..=nodes),
            1usize..5,
        )
            .prop_map(
                move |(holders, orphans, cuts, wiped, refused, local, answering, window)| {
                    let committed_on = holders
                        .into_iter()
                        .map(|set| (0..nodes).map(|node| set.contains(&node)).collect())
                        .collect();
                    let mut wiped: Vec<bool> = wiped;
                    let mut budget_left = budget;
                    for flag in &mut wiped {
                        if *flag && budget_left > 0 {
                            budget_left -= 1;
                        } else {
                            *flag = false;
                        }
                    }
                    History {
                        nodes,
                        budget,
                        committed_on,
                        orphans,
                        cuts,
                        wiped,
                        refused,
                        local,
                        answering: (0..nodes).map(|node| answering.contains(&node)).collect(),
                        window,
                    }
                },
            )
    })
}

/// Builds each node's entries: `(height, id, parent, epoch)`, one block per height per node,
/// committed blocks first (they won their heights), trimmed below each node's cut, wiped nodes
/// empty. Returns the entries and each node's script state (for repairs).
#[allow(clippy::type_complexity)]
fn build(history: &History) -> (Vec<Vec<(u64, BlockId, BlockId, u64)>>, Vec<NodeState<u8>>) {
    let tip = u64::try_from(history.committed_on.len()).unwrap_or(0);
    let mut entries: Vec<Vec<(u64, BlockId, BlockId, u64)>> = vec![Vec::new(); history.nodes];
    let mut states: Vec<NodeState<u8>> = vec![NodeState::default(); history.nodes];
    for (index, holders) in history.committed_on.iter().enumerate() {
        let height = u64::try_from(index).unwrap_or(0) + 1;
        for (node, holds) in holders.iter().enumerate() {
            if *holds {
                entries[node].push((height, chain(height), chain(height - 1), 1));
            }
        }
    }
    let quorum = Quorum::new(history.nodes, history.budget);
    for (height, variant, epoch, on) in &history.orphans {
        for (node, holds) in on.iter().enumerate() {
            let taken = entries[node].iter().any(|(h, ..)| h == height);
            // Above the chain an orphan stays below quorum, or it would be a committed block;
            // at a committed height the quorum holding the committed block leaves no room.
            let holding = entries
                .iter()
                .filter(|e| e.iter().any(|(h, ..)| h == height))
                .count();
            let room = *height <= tip || !quorum.reached(holding + 1);
            if *holds && !taken && room {
                entries[node].push((*height, id(*height, *variant), chain(height - 1), *epoch));
            }
        }
    }
    for (node, node_entries) in entries.iter_mut().enumerate() {
        let state = &mut states[node];
        state.owner = Some(0);
        if history.wiped[node] {
            node_entries.clear();
            continue;
        }
        for (height, block, ..) in node_entries.iter() {
            state.heights.insert(BlockHeight::new(*height), *block);
        }
        let cut = history.cuts[node];
        let top = node_entries.iter().map(|(h, ..)| *h).max().unwrap_or(0);
        let cut = cut.min(top);
        if cut > 1 {
            state.trim_floor = Some(BlockHeight::new(cut - 1));
            state.heights.retain(|h, _| h.get() >= cut);
        }
        node_entries.retain(|(h, ..)| *h >= cut);
        node_entries.sort_by_key(|(h, ..)| *h);
    }
    (entries, states)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn walk__for_any_honest_history__then_never_takes_a_block_other_than_the_committed_one(
        history in histories(),
    ) {
        let quorum = Quorum::new(history.nodes, history.budget);
        let tip = u64::try_from(history.committed_on.len()).unwrap_or(0);
        let (entries, mut states) = build(&history);
        let next = history.local + 1;

        // The read: each answering node returns its first `window` entries from `next` and its
        // top entry; garbage entries (extra entries that fail verification) take their place in
        // the read like any entry.
        let mut view = LogView::new(quorum);
        for node in (0..history.nodes).filter(|node| history.answering[*node]) {
            let garbage = BlockId::from_bytes([0xee; 32]);
            let mut rows: Vec<(u64, BlockId, BlockId, u64)> = entries[node]
                .iter()
                .copied()
                .chain(history.refused.iter().filter(|(n, _)| *n == node).map(|(_, h)| (*h, garbage, garbage, 0)))
                .filter(|(h, ..)| *h >= next)
                .collect();
            rows.sort_by_key(|(h, ..)| *h);
            let returned: Vec<_> = rows.iter().take(history.window).copied().collect();
            let coverage = if returned.len() == history.window {
                Coverage::UpTo(BlockHeight::new(returned.last().map_or(next, |(h, ..)| *h)))
            } else {
                Coverage::Complete
            };
            view.answered(node, coverage);
            for (height, block, parent, written) in returned.into_iter().chain(rows.last().copied()) {
                if block == garbage {
                    view.refuse(node, BlockHeight::new(height));
                } else {
                    view.add(node, BlockHeight::new(height), block, parent, Epoch::new(written));
                }
            }
        }

        // The walk as a leader runs it; a repair is applied with the scripts' own rule.
        let mut parent = chain(history.local);
        let mut at = next;
        loop {
            let decision = view.decide(BlockHeight::new(at), parent);
            let taken = match decision {
                HeightDecision::Committed(block) | HeightDecision::Proven(block) => block,
                HeightDecision::Orphan(block) => {
                    // Decision rule: below the highest committed height an orphan is never
                    // chosen, since the committed chain above is visible in the tops of the
                    // answers. Garbage can take the top of every answer and hide it; then only
                    // the scripts keep the repair from reaching a quorum (checked below).
                    let garbage_above = history.refused.iter().any(|(_, h)| *h > at);
                    prop_assert!(at >= tip || garbage_above, "orphan chosen at {at} below the tip {tip}");
                    let votes = view.votes(BlockHeight::new(at)).cloned().unwrap_or_default();
                    let occupied = view.refused_at(BlockHeight::new(at));
                    let replaceable = view.may_replace_at(BlockHeight::new(at));
                    let Some(plan) = plan_repair(quorum, &votes, &block, &occupied, replaceable) else { break };
                    let writes = plan.targets.iter().map(|target| (*target, None))
                        .chain(plan.replacing.iter().map(|(target, old)| (*target, Some(*old))));
                    let accepted = writes.filter(|(target, replaces)| {
                        script::write_block(&mut states[*target], BlockWrite {
                            token: &0,
                            epoch: Epoch::new(99),
                            height: BlockHeight::new(at),
                            id: block.id,
                            kept_heights: usize::MAX,
                            replaces: *replaces,
                        }).stored()
                    }).count();
                    if !quorum.reached(plan.pre_existing + accepted) {
                        break;
                    }
                    block
                }
                _ => break,
            };
            if at <= tip {
                prop_assert_eq!(taken.id, chain(at), "took another block at {}", at);
            }
            parent = taken.id;
            at += 1;
        }
    }
}
