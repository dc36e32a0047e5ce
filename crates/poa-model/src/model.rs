//! The stateright `Model`: which actions are enabled in a state, what each does, and the
//! properties checked. Script semantics and the vote come from `protocol.rs`; this file only
//! sequences them (it must not re-implement a script check).

use stateright::{Model, Property};

use crate::error::ModelError;
use crate::protocol::{self, Mutation};
use crate::state::{Action, BlockId, Committed, Producer, Publish, RedisNode, State, WriteMsg};

/// Sizes, bounds and the protocol variant to check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelConfig {
    /// Producer processes.
    pub producers: u8,
    /// Independent Redis nodes.
    pub nodes: u8,
    /// Nodes needed for a grant, a publish, a read phase and a repair.
    pub quorum: u8,
    /// Highest height anyone produces (bound).
    pub max_height: u8,
    /// Highest epoch a node may reach (bound on promotions).
    pub max_epoch: u8,
    /// Blocks each producer may seal (bound on attempts and retries).
    pub max_attempts: u8,
    /// Crashes in the whole run (bound).
    pub max_crashes: u8,
    /// The protocol variant, `None` for the protocol as specified.
    pub mutation: Option<Mutation>,
}

impl ModelConfig {
    /// The smallest useful bound: 2 producers, 3 nodes, quorum 2, one height, epochs up to 3, one
    /// block per producer, no crash. Tests widen one dimension at a time from here.
    pub fn small(mutation: Option<Mutation>) -> Self {
        Self {
            producers: 2,
            nodes: 3,
            quorum: 2,
            max_height: 1,
            max_epoch: 3,
            max_attempts: 1,
            max_crashes: 0,
            mutation,
        }
    }

    /// Checks that quorums overlap and the sizes fit the state encoding.
    ///
    /// # Errors
    ///
    /// [`ModelError::QuorumNotMajority`] or [`ModelError::TooLarge`].
    pub fn validate(&self) -> Result<(), ModelError> {
        if !(1..=8).contains(&self.nodes) || !(1..=8).contains(&self.producers) {
            return Err(ModelError::TooLarge {
                nodes: self.nodes,
                producers: self.producers,
            });
        }
        if 2 * self.quorum <= self.nodes || self.quorum > self.nodes {
            return Err(ModelError::QuorumNotMajority {
                quorum: self.quorum,
                nodes: self.nodes,
            });
        }
        Ok(())
    }

    fn has(&self, mutation: Mutation) -> bool {
        self.mutation == Some(mutation)
    }

    fn reaches_quorum(&self, mask: u8) -> bool {
        mask.count_ones() >= u32::from(self.quorum)
    }

    fn reads_needed(&self) -> u8 {
        if self.has(Mutation::ReadAnyOneNode) {
            1
        } else {
            self.quorum
        }
    }
}

/// The protocol model checked by stateright.
#[derive(Clone, Debug)]
pub struct ProtocolModel {
    /// Sizes, bounds and variant.
    pub config: ModelConfig,
}

impl ProtocolModel {
    /// A model of `config`.
    ///
    /// # Errors
    ///
    /// When `config` does not validate.
    pub fn new(config: ModelConfig) -> Result<Self, ModelError> {
        config.validate()?;
        Ok(Self { config })
    }

