//! The scripts' rules: promote with the caller's epoch floor, write_block's checks in order,
//! and for any sequence of leaderships, releases that fail, expiries and wiped nodes, a process
//! never leads twice with the same epoch.

use proptest::prelude::*;

use super::*;
use crate::quorum::Quorum;

fn id(byte: u8) -> BlockId {
    BlockId::from_bytes([byte; 32])
}

fn write(
    token: &u8,
    epoch: u64,
    height: u64,
    block: u8,
    kept_heights: usize,
) -> BlockWrite<'_, u8> {
    BlockWrite {
        token,
        epoch: Epoch::new(epoch),
        height: BlockHeight::new(height),
        id: id(block),
        kept_heights,
        replaces: None,
    }
}

#[test]
fn promote__when_free_held_or_lingering__then_grants_refuses_or_starts_a_new_epoch() {
    // given
    let mut node = NodeState::<u8>::default();

    // when / then: free -> epoch 1; the same leadership again -> the same epoch
    assert_eq!(
        promote(&mut node, &1, Epoch::new(0)),
        PromoteAnswer::Granted(Epoch::new(1))
    );
    assert_eq!(
        promote(&mut node, &1, Epoch::new(0)),
        PromoteAnswer::Granted(Epoch::new(1))
    );
    // another token: refused
    assert_eq!(
        promote(&mut node, &2, Epoch::new(0)),
        PromoteAnswer::LockHeld
    );
    // the key of this token lingers (a release that never arrived) and the caller already led
    // at epoch 1: a new leadership, a new epoch
    assert_eq!(
        promote(&mut node, &1, Epoch::new(1)),
        PromoteAnswer::Granted(Epoch::new(2))
    );
    // a node that lost its data is raised above the caller's floor
    let mut wiped = NodeState::<u8>::default();
    assert_eq!(
        promote(&mut wiped, &1, Epoch::new(7)),
        PromoteAnswer::Granted(Epoch::new(8))
    );
}

#[test]
fn write_block__when_checks_fail_in_turn__then_answers_in_the_scripts_order() {
    // given: token 1 holds the lease at epoch 3
    let mut node = NodeState::<u8> {
        owner: Some(1),
        epoch: Epoch::new(3),
        ..NodeState::default()
    };

    // when / then
    assert_eq!(
        write_block(&mut node, write(&2, 3, 1, 1, 10)),
        WriteAnswer::NotOwner
    );
    assert_eq!(
        write_block(&mut node, write(&1, 2, 1, 1, 10)),
        WriteAnswer::StaleEpoch
    );
    assert_eq!(
        write_block(&mut node, write(&1, 4, 1, 1, 10)),
        WriteAnswer::Written
    );
    assert_eq!(node.epoch, Epoch::new(4));
    assert_eq!(
        write_block(&mut node, write(&1, 4, 1, 1, 10)),
        WriteAnswer::AlreadyStored
    );
    assert_eq!(
        write_block(&mut node, write(&1, 5, 1, 2, 10)),
        WriteAnswer::HeightExists
    );
    // the heal upward stays although the write was refused
    assert_eq!(node.epoch, Epoch::new(5));
}

#[test]
fn write_block__when_a_height_left_the_index__then_refuses_it_for_good() {
    // given: a node that keeps two heights
    let mut node = NodeState::<u8> {
        owner: Some(1),
        ..NodeState::default()
    };
    for height in 1..=3 {
        assert_eq!(
            write_block(&mut node, write(&1, 1, height, 1, 2)),
            WriteAnswer::Written
        );
    }

    // when
    let below = write_block(&mut node, write(&1, 1, 1, 9, 2));
    let lower_still = write_block(&mut node, write(&1, 1, 0, 9, 2));

    // then
    assert_eq!(below, WriteAnswer::HeightTrimmed);
    assert_eq!(lower_still, WriteAnswer::HeightTrimmed);
    assert_eq!(node.trim_floor, Some(BlockHeight::new(1)));
    assert_eq!(node.heights.len(), 2);
}

/// One step of the lease history of a process `1` against a rival `2` on three nodes.
#[derive(Debug, Clone)]
enum Step {
    /// Process 1 tries to acquire on these nodes; it leads if a quorum grants.
    Acquire(Vec<bool>),
    /// Process 1 releases; the release reaches only these nodes.
    Release(Vec<bool>),
    /// The rival takes the lease on these nodes where it is free, then lets it expire.
    Rival(Vec<bool>),
    /// The key expires on one node.
    Expire(usize),
    /// One node loses every key.
    Wipe(usize),
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    let nodes = || proptest::collection::vec(any::<bool>(), 3);
    proptest::collection::vec(
        prop_oneof![
            nodes().prop_map(Step::Acquire),
            nodes().prop_map(Step::Release),
            nodes().prop_map(Step::Rival),
            (0usize..3).prop_map(Step::Expire),
            (0usize..3).prop_map(Step::Wipe),
        ],
        1..30,
    )
}

proptest! {
    #[test]
    fn promote__for_any_leases_releases_expiries_and_wiped_nodes__then_each_leadership_gets_a_higher_epoch(
        history in steps(),
    ) {
        let quorum = Quorum::new(3, 0);
        let mut nodes = vec![NodeState::<u8>::default(); 3];
        // the highest epoch process 1 has led with (its floor), and whether it leads now
        let mut floor = Epoch::new(0);
        let mut leading = false;
        for step in history {
            match step {
                Step::Acquire(reach) if !leading => {
                    let granted: Vec<Epoch> = nodes
                        .iter_mut()
                        .zip(&reach)
                        .filter(|(_, reached)| **reached)
                        .filter_map(|(node, _)| match promote(node, &1, floor) {
                            PromoteAnswer::Granted(epoch) => Some(epoch),
                            PromoteAnswer::LockHeld => None,
                        })
                        .collect();
                    if quorum.reached(granted.len()) {
                        let epoch = granted.iter().copied().max().unwrap_or_default();
                        prop_assert!(epoch > floor, "led again at {epoch:?}, not above {floor:?}");
                        floor = epoch;
                        leading = true;
                    } else {
                        for node in nodes.iter_mut().filter(|node| node.owner == Some(1)) {
                            node.owner = None;
                        }
                    }
                }
                Step::Acquire(_) => {}
                Step::Release(reach) => {
                    leading = false;
                    for (node, reached) in nodes.iter_mut().zip(reach) {
                        if reached && node.owner == Some(1) {
                            node.owner = None;
                        }
                    }
                }
                Step::Rival(reach) => {
                    for (node, reached) in nodes.iter_mut().zip(reach) {
                        if reached {
                            let _ = promote(node, &2, Epoch::new(0));
                        }
                        if node.owner == Some(2) {
                            node.owner = None;
                        }
                    }
                }
                Step::Expire(node) => {
                    if nodes[node].owner == Some(1) {
                        leading = false;
                    }
                    nodes[node].owner = None;
                }
                Step::Wipe(node) => nodes[node] = NodeState::default(),
            }
        }
    }
}
