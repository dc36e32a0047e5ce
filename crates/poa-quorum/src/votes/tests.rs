//! Votes over distinct nodes, the committed block, the order among orphans, repair plans.

use proptest::prelude::*;

use super::*;

fn id(byte: u8) -> BlockId {
    BlockId::from_bytes([byte; 32])
}

const PARENT: BlockId = BlockId::from_bytes([0xaa; 32]);

fn any_block(_: &Candidate) -> bool {
    true
}

#[test]
fn committed__when_candidates_differ__then_quorum_beats_epoch_and_orphans_take_highest_epoch_then_smallest_id()
 {
    let quorum = Quorum::new(3, 0);

    // a quorum candidate is committed, whatever the epoch of an orphan beside it
    let mut votes = HeightVotes::default();
    votes.add(0, id(9), PARENT, Epoch::new(1));
    votes.add(1, id(9), PARENT, Epoch::new(1));
    votes.add(2, id(1), PARENT, Epoch::new(8));
    assert_eq!(votes.committed(quorum).map(|c| c.id), Some(id(9)));

    // no quorum: nothing committed; among orphans the highest epoch comes first
    let mut votes = HeightVotes::default();
    votes.add(0, id(9), PARENT, Epoch::new(3));
    votes.add(2, id(1), PARENT, Epoch::new(4));
    assert_eq!(votes.committed(quorum), None);
    assert_eq!(votes.highest_epoch(any_block).map(|c| c.id), Some(id(1)));

    // equal epochs: smallest id
    let mut votes = HeightVotes::default();
    votes.add(0, id(9), PARENT, Epoch::new(7));
    votes.add(1, id(4), PARENT, Epoch::new(7));
    assert_eq!(votes.highest_epoch(any_block).map(|c| c.id), Some(id(4)));
}

#[test]
fn votes__when_one_node_holds_the_same_block_twice__then_it_counts_once() {
    // given
    let quorum = Quorum::new(3, 0);
    let mut votes = HeightVotes::default();

    // when
    votes.add(0, id(5), PARENT, Epoch::new(1));
    votes.add(0, id(5), PARENT, Epoch::new(2));

    // then
    let only = votes.candidate(id(5)).unwrap();
    assert_eq!(only.nodes.len(), 1);
    assert_eq!(only.max_epoch, Epoch::new(2));
    assert_eq!(votes.committed(quorum), None);
}

#[test]
fn votes__when_same_block_has_different_epochs_on_every_node__then_committed_without_repair() {
    // given: the devnet livelock shape, 6 nodes, quorum 4
    let quorum = Quorum::new(6, 0);
    let mut votes = HeightVotes::default();
    for (node, epoch) in [(0, 268), (1, 268), (2, 268), (3, 269), (4, 270), (5, 270)] {
        votes.add(node, id(1), PARENT, Epoch::new(epoch));
    }

    // when
    let committed = votes.committed(quorum).unwrap();

    // then
    assert_eq!(committed.nodes.len(), 6);
    assert_eq!(
        plan_repair(quorum, &votes, committed, &BTreeSet::new(), false),
        None
    );
}

#[test]
fn plan_repair__when_the_block_is_short__then_targets_nodes_without_any_entry() {
    // given: 5 nodes, quorum 3; the block on node 0, another block on node 1, an entry that
    // failed verification on node 4
    let quorum = Quorum::new(5, 0);
    let mut votes = HeightVotes::default();
    votes.add(0, id(2), PARENT, Epoch::new(5));
    votes.add(1, id(1), PARENT, Epoch::new(4));
    let block = votes.candidate(id(2)).unwrap().clone();

    // when
    let plan = plan_repair(quorum, &votes, &block, &BTreeSet::from([4]), false).unwrap();

    // then
    assert_eq!(plan.pre_existing, 1);
    assert_eq!(plan.needed, 2);
    assert_eq!(plan.targets, vec![2, 3]);
}

#[test]
fn plan_repair__when_too_few_nodes_are_free__then_none() {
    // given: 3 nodes, the block on 0, the others hold other blocks
    let quorum = Quorum::new(3, 0);
    let mut votes = HeightVotes::default();
    votes.add(0, id(3), PARENT, Epoch::new(9));
    votes.add(1, id(1), PARENT, Epoch::new(1));
    votes.add(2, id(2), PARENT, Epoch::new(1));
    let block = votes.candidate(id(3)).unwrap().clone();

    // when / then
    assert_eq!(
        plan_repair(quorum, &votes, &block, &BTreeSet::new(), false),
        None
    );
}

#[test]
fn plan_repair__when_every_node_holds_another_orphan_and_none_can_be_committed__then_replaces_them()
{
    // given: three nodes, a different block of a failed publish on each (none on a quorum)
    let quorum = Quorum::new(3, 0);
    let mut votes = HeightVotes::default();
    votes.add(0, id(1), PARENT, Epoch::new(1));
    votes.add(1, id(2), PARENT, Epoch::new(2));
    votes.add(2, id(3), PARENT, Epoch::new(3));
    let winner = votes.highest_epoch(any_block).unwrap().clone();

    // when
    let refused = plan_repair(quorum, &votes, &winner, &BTreeSet::new(), false);
    let replacing = plan_repair(quorum, &votes, &winner, &BTreeSet::new(), true).unwrap();

    // then: without the proof nothing can be done; with it, one other block is replaced
    assert_eq!(refused, None);
    assert_eq!(replacing.targets, Vec::<NodeIndex>::new());
    assert_eq!(replacing.replacing, vec![(0, id(1))]);
    assert_eq!(replacing.all_targets().collect::<Vec<_>>(), vec![0]);
}

proptest! {
    /// Writers race to put different blocks at one height on random subsets of nodes; each
    /// node keeps the first block (the heights index). Whatever subset of nodes answers a
    /// reconciliation read, there is never more than one committed block, and any block
    /// stored on a quorum of nodes is seen by every quorum of answers; a repair never brings a
    /// second block to a quorum.
    #[test]
    fn votes__for_any_write_race_and_any_answering_nodes__then_at_most_one_committed_block(
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
                    votes.add(node, block, PARENT, epoch);
                }
            }
        }
        if let Some(committed) = votes.committed(quorum) {
            prop_assert!(on_quorum.contains(&committed.id));
        }
        // Repair the highest-epoch block the way the scripts would: a node stores it only if
        // it holds nothing at this height or already holds it. It never becomes a second
        // committed block.
        if let Some(orphan) = votes.highest_epoch(any_block).cloned()
            && let Some(plan) = plan_repair(quorum, &votes, &orphan, &BTreeSet::new(), false)
        {
            let accepted = plan
                .targets
                .iter()
                .filter(|target| stored[**target].is_none_or(|(b, _)| b == orphan.id))
                .count();
            if quorum.reached(plan.pre_existing + accepted) {
                prop_assert!(on_quorum.is_empty() || on_quorum.contains(&orphan.id));
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

#[test]
fn may_replace_after__when_every_free_node_stores_the_block__then_only_then_allows_it() {
    use crate::write::WriteReply::{AlreadyStored, Failed, Fenced, HeightRefused, Written};

    assert!(may_replace_after(&[], 0));
    assert!(may_replace_after(&[Written, AlreadyStored], 2));
    assert!(!may_replace_after(&[Written], 2), "a reply is missing");
    for refusal in [HeightRefused, Fenced, Failed] {
        assert!(!may_replace_after(&[Written, refusal], 2), "{refusal:?}");
    }
}
