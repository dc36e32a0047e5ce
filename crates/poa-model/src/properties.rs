//! The properties every check asserts: the safety invariants (no fork, one block on a quorum per
//! height, and the flags the transitions set when a rule is broken), liveness as "a producer with
//! a reachable quorum can make progress", and the `sometimes` properties that keep the checks
//! from being vacuous. Which state breaks a rule is decided by the transitions; this file only
//! names and reads them.

use stateright::Property;

use crate::model::ProtocolModel;
use crate::state::{Block, Record, Source, State};

/// Every property, in report order.
pub(crate) fn all() -> Vec<Property<ProtocolModel>> {
    vec![
        Property::always("no fork", |_, s: &State| no_fork(s)),
        Property::always(
            "no two blocks on a quorum at one height",
            |m: &ProtocolModel, s: &State| single_quorum_block_per_height(m, s),
        ),
        Property::always("node epochs never decrease", |_, s: &State| {
            !s.epoch_decreased
        }),
        Property::always("commit only after quorum", |_, s: &State| {
            s.producers.iter().all(|p| {
                p.chain.iter().all(|b| match b.source {
                    Source::Published { holders, quorum } => holders >= quorum,
                    Source::Log | Source::Peer => true,
                })
            })
        }),
        Property::always(
            "a leader whose lease lapsed cannot get a write to quorum",
            |_, s: &State| !s.lapsed_write_to_quorum,
        ),
        Property::always(
            "a local chain is a prefix of the quorum chain and skips no height",
            |m: &ProtocolModel, s: &State| chains_are_prefixes_of_the_quorum_chain(m, s),
        ),
        Property::always(
            "a block is committed only after its parent is committed locally",
            |_, s: &State| !s.committed_before_parent,
        ),
        Property::always(
            "a leader skips the ownership check only while it holds the lease",
            |_, s: &State| !s.skipped_without_lease,
        ),
        Property::always(
            "a reconciled leader finds every block on a quorum",
            |_, s: &State| !s.reconciled_behind,
        ),
        Property::always("a repair replaces no committed block", |_, s: &State| {
            !s.replaced_committed
        }),
        Property::always(
            "a leader's epoch is above every epoch it led with before",
            |_, s: &State| !s.epoch_reused,
        ),
        Property::always(
            "no deadlock before the bound",
            |m: &ProtocolModel, s: &State| m.enabled(s) || m.at_bound(s),
        ),
        Property::always(
            "a producer with a reachable quorum can make progress",
            |m: &ProtocolModel, s: &State| crate::progress::progress_possible(m, s),
        ),
        Property::sometimes("a producer commits height 1", |_, s: &State| {
            s.producers.iter().any(|p| !p.chain.is_empty())
        }),
        Property::sometimes(
            "nodes lose their data as often as the bound allows",
            |m: &ProtocolModel, s: &State| s.wipes == m.config.max_wipes,
        ),
        Property::sometimes(
            "a process of the new list commits a block it published, once a change is run",
            |m: &ProtocolModel, s: &State| {
                m.config.change.is_none()
                    || s.producers.iter().any(|p| {
                        p.view == Record::New
                            && p.chain
                                .iter()
                                .any(|b| matches!(b.source, Source::Published { .. }))
                    })
            },
        ),
        Property::sometimes(
            "a leader has as many blocks stored and uncommitted as the pipeline allows, once it is on",
            |m: &ProtocolModel, s: &State| {
                let deepest = m.config.committing_when_producing() + 1;
                !m.config.pipeline || s.producers.iter().any(|p| p.committing.len() == deepest)
            },
        ),
        Property::sometimes(
            "a producer commits every height up to the bound",
            |m: &ProtocolModel, s: &State| {
                s.producers
                    .iter()
                    .any(|p| p.chain.len() == usize::from(m.config.max_height))
            },
        ),
    ]
}

/// Wherever two producers both hold a height, they hold the same block.
pub fn no_fork(state: &State) -> bool {
    state.producers.iter().all(|a| {
        state.producers.iter().all(|b| {
            a.chain
                .iter()
                .zip(&b.chain)
                .all(|(x, y)| x.block == y.block)
        })
    })
}

/// Every local chain holds heights 1, 2, ... each block on the one below it, and at every
/// height where a block is on a quorum, a chain that holds the height holds that block.
pub fn chains_are_prefixes_of_the_quorum_chain(model: &ProtocolModel, state: &State) -> bool {
    let linked = state.producers.iter().all(|p| {
        let mut parent = None;
        (1u8..).zip(&p.chain).all(|(height, committed)| {
            let block = committed.block;
            let linked = block.height == height && block.parent == parent;
            parent = Some(block.reference());
            linked
        })
    });
    linked
        && state
            .nodes
            .iter()
            .flat_map(|node| &node.stream)
            .all(|entry| {
                let block = entry.block;
                let at = usize::from(block.height).checked_sub(1);
                state.producers.iter().all(|p| {
                    at.and_then(|at| p.chain.get(at))
                        .is_none_or(|held| held.block == block)
                        || !model.on_a_quorum(&state.nodes, block)
                })
            })
}

/// At every height at most one block is stored on a quorum of a set (old or new).
pub fn single_quorum_block_per_height(model: &ProtocolModel, state: &State) -> bool {
    let mut on_quorum: Vec<Block> = Vec::new();
    for node in &state.nodes {
        for entry in &node.stream {
            let block = entry.block;
            if on_quorum.contains(&block) || !model.on_a_quorum(&state.nodes, block) {
                continue;
            }
            if on_quorum.iter().any(|other| other.height == block.height) {
                return false;
            }
            on_quorum.push(block);
        }
    }
    true
}
