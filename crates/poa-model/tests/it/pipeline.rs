//! The commit pipeline's stories replayed step by step through the model's own `next_state`: a
//! leader with two blocks on a quorum and neither committed, then a failed commit, a crash, or
//! (under a mutation) commits that skip the pipeline's order. Each is checked against the
//! protocol and against the mutation, so the README's explanation cannot drift from the model.

#![allow(non_snake_case)]

use poa_model::stateright::Model;
use poa_model::{
    Action, Block, BlockRef, ModelConfig, Mutation, ProtocolModel, Record, Start, State, Token,
    WriteMsg, chains_are_prefixes_of_the_quorum_chain, progress_possible,
};
use poa_ports::Epoch;

use crate::scenarios::{
    NODE_A, NODE_B, X, chain_of, heights_on, p0_leads_reading_a_and_b, replay_from,
};

/// X2: P0's second block, at height 2 on X.
const X2: Block = Block {
    height: 2,
    producer: 0,
    attempt: 1,
    parent: Some(BlockRef {
        producer: 0,
        attempt: 0,
    }),
};

/// The pipeline's bound from empty nodes, with one crash allowed and a third block to seal so
/// P0 may lead again after it published two.
fn pipeline(mutation: Option<Mutation>) -> ModelConfig {
    ModelConfig {
        start: Start::Empty,
        max_crashes: 1,
        max_attempts: 3,
        ..ModelConfig::pipeline(mutation)
    }
}

/// P0's write of `block` (epoch 1, first process) to `node`.
fn write_of(block: Block, node: u8) -> Action {
    Action::DeliverWrite(WriteMsg {
        node,
        token: Token {
            producer: 0,
            incarnation: 0,
        },
        epoch: Epoch::new(1),
        block,
        view: Record::Old,
    })
}

/// P0 leads on A and B at epoch 1 and publishes X, which A and B store: X's commit begins. P0
/// produces X2 on X while that commit runs, and A and B store X2 too: X commits, X2 waits.
fn two_blocks_on_a_quorum_and_neither_committed() -> Vec<Action> {
    let mut steps = p0_leads_reading_a_and_b();
    steps.extend([
        Action::Produce(0),
        write_of(X, NODE_A),
        write_of(X, NODE_B),
        Action::Produce(0),
        write_of(X2, NODE_A),
        write_of(X2, NODE_B),
    ]);
    steps
}

fn committing_of(state: &State, producer: usize) -> Vec<Block> {
    state.producers[producer]
        .committing
        .iter()
        .map(|committing| committing.block)
        .collect()
}

#[test]
fn pipeline__when_a_leader_publishes_the_next_block_while_a_commit_runs__then_both_are_on_a_quorum_and_neither_is_claimed()
 {
    // given
    let steps = two_blocks_on_a_quorum_and_neither_committed();

    // when
    let state = replay_from(pipeline(None), &steps);

    // then
    assert_eq!(committing_of(&state, 0), vec![X, X2]);
    assert!(chain_of(&state, 0).is_empty());
    assert_eq!(heights_on(&state, NODE_A), vec![1, 2]);
    assert_eq!(heights_on(&state, NODE_B), vec![1, 2]);
}

#[test]
fn pipeline__when_the_commits_end__then_they_join_the_chain_in_height_order() {
    // given
    let uncommitted = two_blocks_on_a_quorum_and_neither_committed();
    let steps = [
        uncommitted.clone(),
        vec![Action::Commit(0), Action::Commit(0)],
    ]
    .concat();
    let model = ProtocolModel::new(pipeline(None)).unwrap();

    // when
    let before = replay_from(pipeline(None), &uncommitted);
    let mut enabled = Vec::new();
    model.actions(&before, &mut enabled);
    let state = replay_from(pipeline(None), &steps);

    // then: X2's commit could not end first; it began once X's had ended
    assert!(!enabled.contains(&Action::CommitAbove(0)));
    assert_eq!(chain_of(&state, 0), vec![X, X2]);
    assert!(!state.committed_before_parent);
    assert!(chains_are_prefixes_of_the_quorum_chain(&model, &state));
}

