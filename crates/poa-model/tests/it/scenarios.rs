//! Named scenarios replayed step by step through the model's own `next_state`: the shortest
//! story behind a counterexample, checked against the protocol and against the mutation, so the
//! README's explanation cannot drift from the model.

#![allow(non_snake_case)]

use poa_model::stateright::Model;
use poa_model::{Action, BlockId, ModelConfig, Mutation, ProtocolModel, State, Token, WriteMsg};

const NODE_A: u8 = 0;
const NODE_B: u8 = 1;
const NODE_C: u8 = 2;

/// Runs `actions` from the initial state, every one of which must be enabled.
fn replay(mutation: Option<Mutation>, actions: &[Action]) -> State {
    let model = ProtocolModel::new(ModelConfig::small(mutation)).unwrap();
    let mut state = model.init_states().remove(0);
    for action in actions {
        let mut enabled = Vec::new();
        model.actions(&state, &mut enabled);
        assert!(
            enabled.contains(action),
            "{action:?} not enabled in {state:?}"
        );
        state = model.next_state(&state, *action).unwrap();
    }
    state
}

/// P0's write of block X (its first block, height 1, epoch 1) to `node`.
fn write_of_x(node: u8) -> WriteMsg {
    WriteMsg {
        node,
        token: Token {
            producer: 0,
            incarnation: 0,
        },
        epoch: 1,
        id: BlockId {
            height: 1,
            producer: 0,
            attempt: 0,
        },
    }
}

/// P0 leads on A and B at epoch 1 and publishes X.
fn p0_publishes_x_leading_on_a_and_b() -> Vec<Action> {
    vec![
        Action::Acquire {
            producer: 0,
            reach: 1 << NODE_A | 1 << NODE_B,
        },
        Action::Reconcile {
            producer: 0,
            read: 1 << NODE_A | 1 << NODE_B,
        },
        Action::Produce(0),
    ]
}

/// P0 publishes X; its lease then lapses on every node (a frozen process, SIGSTOP beyond the TTL)
/// while X's writes are still in flight; they land on C (never promoted, epoch 0) and on A.
fn zombie_leader_writes() -> Vec<Action> {
    let mut steps = p0_publishes_x_leading_on_a_and_b();
    steps.extend([
        Action::Expire(NODE_A),
        Action::Expire(NODE_B),
        Action::DeliverWrite(write_of_x(NODE_C)),
        Action::DeliverWrite(write_of_x(NODE_A)),
    ]);
    steps
}
#[test]
fn zombie_leader__when_its_lease_lapsed_on_every_node__then_its_late_writes_are_fenced() {
    // given
    let steps = zombie_leader_writes();

    // when
    let state = replay(None, &steps);

    // then
    assert!(!state.lapsed_write_to_quorum);
    assert!(
        state.nodes.iter().all(|n| n.entries.is_empty()),
        "{state:?}"
    );
}

#[test]
fn zombie_leader__when_write_block_skips_the_owner_check__then_its_late_writes_reach_a_quorum_and_it_commits()
 {
    // given
    let steps = [zombie_leader_writes(), vec![Action::Commit(0)]].concat();

    // when
    let state = replay(Some(Mutation::NoOwnerCheck), &steps);

    // then
    assert!(state.lapsed_write_to_quorum);
    assert_eq!(state.producers[0].chain.len(), 1, "{state:?}");
}

/// P0 commits X on A and B; both leases expire and P1 takes B and C.
fn takeover_after_a_commit_on_a_and_b() -> Vec<Action> {
    let mut steps = p0_publishes_x_leading_on_a_and_b();
    steps.extend([
        Action::DeliverWrite(write_of_x(NODE_A)),
        Action::DeliverWrite(write_of_x(NODE_B)),
        Action::Commit(0),
        Action::Expire(NODE_A),
        Action::Expire(NODE_B),
        Action::Acquire {
            producer: 1,
            reach: 1 << NODE_B | 1 << NODE_C,
        },
    ]);
    steps
}

#[test]
fn reconciliation__when_the_new_leader_reads_a_quorum__then_it_imports_the_committed_block() {
    // given
    let steps = [
        takeover_after_a_commit_on_a_and_b(),
        vec![Action::Reconcile {
            producer: 1,
            read: 1 << NODE_B | 1 << NODE_C,
        }],
    ]
    .concat();

    // when
    let state = replay(None, &steps);

    // then
    assert!(!state.reconciled_below_quorum_block);
    let ids = |p: usize| {
        state.producers[p]
            .chain
            .iter()
            .map(|b| b.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(1), ids(0));
}

#[test]
fn reconciliation__when_it_reads_one_node__then_the_new_leader_misses_the_committed_block_and_produces_over_it()
 {
    // given
    let steps = [
        takeover_after_a_commit_on_a_and_b(),
        vec![
            Action::Reconcile {
                producer: 1,
                read: 1 << NODE_C,
            },
            Action::Produce(1),
        ],
    ]
    .concat();

    // when
    let state = replay(Some(Mutation::ReadAnyOneNode), &steps);

    // then
    assert!(state.reconciled_below_quorum_block);
    assert_eq!(state.producers[1].publish.map(|p| p.id.height), Some(1));
}
