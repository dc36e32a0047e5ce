//! The liveness check: from a state, does a fault-free continuation let some producer extend its
//! local chain? "Fault-free" means no crash, no wipe, every node reachable, the requests of the
//! publishes in progress delivered (stale requests are delayed past the run), and a live leader
//! (one whose token holds the lease on a quorum) keeps its lease: it renews in time, so only keys
//! of processes that are not live leaders expire. The run schedules every producer by a fixed
//! priority, so a leader that cannot make progress and keeps its lease is a stall, and one that
//! steps down lets the next producer in. Bounds are lifted for the run (one more height, no
//! epoch or attempt budget), so the exploration's bounds never pass for a livelock. It must not
//! change the model's rules: every step is the model's own `next_state`.
//!
//! The continuation is a function of the state, and every state it passes before a chain grows
//! has the same chains, so each of them makes progress too: they are remembered (as hashes) and
//! a later check that meets one stops there. This is only a memo; it decides nothing.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::{Mutex, PoisonError};

use stateright::Model;

use crate::model::{ProtocolModel, procedure_at};
use crate::state::{Action, Record, State, Token, WriteMsg};

/// Longest fault-free continuation tried before calling the state stuck.
const MAX_STEPS: usize = 40;

/// States known to make progress, by hash, shared by the checker's threads.
#[derive(Debug, Default)]
pub(crate) struct ProgressMemo(Mutex<HashSet<u64>>);

impl ProgressMemo {
    fn knows(&self, state: u64) -> bool {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&state)
    }

    fn remember(&self, states: Vec<u64>) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(states);
    }
}

/// A fast multiply-rotate hash (the memo hashes every state a continuation passes; SipHash
/// would cost more than the continuation itself). 64 bits keep collisions out of reach at
/// the model's millions of states.
#[derive(Default)]
struct MemoHasher(u64);

impl Hasher for MemoHasher {
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.write_u64(u64::from(*byte));
        }
    }

    fn write_u8(&mut self, value: u8) {
        self.write_u64(u64::from(value));
    }

    fn write_u64(&mut self, value: u64) {
        const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        self.0 = (self.0.rotate_left(5) ^ value).wrapping_mul(SEED);
    }

    fn write_usize(&mut self, value: usize) {
        self.write_u64(value as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

fn fingerprint(state: &State) -> u64 {
    let mut hasher = MemoHasher::default();
    state.hash(&mut hasher);
    hasher.finish()
}

/// Whether a fault-free continuation lets some producer extend its chain.
pub fn progress_possible(model: &ProtocolModel, state: &State) -> bool {
    let memo = &model.progress;
    let relaxed = model.without_bounds();
    let heights: Vec<usize> = state.producers.iter().map(|p| p.chain.len()).collect();
    let mut state = state.clone();
    let mut passed = Vec::new();
    for _ in 0..MAX_STEPS {
        let grown = state
            .producers
            .iter()
            .zip(&heights)
            .any(|(p, before)| p.chain.len() > *before);
        let here = fingerprint(&state);
        if grown || memo.knows(here) {
            memo.remember(passed);
            return true;
        }
        passed.push(here);
        let Some(action) = next_fault_free_action(&relaxed, &state) else {
            return false;
        };
        match relaxed.next_state(&state, action) {
            Some(next) if next != state => state = next,
            _ => return false,
        }
    }
    false
}

/// Whether `msg` belongs to a publish its sender is still waiting for, or to one that returned
/// stored and whose commit has not ended yet.
fn current(state: &State, msg: &WriteMsg) -> bool {
    let sender = &state.producers[usize::from(msg.token.producer)];
    sender.incarnation == msg.token.incarnation
        && (sender
            .publish
            .is_some_and(|publish| publish.block == msg.block)
            || sender
                .committing
                .iter()
                .any(|committing| committing.block == msg.block))
}

/// Whether `token` is a leading process holding the lease on a quorum (it renews in time).
fn live_leader(model: &ProtocolModel, state: &State, token: Token) -> bool {
    let leader = (0u8..)
        .zip(&state.producers)
        .find(|(p, producer)| producer.epoch.is_some() && producer.token(*p) == token);
    let held = state
        .nodes
        .iter()
        .filter(|node| node.script.owner == Some(token))
        .count();
    leader.is_some_and(|(_, producer)| model.quorum(producer.view).reached(held))
}

fn next_fault_free_action(model: &ProtocolModel, state: &State) -> Option<Action> {
    let all = |p: u8| model.view_mask(state.producers[usize::from(p)].view);
    let at = procedure_at(state);
    let mut enabled = Vec::new();
    model.actions(state, &mut enabled);
    let rank = |action: &Action| -> Option<u8> {
        match *action {
            Action::DeliverWrite(msg) if current(state, &msg) => Some(0),
            Action::Commit(_) => Some(1),
            Action::PublishFailed(p) => {
                let token = state.producers[usize::from(p)].token(p);
                let waiting = state
                    .writes
                    .iter()
                    .any(|msg| msg.token == token && current(state, msg));
                (!waiting).then_some(2)
            }
            Action::LeaseLost(_) | Action::PublishRefused(_) => Some(2),
            Action::Reconcile { read, producer } if read == all(producer) => Some(3),
            Action::Produce(_) => Some(4),
            Action::CatchUp { .. } => Some(5),
            Action::Expire(n) => {
                let owner = state.nodes[usize::from(n)].script.owner;
                owner
                    .is_some_and(|token| !live_leader(model, state, token))
                    .then_some(6)
            }
            // The operator finishes the procedure: the joint record's installs land once
            // begun, the new one's once committed, and each process is restarted on the list
            // of the record the procedure is at.
            Action::BeginOn(_) if at == Record::Joint => Some(7),
            Action::CommitOn(_) => Some(7),
            Action::Restart(p) if state.producers[usize::from(p)].view < at => Some(7),
            Action::Acquire { reach, producer } if reach == all(producer) => Some(8),
            _ => None,
        }
    };
    enabled
        .into_iter()
        .filter_map(|action| rank(&action).map(|r| (r, action)))
        .min_by_key(|(r, _)| *r)
        .map(|(_, action)| action)
}
