//! The state a check starts from. The far-behind, failed-publish and committing starts are not
//! written by hand: each is a history replayed from the empty state through the model's own
//! transitions (with the exploration bounds lifted), so it is reachable by construction, under
//! the variant being checked.

use crate::config::Start;
use crate::error::ModelError;
use crate::model::ProtocolModel;
use crate::state::{Action, Producer, Record, RedisNode, Role, State};
use stateright::Model;

const NODE_A: u8 = 0;
const NODE_B: u8 = 1;
const NODE_C: u8 = 2;

/// One step of a replayed history.
#[derive(Clone, Copy, Debug)]
enum Step {
    /// An action, which must be enabled.
    Act(Action),
    /// The write in flight to this node lands (there is exactly one when this step runs).
    Deliver(u8),
}

/// The far-behind history: P0 leads on A and B, publishes X at height 1, which lands on A only,
/// and fails. P1 leads on B and C (X's other writes land there fenced), commits Z1 and Z2 on B
/// and C; their writes to A land fenced (A's key is gone). With one kept height, B and C trim
/// height 1 when Z2 arrives. P1 still leads; P0's chain is empty.
fn far_behind() -> Vec<Step> {
    let act = Step::Act;
    let mut steps = p0_publishes_on_a_and_b();
    steps.extend([
        Step::Deliver(NODE_A),
        act(Action::PublishFailed(0)),
        act(Action::Expire(NODE_A)),
        act(Action::Expire(NODE_B)),
        act(Action::Acquire {
            producer: 1,
            reach: 1 << NODE_B | 1 << NODE_C,
        }),
        Step::Deliver(NODE_B),
        Step::Deliver(NODE_C),
        act(Action::Reconcile {
            producer: 1,
            read: 1 << NODE_B | 1 << NODE_C,
        }),
        act(Action::Produce(1)),
        Step::Deliver(NODE_B),
        Step::Deliver(NODE_C),
        act(Action::Commit(1)),
        Step::Deliver(NODE_A),
        act(Action::Produce(1)),
        Step::Deliver(NODE_B),
        Step::Deliver(NODE_C),
        act(Action::Commit(1)),
        Step::Deliver(NODE_A),
    ]);
    steps
}

/// The failed-publish history: P0 leads on A and B at epoch 1 and publishes X1; the publish fails
/// before any reply and P0 steps down (its keys linger on A and B). X1 then lands late on A, where
/// P0's key lingers; B's key expires and X1's writes to B and C land fenced.
fn failed_publish() -> Vec<Step> {
    let act = Step::Act;
    let mut steps = p0_publishes_on_a_and_b();
    steps.extend([
        act(Action::PublishFailed(0)),
        Step::Deliver(NODE_A),
        act(Action::Expire(NODE_B)),
        Step::Deliver(NODE_B),
        Step::Deliver(NODE_C),
    ]);
    steps
}

/// The committing history: P0 leads on A and B at epoch 1 and publishes X1; A and B store it, so
/// its commit begins; the write to C stays in flight.
fn committing() -> Vec<Step> {
    let mut steps = p0_publishes_on_a_and_b();
    steps.extend([Step::Deliver(NODE_A), Step::Deliver(NODE_B)]);
    steps
}

/// The first steps of every history: P0 leads on A and B at epoch 1, reads them, finds nothing
/// and publishes X at height 1.
fn p0_publishes_on_a_and_b() -> Vec<Step> {
    let on_a_and_b = 1 << NODE_A | 1 << NODE_B;
    vec![
        Step::Act(Action::Acquire {
            producer: 0,
            reach: on_a_and_b,
        }),
        Step::Act(Action::Reconcile {
            producer: 0,
            read: on_a_and_b,
        }),
        Step::Act(Action::Produce(0)),
    ]
}

/// The empty state of `model`'s sizes.
fn empty(model: &ProtocolModel) -> State {
    let c = &model.config;
    State {
        nodes: (0..c.servers())
            .map(|n| {
                let role = model.records.role(n);
                RedisNode {
                    role,
                    record: (role != Role::Added).then_some(Record::Old),
                    ..RedisNode::default()
                }
            })
            .collect(),
        producers: vec![Producer::default(); usize::from(c.producers)],
        writes: Vec::new(),
        crashes: 0,
        wipes: 0,
        epoch_decreased: false,
        lapsed_write_to_quorum: false,
        reconciled_behind: false,
        skipped_without_lease: false,
        epoch_reused: false,
        replaced_committed: false,
        change_committed: false,
        commit_failures: 0,
        committed_before_parent: false,
    }
}

/// The state `model` starts from.
///
/// # Errors
///
/// [`ModelError::StartUnreachable`] when a step of the start's history is not enabled.
pub(crate) fn initial_state(model: &ProtocolModel) -> Result<State, ModelError> {
    let history = match model.config.start {
        Start::Empty => return Ok(empty(model)),
        Start::FarBehind => far_behind(),
        Start::FailedPublish => failed_publish(),
        Start::Committing => committing(),
    };
    let replay = model.without_bounds();
    let mut state = empty(model);
    for (index, step) in history.into_iter().enumerate() {
        let action = match step {
            Step::Act(action) => Some(action),
            Step::Deliver(node) => state
                .writes
                .iter()
                .find(|msg| msg.node == node)
                .map(|msg| Action::DeliverWrite(*msg)),
        };
        let mut enabled = Vec::new();
        replay.actions(&state, &mut enabled);
        let next = action
            .filter(|action| enabled.contains(action))
            .and_then(|action| replay.next_state(&state, action));
        state = next.ok_or_else(|| ModelError::StartUnreachable {
            start: model.config.start.name(),
            step: index,
            action: format!("{step:?}"),
        })?;
    }
    Ok(state)
}