#[test]
fn pipeline__when_the_commit_below_fails_after_the_next_block_was_published__then_neither_is_committed_and_the_next_leadership_imports_both()
 {
    // given
    let failed = [
        two_blocks_on_a_quorum_and_neither_committed(),
        vec![Action::CommitFailed(0)],
    ]
    .concat();
    let steps = [failed.clone(), p0_leads_reading_a_and_b()].concat();

    // when
    let after_failure = replay_from(pipeline(None), &failed);
    let state = replay_from(pipeline(None), &steps);

    // then: the pipeline stopped and P0 stepped down; its next leadership imports X and X2
    let p0 = &after_failure.producers[0];
    assert!(p0.epoch.is_none() && p0.committing.is_empty() && p0.chain.is_empty());
    assert_eq!(chain_of(&state, 0), vec![X, X2]);
    assert!(!state.committed_before_parent);
}

/// Replays the two uncommitted blocks and then `ends` under `mutation`: the state, and whether
/// every local chain is still a prefix of the quorum chain.
fn commits_under(mutation: Mutation, ends: [Action; 2]) -> (State, bool) {
    let config = pipeline(Some(mutation));
    let steps = [
        two_blocks_on_a_quorum_and_neither_committed(),
        ends.to_vec(),
    ]
    .concat();
    let state = replay_from(config, &steps);
    let model = ProtocolModel::new(config).unwrap();
    let prefixes = chains_are_prefixes_of_the_quorum_chain(&model, &state);
    (state, prefixes)
}

#[test]
fn pipeline__when_a_failed_commit_does_not_stop_the_pipeline__then_the_block_above_is_committed_without_its_parent()
 {
    // given
    let ends = [Action::CommitFailed(0), Action::Commit(0)];

    // when
    let (state, prefixes) = commits_under(Mutation::CommitPastFailure, ends);

    // then: P0's chain starts at height 2
    assert_eq!(chain_of(&state, 0), vec![X2]);
    assert!(state.committed_before_parent && !prefixes);
}

#[test]
fn pipeline__when_two_commits_are_in_flight_and_the_upper_ends_first__then_a_block_is_committed_before_its_parent()
 {
    // given
    let ends = [Action::CommitAbove(0), Action::Commit(0)];

    // when
    let (state, prefixes) = commits_under(Mutation::CommitsOutOfOrder, ends);

    // then
    assert_eq!(chain_of(&state, 0), vec![X2, X]);
    assert!(state.committed_before_parent && !prefixes);
}

#[test]
fn pipeline__when_the_leader_crashes_with_two_blocks_uncommitted__then_its_chain_keeps_neither_and_its_next_leadership_imports_both()
 {
    // given: the new process's token differs, so it waits for the old keys to expire
    let crashed = [
        two_blocks_on_a_quorum_and_neither_committed(),
        vec![Action::Crash(0)],
    ]
    .concat();
    let steps = [
        crashed.clone(),
        vec![Action::Expire(NODE_A), Action::Expire(NODE_B)],
        p0_leads_reading_a_and_b(),
    ]
    .concat();

    // when
    let after_crash = replay_from(pipeline(None), &crashed);
    let state = replay_from(pipeline(None), &steps);

    // then
    let p0 = &after_crash.producers[0];
    assert!(p0.committing.is_empty() && p0.chain.is_empty());
    assert_eq!(chain_of(&state, 0), vec![X, X2]);
}

#[test]
fn pipeline__when_the_log_keeps_one_height_and_the_leader_crashes_with_two_blocks_uncommitted__then_the_lower_block_is_lost_and_no_one_progresses()
 {
    // given: X2 trims X from A and B where each node keeps one height
    let steps = [
        two_blocks_on_a_quorum_and_neither_committed(),
        vec![Action::Crash(0)],
    ]
    .concat();
    let window = |kept_heights| ModelConfig {
        kept_heights,
        read_window: 1,
        ..pipeline(None)
    };

    // when
    let one = replay_from(window(1), &steps);
    let two = replay_from(window(2), &steps);

    // then: with one kept height, X is in no stream and no chain, and height 1 never fills
    assert_eq!(heights_on(&one, NODE_A), vec![2]);
    assert_eq!(heights_on(&one, NODE_B), vec![2]);
    assert!(!progress_possible(
        &ProtocolModel::new(window(1)).unwrap(),
        &one
    ));
    assert!(progress_possible(
        &ProtocolModel::new(window(2)).unwrap(),
        &two
    ));
}
