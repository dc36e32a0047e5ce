//! The sweep's window, its filter and its walk from tables, and for any honest history (copies
//! lost on any nodes, orphans of failed publishes, some of them extending each other, nodes
//! that do not answer): it never copies a block other than the committed one, and it proves
//! every committed block that the chain above it still names.

use poa_ports::Epoch;
use proptest::prelude::*;

use super::*;
use crate::fixtures::{chain, height, id};

/// A view over three nodes (quorum 2) in which every node answered.
fn view_of_three() -> LogView {
    let mut view = LogView::new(Quorum::new(3, 0));
    for node in 0..3 {
        view.answered(node, crate::Coverage::Complete);
    }
    view
}

/// Adds the committed chain's block at `at` on `nodes`.
fn hold(view: &mut LogView, at: u64, nodes: &[NodeIndex]) {
    for node in nodes {
        view.add(*node, height(at), chain(at), chain(at - 1), Epoch::new(1));
    }
}

fn kinds(walk: &WindowWalk) -> Vec<(u64, &'static str)> {
    walk.decisions
        .iter()
        .map(|(at, decision)| {
            let kind = match decision {
                WindowDecision::OnQuorum => "on quorum",
                WindowDecision::Short(_) => "short",
                WindowDecision::Missing { .. } => "missing",
                WindowDecision::Unproven => "unproven",
                WindowDecision::Contradicted { .. } => "contradicted",
            };
            (at.get(), kind)
        })
        .collect()
}

#[test]
fn sweep_window__for_any_stream_length__then_half_of_it_and_at_least_one() {
    assert_eq!(sweep_window(1000), 500);
    assert_eq!(sweep_window(3), 1);
    assert_eq!(sweep_window(1), 1);
    assert_eq!(sweep_window(0), 1);
}

#[test]
fn window_bottom__when_the_chain_is_shorter_or_longer_than_the_window__then_height_one_or_the_window_below_the_head()
 {
    assert_eq!(window_bottom(height(0), 500), None);
    assert_eq!(window_bottom(height(10), 500), Some(height(1)));
    assert_eq!(window_bottom(height(1000), 500), Some(height(501)));
    assert_eq!(window_bottom(height(7), 1), Some(height(7)));
}

#[test]
fn short_heights__when_a_height_is_named_by_fewer_than_a_quorum__then_listed_lowest_first() {
    // given: quorum 2 of 3
    let mut claims = IndexClaims::new(Quorum::new(3, 0));
    for node in 0..3 {
        claims.claim(node, height(1), chain(1));
    }
    claims.claim(0, height(2), chain(2));
    claims.claim(0, height(3), chain(3));
    claims.claim(1, height(3), id(3, 5));
    claims.claim(0, height(5), chain(5));
    claims.claim(2, height(5), chain(5));
    // one node naming a block twice counts once
    claims.claim(1, height(6), chain(6));
    claims.claim(1, height(6), chain(6));

    // when
    let short = claims.short_heights(height(1), height(6));

    // then: two blocks on one node each, and a height named by nobody, are short too
    assert_eq!(short, vec![height(2), height(3), height(4), height(6)]);
}

#[test]
fn verified_range__when_short_heights_are_found__then_from_the_highest_and_the_height_above_down_to_a_short_one()
 {
    let heights = |values: &[u64]| values.iter().map(|v| height(*v)).collect::<Vec<_>>();
    // the height above the highest short one names its committed block
    assert_eq!(
        verified_range(height(1), height(100), &heights(&[10, 11, 40]), 8),
        Some((height(40), height(41)))
    );
    // within the bound, down to the lowest short height
    assert_eq!(
        verified_range(height(1), height(100), &heights(&[36, 40]), 8),
        Some((height(36), height(41)))
    );
    // the step's top is short: nothing above it within the step
    assert_eq!(
        verified_range(height(1), height(100), &heights(&[95, 96, 100]), 8),
        Some((height(95), height(100)))
    );
    // bounded: at most `max_heights` heights
    let long: Vec<u64> = (1..=60).collect();
    assert_eq!(
        verified_range(height(1), height(100), &heights(&long), 33),
        Some((height(29), height(61)))
    );
    assert_eq!(verified_range(height(1), height(100), &[], 8), None);
}