    fn producer_actions(&self, state: &State, p: u8, actions: &mut Vec<Action>) {
        let c = &self.config;
        let producer = &state.producers[usize::from(p)];
        match (producer.epoch, producer.publish) {
            (None, _)
                if producer.attempts < c.max_attempts && chain_height(producer) < c.max_height =>
            {
                // Reaching fewer than a quorum cannot lead; partial grants still arise from races
                // (a node already held by the other producer).
                for reach in 1..(1u8 << c.nodes) {
                    if c.reaches_quorum(reach) {
                        actions.push(Action::Acquire { producer: p, reach });
                    }
                }
            }
            // Bound: a producer that may not seal another block takes no new leadership.
            (None, _) => {}
            (Some(_), None) if !producer.reconciled => {
                let needed = u32::from(c.reads_needed());
                for read in 1..(1u8 << c.nodes) {
                    if read.count_ones() >= needed {
                        actions.push(Action::Reconcile { producer: p, read });
                    }
                }
            }
            (Some(_), None) => {
                if producer.chain.len() < usize::from(c.max_height)
                    && producer.attempts < c.max_attempts
                {
                    actions.push(Action::Produce(p));
                }
            }
            (Some(_), Some(publish)) => {
                if c.reaches_quorum(publish.acked) {
                    actions.push(Action::Commit(p));
                } else {
                    actions.push(Action::PublishFailed(p));
                }
            }
        }
        if state.crashes < c.max_crashes {
            actions.push(Action::Crash(p));
        }
    }

    fn reconcile(&self, state: &mut State, p: u8, read: u8) {
        let c = &self.config;
        let (token, epoch, mut height) = {
            let producer = &state.producers[usize::from(p)];
            let Some(epoch) = producer.epoch else { return };
            (producer.token(p), epoch, chain_height(producer) + 1)
        };
        let mut complete = false;
        loop {
            if height > c.max_height {
                complete = true;
                break;
            }
            let Some(winner) = protocol::vote(&state.nodes, read, height, c.quorum) else {
                complete = true;
                break;
            };
            let mut have = protocol::holders(&state.nodes, read, winner);
            if !c.reaches_quorum(have) {
                if c.has(Mutation::NoRepair) {
                    complete = true;
                    break;
                }
                for n in 0..c.nodes {
                    let bit = 1 << n;
                    if read & bit == 0 || have & bit != 0 || c.reaches_quorum(have) {
                        continue;
                    }
                    let msg = WriteMsg {
                        node: n,
                        token,
                        epoch,
                        id: winner,
                    };
                    match self.write_block_on(state, msg) {
                        protocol::WriteOutcome::Fenced => {
                            step_down(&mut state.producers[usize::from(p)]);
                            return;
                        }
                        outcome if outcome.stored() => have |= bit,
                        _ => {}
                    }
                }
                if !c.reaches_quorum(have) {
                    break;
                }
            }
            let held = stored_on(&state.nodes, winner);
            state.producers[usize::from(p)].chain.push(Committed {
                id: winner,
                holders: held,
            });
            height += 1;
        }
        let producer = &mut state.producers[usize::from(p)];
        producer.reconciled = complete;
        if complete && quorum_block_above(c, &state.nodes, chain_height(producer)) {
            state.reconciled_below_quorum_block = true;
        }
    }

    /// Runs `write_block` for `msg` on its node and records a write accepted from a token whose
    /// lease had lapsed on every node that leaves its block on a quorum (invariant 3). Every write,
    /// publish or repair, goes through here.
    fn write_block_on(&self, state: &mut State, msg: WriteMsg) -> protocol::WriteOutcome {
        let lapsed = !state.nodes.iter().any(|n| n.owner == Some(msg.token));
        let outcome = protocol::write_block(
            &mut state.nodes[usize::from(msg.node)],
            msg.token,
            msg.epoch,
            msg.id,
            self.config.mutation,
        );
        if lapsed && outcome.stored() && stored_on(&state.nodes, msg.id) >= self.config.quorum {
            state.lapsed_write_to_quorum = true;
        }
        outcome
    }

    /// Whether the state is at the edge of the bounds: every producer has its full chain, or has
    /// sealed all the blocks it may, or the cluster cannot grant another leadership generation.
    pub fn at_bound(&self, state: &State) -> bool {
        let c = &self.config;
        let promotable = state.nodes.iter().filter(|n| n.epoch < c.max_epoch).count();
        let generations_left = promotable >= usize::from(c.quorum);
        state.producers.iter().all(|p| {
            chain_height(p) >= c.max_height || p.attempts >= c.max_attempts || !generations_left
        })
    }

