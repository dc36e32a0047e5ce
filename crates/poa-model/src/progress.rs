//! The liveness check: from a state, does a fault-free continuation let some producer extend its
//! local chain? "Fault-free" means no crash, no expiry of the runner's own lease, every node
//! reachable, the runner's own requests delivered, other producers paused (their in-flight
//! requests delayed past the run). Budgets (epochs, attempts) are lifted for the run so the bound
//! of the exploration does not pass for a livelock. It must not change the model's rules: every
//! step is the model's own `next_state`.

use stateright::Model;

use crate::model::{ModelConfig, ProtocolModel};
use crate::state::{Action, State};

/// Longest fault-free continuation tried before calling the state stuck.
const MAX_STEPS: usize = 40;

/// Whether some producer below `max_height` can extend its chain by a fault-free continuation
/// (trivially true when every chain is complete).
pub fn progress_possible(config: &ModelConfig, state: &State) -> bool {
    let relaxed = ProtocolModel {
        config: ModelConfig {
            max_epoch: u8::MAX,
            max_attempts: u8::MAX,
            max_crashes: 0,
            ..*config
        },
    };
    let behind: Vec<u8> = (0..config.producers)
        .filter(|p| state.producers[usize::from(*p)].chain.len() < usize::from(config.max_height))
        .collect();
    behind.is_empty() || behind.iter().any(|p| run(&relaxed, state.clone(), *p))
}

fn run(model: &ProtocolModel, mut state: State, p: u8) -> bool {
    let start = state.producers[usize::from(p)].chain.len();
    let all = u8::MAX >> (8 - model.config.nodes);
    for _ in 0..MAX_STEPS {
        if state.producers[usize::from(p)].chain.len() > start {
            return true;
        }
        let Some(action) = next_fault_free_action(model, &state, p, all) else {
            return false;
        };
        match model.next_state(&state, action) {
            Some(next) if next != state => state = next,
            _ => return false,
        }
    }
    false
}

fn next_fault_free_action(model: &ProtocolModel, state: &State, p: u8, all: u8) -> Option<Action> {
    let token = state.producers[usize::from(p)].token(p);
    let mut enabled = Vec::new();
    model.actions(state, &mut enabled);
    let rank = |action: &Action| -> Option<u8> {
        match *action {
            Action::DeliverWrite(msg) if msg.token == token => Some(0),
            Action::Commit(q) if q == p => Some(1),
            Action::PublishFailed(q)
                if q == p && !state.writes.iter().any(|w| w.token == token) =>
            {
                Some(2)
            }
            Action::Reconcile { producer, read } if producer == p && read == all => Some(3),
            Action::Produce(q) if q == p => Some(4),
            Action::Expire(n) if state.nodes[usize::from(n)].owner != Some(token) => Some(5),
            Action::Acquire { producer, reach } if producer == p && reach == all => Some(6),
            _ => None,
        }
    };
    enabled
        .into_iter()
        .filter_map(|a| rank(&a).map(|r| (r, a)))
        .min_by_key(|(r, _)| *r)
        .map(|(_, a)| a)
}