#[test]
fn walk_window_down__when_every_height_is_on_a_quorum__then_on_quorum_and_names_the_block_below() {
    // given
    let mut view = view_of_three();
    for at in 3..=6 {
        hold(&mut view, at, &[0, 1, 2]);
    }

    // when
    let walk = walk_window_down(&view, height(6), height(3), Some(chain(6)));

    // then
    assert_eq!(
        kinds(&walk),
        vec![
            (6, "on quorum"),
            (5, "on quorum"),
            (4, "on quorum"),
            (3, "on quorum")
        ]
    );
    assert_eq!(walk.named_below, Some(chain(2)));
}

#[test]
fn walk_window_down__when_committed_blocks_lost_copies__then_short_while_the_chain_above_names_them()
 {
    // given: the head 8 is on one node; 7 and 6 on one node each, 5 on a quorum, 4 on one node
    let mut view = view_of_three();
    hold(&mut view, 8, &[0]);
    hold(&mut view, 7, &[0]);
    hold(&mut view, 6, &[2]);
    hold(&mut view, 5, &[0, 1]);
    hold(&mut view, 4, &[1]);

    // when
    let walk = walk_window_down(&view, height(8), height(4), Some(chain(8)));

    // then: each is named by the committed block above it
    assert_eq!(
        kinds(&walk),
        vec![
            (8, "short"),
            (7, "short"),
            (6, "short"),
            (5, "on quorum"),
            (4, "short")
        ]
    );
    assert!(
        matches!(&walk.decisions[2].1, WindowDecision::Short(block) if block.id == chain(6) && block.nodes.len() == 1)
    );
    assert_eq!(walk.named_below, Some(chain(3)));
}

#[test]
fn walk_window_down__when_nothing_committed_names_a_block_below_quorum__then_never_short() {
    // given: 9 and 10 lost their committed blocks everywhere, and one node holds orphans there
    // (the one at 10 extends the one at 9); 8 holds an orphan on one node and the committed
    // block on another; the walk starts at 11, on a quorum
    let mut view = view_of_three();
    hold(&mut view, 11, &[0, 1, 2]);
    view.add(0, height(10), id(10, 7), id(9, 7), Epoch::new(3));
    view.add(0, height(9), id(9, 7), chain(8), Epoch::new(3));
    view.add(0, height(8), id(8, 4), chain(7), Epoch::new(5));
    hold(&mut view, 8, &[1]);
    hold(&mut view, 7, &[1, 2]);

    // when
    let walk = walk_window_down(&view, height(11), height(7), None);

    // then: 10's committed block is named but held nowhere; below it nothing names one, so
    // neither orphan nor the committed copy at 8 is proven; 7 is on a quorum again
    assert_eq!(
        kinds(&walk),
        vec![
            (11, "on quorum"),
            (10, "missing"),
            (9, "unproven"),
            (8, "unproven"),
            (7, "on quorum")
        ]
    );
    assert_eq!(
        walk.decisions[1].1,
        WindowDecision::Missing { id: chain(10) }
    );
}

#[test]
fn walk_window_down__when_a_quorum_holds_another_block_than_the_one_named__then_stops_contradicted()
{
    // given
    let mut view = view_of_three();
    hold(&mut view, 5, &[0, 1]);
    view.add(0, height(4), id(4, 2), chain(3), Epoch::new(1));
    view.add(1, height(4), id(4, 2), chain(3), Epoch::new(1));
    hold(&mut view, 3, &[0]);

    // when
    let walk = walk_window_down(&view, height(5), height(3), Some(chain(5)));

    // then
    assert!(walk.contradicted());
    assert_eq!(
        walk.decisions.last().map(|(_, decision)| decision.clone()),
        Some(WindowDecision::Contradicted {
            held: id(4, 2),
            named: chain(4)
        })
    );
    assert_eq!(walk.decisions.len(), 2);
    assert_eq!(walk.named_below, None);
}