    fn enabled(&self, state: &State) -> bool {
        let mut actions = Vec::new();
        self.actions(state, &mut actions);
        !actions.is_empty()
    }
}

fn chain_height(producer: &Producer) -> u8 {
    u8::try_from(producer.chain.len()).unwrap_or(u8::MAX)
}

fn step_down(producer: &mut Producer) {
    producer.epoch = None;
    producer.reconciled = false;
    producer.publish = None;
}

/// Whether some block above `height` is stored on a quorum of nodes: a leader reconciled to
/// `height` would produce where a block is already committed, a block that can never reach quorum.
fn quorum_block_above(config: &ModelConfig, nodes: &[RedisNode], height: u8) -> bool {
    nodes
        .iter()
        .flat_map(|n| &n.entries)
        .any(|entry| entry.id.height > height && stored_on(nodes, entry.id) >= config.quorum)
}

/// How many nodes hold `id` (any epoch).
pub fn stored_on(nodes: &[RedisNode], id: BlockId) -> u8 {
    protocol::holders(nodes, u8::MAX, id).count_ones() as u8
}

fn insert_sorted<T: Ord>(set: &mut Vec<T>, item: T) {
    if let Err(at) = set.binary_search(&item) {
        set.insert(at, item);
    }
}

fn remove<T: Ord>(set: &mut Vec<T>, item: &T) {
    if let Ok(at) = set.binary_search(item) {
        set.remove(at);
    }
}