/// One honest history of the window: the committed chain 1..=tip with its surviving copies,
/// orphans of failed publishes below quorum, and the nodes that answer the read.
#[derive(Debug, Clone)]
struct History {
    nodes: usize,
    budget: usize,
    copies: Vec<Vec<bool>>,
    orphans: Vec<(u64, u8, bool, Vec<bool>)>,
    answering: Vec<bool>,
}

fn histories() -> impl Strategy<Value = History> {
    (3usize..6, 0usize..2, 1usize..12).prop_flat_map(|(nodes, budget, tip)| {
        let quorum = Quorum::new(nodes, budget).size();
        let flags = move || proptest::collection::vec(any::<bool>(), nodes);
        (
            proptest::collection::vec(flags(), tip),
            proptest::collection::vec((1..=tip as u64, 1u8..4, any::<bool>(), flags()), 0..8),
            proptest::sample::subsequence((0..nodes).collect::<Vec<_>>(), quorum..=nodes),
        )
            .prop_map(move |(copies, orphans, answering)| History {
                nodes,
                budget,
                copies,
                orphans,
                answering: (0..nodes).map(|node| answering.contains(&node)).collect(),
            })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn walk_window_down__for_any_honest_history__then_never_copies_a_block_other_than_the_committed_one(
        history in histories(),
    ) {
        let quorum = Quorum::new(history.nodes, history.budget);
        let tip = history.copies.len() as u64;
        // Each node holds at most one block per height: the committed one where it kept a
        // copy, else maybe an orphan, which extends the committed block below or another
        // orphan; an orphan never reaches a quorum (it would have been committed).
        let mut held: Vec<std::collections::BTreeMap<u64, (BlockId, BlockId)>> =
            vec![Default::default(); history.nodes];
        for (index, copies) in history.copies.iter().enumerate() {
            let at = index as u64 + 1;
            for (node, kept) in copies.iter().enumerate() {
                if *kept {
                    held[node].insert(at, (chain(at), chain(at - 1)));
                }
            }
        }
        for (at, variant, on_orphan, on) in &history.orphans {
            let parent = if *on_orphan { id(at - 1, *variant) } else { chain(at - 1) };
            for (node, holds) in on.iter().enumerate() {
                let holding = held.iter().filter(|blocks| blocks.get(at).is_some_and(|(block, _)| *block == id(*at, *variant))).count();
                if *holds && !held[node].contains_key(at) && !quorum.reached(holding + 1) {
                    held[node].insert(*at, (id(*at, *variant), parent));
                }
            }
        }
        let mut view = LogView::new(quorum);
        for node in (0..history.nodes).filter(|node| history.answering[*node]) {
            view.answered(node, crate::Coverage::Complete);
            for (at, (block, parent)) in &held[node] {
                view.add(node, height(*at), *block, *parent, Epoch::new(1));
            }
        }

        let walk = walk_window_down(&view, height(tip), height(1), Some(chain(tip)));

        let answered_copy = |at: u64| (0..history.nodes).any(|node| {
            history.answering[node] && held[node].get(&at).is_some_and(|(block, _)| *block == chain(at))
        });
        prop_assert!(!walk.contradicted(), "{:?}", walk);
        prop_assert_eq!(walk.decisions.len() as u64, tip);
        for (at, decision) in &walk.decisions {
            let at = at.get();
            if let WindowDecision::Short(block) = decision {
                prop_assert_eq!(block.id, chain(at), "would copy another block at {}", at);
            }
            if let WindowDecision::Missing { id } = decision {
                prop_assert_eq!(*id, chain(at));
            }
            // every committed block the chain above still names is proven
            if (at..=tip).all(answered_copy) {
                prop_assert!(
                    matches!(decision, WindowDecision::OnQuorum | WindowDecision::Short(_)),
                    "height {} is {:?} although the chain above names it", at, decision
                );
            }
        }
    }
}