impl Model for ProtocolModel {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        vec![State {
            nodes: vec![RedisNode::default(); usize::from(self.config.nodes)],
            producers: vec![Producer::default(); usize::from(self.config.producers)],
            writes: Vec::new(),
            crashes: 0,
            epoch_decreased: false,
            lapsed_write_to_quorum: false,
            reconciled_below_quorum_block: false,
        }]
    }

    fn actions(&self, state: &State, actions: &mut Vec<Action>) {
        for p in 0..self.config.producers {
            self.producer_actions(state, p, actions);
        }
        for (n, node) in (0u8..).zip(&state.nodes) {
            if node.owner.is_some() {
                actions.push(Action::Expire(n));
            }
        }
        for msg in &state.writes {
            actions.push(Action::DeliverWrite(*msg));
        }
    }

    fn next_state(&self, last: &State, action: Action) -> Option<State> {
        let c = &self.config;
        let mut s = last.clone();
        match action {
            Action::Acquire { producer, reach } => {
                let token = s.producers[usize::from(producer)].token(producer);
                let mut granted = 0u8;
                let mut epoch = 0u8;
                for (n, node) in (0u8..).zip(s.nodes.iter_mut()) {
                    if reach & (1 << n) != 0
                        && let Some(e) = protocol::promote(node, token, c.max_epoch)
                    {
                        granted |= 1 << n;
                        epoch = epoch.max(e);
                    }
                }
                if c.reaches_quorum(granted) {
                    let p = &mut s.producers[usize::from(producer)];
                    p.epoch = Some(epoch);
                    p.reconciled = false;
                } else if granted == 0 {
                    return None;
                } else {
                    // The attempt releases its partial grants (their `INCR` stays); a lost release
                    // is a lock that lingers until its TTL, which only delays others.
                    for node in s.nodes.iter_mut().filter(|n| n.owner == Some(token)) {
                        node.owner = None;
                    }
                }
            }
            Action::Expire(n) => s.nodes[usize::from(n)].owner = None,
            Action::Produce(p) => {
                let producer = &mut s.producers[usize::from(p)];
                let epoch = producer.epoch?;
                let id = BlockId {
                    height: chain_height(producer) + 1,
                    producer: p,
                    attempt: producer.attempts,
                };
                producer.attempts += 1;
                producer.publish = Some(Publish { id, acked: 0 });
                let token = producer.token(p);
                for node in 0..c.nodes {
                    insert_sorted(
                        &mut s.writes,
                        WriteMsg {
                            node,
                            token,
                            epoch,
                            id,
                        },
                    );
                }
            }
            Action::DeliverWrite(msg) => {
                remove(&mut s.writes, &msg);
                let outcome = self.write_block_on(&mut s, msg);
                let p = &mut s.producers[usize::from(msg.token.producer)];
                // A reply only matters to the process and publish that sent the request; a late
                // reply to a crashed process or an abandoned publish is discarded.
                if outcome.stored()
                    && p.incarnation == msg.token.incarnation
                    && let Some(publish) = p.publish.as_mut()
                    && publish.id == msg.id
                {
                    publish.acked |= 1 << msg.node;
                }
            }
            Action::Commit(p) => {
                let id = s.producers[usize::from(p)].publish?.id;
                let holders = stored_on(&s.nodes, id);
                let producer = &mut s.producers[usize::from(p)];
                producer.chain.push(Committed { id, holders });
                producer.publish = None;
            }
            Action::PublishFailed(p) => step_down(&mut s.producers[usize::from(p)]),
            Action::Reconcile { producer, read } => self.reconcile(&mut s, producer, read),
            Action::Crash(p) => {
                s.crashes += 1;
                let producer = &mut s.producers[usize::from(p)];
                step_down(producer);
                producer.incarnation += 1;
            }
        }
        if s.nodes
            .iter()
            .zip(&last.nodes)
            .any(|(now, before)| now.epoch < before.epoch)
        {
            s.epoch_decreased = true;
        }
        Some(s)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always("no fork", |_, s: &State| no_fork(s)),
            Property::always(
                "no two blocks on a quorum at one height",
                |m: &ProtocolModel, s: &State| single_quorum_block_per_height(&m.config, s),
            ),
            Property::always("node epochs never decrease", |_, s: &State| {
                !s.epoch_decreased
            }),
            Property::always(
                "commit only after quorum",
                |m: &ProtocolModel, s: &State| {
                    s.producers
                        .iter()
                        .all(|p| p.chain.iter().all(|b| b.holders >= m.config.quorum))
                },
            ),
            Property::always(
                "a leader whose lease lapsed cannot get a write to quorum",
                |_, s: &State| !s.lapsed_write_to_quorum,
            ),
            Property::always(
                "a reconciled leader finds every block on a quorum",
                |_, s: &State| !s.reconciled_below_quorum_block,
            ),
            Property::always(
                "no deadlock before the bound",
                |m: &ProtocolModel, s: &State| m.enabled(s) || m.at_bound(s),
            ),
            Property::always(
                "a producer with a reachable quorum can make progress",
                |m: &ProtocolModel, s: &State| crate::progress::progress_possible(&m.config, s),
            ),
            Property::sometimes("a producer commits height 1", |_, s: &State| {
                s.producers.iter().any(|p| !p.chain.is_empty())
            }),
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
}

/// Property (1): wherever two producers both hold a height, they hold the same block.
pub fn no_fork(state: &State) -> bool {
    state.producers.iter().all(|a| {
        state
            .producers
            .iter()
            .all(|b| a.chain.iter().zip(&b.chain).all(|(x, y)| x.id == y.id))
    })
}

/// Property (2): at every height at most one block id is stored on a quorum of nodes.
pub fn single_quorum_block_per_height(config: &ModelConfig, state: &State) -> bool {
    let mut on_quorum: Vec<BlockId> = Vec::new();
    for node in &state.nodes {
        for entry in &node.entries {
            if stored_on(&state.nodes, entry.id) >= config.quorum && !on_quorum.contains(&entry.id)
            {
                if on_quorum.iter().any(|id| id.height == entry.id.height) {
                    return false;
                }
                on_quorum.push(entry.id);
            }
        }
    }
    true
}
