//! The stateright `Model`: which actions are enabled in a state, what each does, and the
//! properties checked. Every rule is `poa_quorum`'s (the scripts, the tallies, the walk and the
//! repair plan, reached through `rules.rs`, `mutation.rs` and `reconcile.rs`), and the commit
//! pipeline's sequencing is `poa-core`'s (`commit.rs`); this file only supplies what the code
//! leaves to the world: which nodes a step reaches, message delay and loss, lease expiry,
//! crashes and node wipes.

use std::sync::Arc;
use std::time::Duration;

use poa_ports::{BlockId, Epoch};
use poa_quorum::script::PromoteAnswer;
use poa_quorum::{
    AcquireDecision, OwnerReply, OwnershipDecision, OwnershipTally, PromoteReply, PromoteTally,
    WriteDecision, WriteReply, WriteTally,
};
use stateright::{Model, Property};

use crate::commit;
use crate::config::{MAX_MEMBERS, ModelConfig};
use crate::error::ModelError;
use crate::membership::Records;
use crate::mutation;
use crate::progress::ProgressMemo;
use crate::rules;
use crate::start;
use crate::state::{
    Action, Block, Committed, Producer, Publish, Record, RedisNode, Source, State, Token, WriteMsg,
};

/// Any positive validity: time is abstracted to nondeterministic expiry, so a quorum of grants
/// is always in time.
const VALIDITY: Duration = Duration::from_secs(1);

/// The protocol model checked by stateright.
#[derive(Clone, Debug)]
pub struct ProtocolModel {
    /// Sizes, bounds, start and variant.
    pub config: ModelConfig,
    /// Blocks each producer had sealed at the start (the attempt bound counts from there).
    pub(crate) sealed_at_start: [u8; MAX_MEMBERS as usize],
    /// States known to make progress (a memo of the liveness check).
    pub(crate) progress: Arc<ProgressMemo>,
    /// The membership records the nodes and processes may hold, and their quorums.
    pub(crate) records: Arc<Records>,
}

impl ProtocolModel {
    /// A model of `config`.
    ///
    /// # Errors
    ///
    /// When `config` does not validate, or its start cannot be replayed.
    pub fn new(config: ModelConfig) -> Result<Self, ModelError> {
        config.validate()?;
        let mut model = Self {
            config,
            sealed_at_start: [0; MAX_MEMBERS as usize],
            progress: Arc::default(),
            records: Arc::new(Records::of(&config)?),
        };
        let start = start::initial_state(&model)?;
        for (index, producer) in start.producers.iter().enumerate() {
            model.sealed_at_start[index] = producer.attempts;
        }
        Ok(model)
    }

    /// The same model with its exploration bounds lifted by one height and every budget
    /// (epochs, attempts) removed, faults (crashes, wipes) off: the model the liveness check
    /// runs continuations in.
    pub(crate) fn without_bounds(&self) -> Self {
        Self {
            config: ModelConfig {
                max_height: self.config.max_height.saturating_add(1),
                max_epoch: u8::MAX,
                max_attempts: u8::MAX,
                max_crashes: 0,
                max_wipes: 0,
                max_commit_failures: 0,
                ..self.config
            },
            sealed_at_start: self.sealed_at_start,
            progress: Arc::default(),
            records: Arc::clone(&self.records),
        }
    }

    /// The quorum a process of `view` counts.
    pub(crate) fn quorum(&self, view: Record) -> poa_quorum::Quorum {
        self.records.quorum(view)
    }

    /// The nodes a process of `view` is configured with, as a mask.
    pub(crate) fn view_mask(&self, view: Record) -> u8 {
        self.records.mask(view)
    }

    /// The nodes a process of `view` is configured with, in list order (a position in a
    /// `LogView` or a repair plan is an index into it).
    pub(crate) fn members(&self, view: Record) -> &[u8] {
        self.records.members(view)
    }

    /// Whether `block` is on a quorum of a set (what the properties call committed).
    pub(crate) fn on_a_quorum(&self, nodes: &[RedisNode], block: Block) -> bool {
        self.records.on_a_quorum(nodes, block)
    }

    /// The membership check every script but `release` runs first: the node holds the record
    /// the caller joined.
    pub(crate) fn admits(&self, node: &RedisNode, view: Record) -> bool {
        node.record == Some(view) || self.config.has(mutation::Mutation::NoMembershipCheck)
    }

    /// Whether producer `p` may seal another block within the attempt bound.
    fn may_seal(&self, state: &State, p: u8) -> bool {
        let sealed_at_start = self.sealed_at_start[usize::from(p)];
        state.producers[usize::from(p)].attempts
            < sealed_at_start.saturating_add(self.config.max_attempts)
    }

    /// Whether producer `p`, a reconciled leader with no publish in flight, may seal the next
    /// block: within the height and attempt bounds, and with no more of its blocks committing
    /// than the pipeline allows.
    pub(crate) fn may_produce(&self, state: &State, p: u8) -> bool {
        let producer = &state.producers[usize::from(p)];
        producer.tip_height() < self.config.max_height
            && self.may_seal(state, p)
            && producer.committing.len() <= self.config.committing_when_producing()
    }

    fn producer_actions(&self, state: &State, p: u8, actions: &mut Vec<Action>) {
        let c = &self.config;
        let producer = &state.producers[usize::from(p)];
        let view_mask = self.view_mask(producer.view);
        let quorum = self.quorum(producer.view);
        let nodes = (1..=c.all_nodes()).filter(move |mask| mask & !view_mask == 0);
        match (producer.epoch, producer.publish) {
            _ if !producer.committing.is_empty() => self.committing_actions(state, p, actions),
            (None, _) if producer.standing_aside => {
                for from in 0..c.producers {
                    if extends(&state.producers[usize::from(from)], producer) {
                        actions.push(Action::CatchUp { producer: p, from });
                    }
                }
            }
            // Bound: a producer that may not seal another block takes no new leadership.
            (None, _) if self.may_seal(state, p) && producer.height() < c.max_height => {
                // Reaching fewer than a quorum cannot lead; partial grants still arise from
                // races (a node already held by the other producer).
                for reach in nodes.filter(|reach| quorum.reached(reach.count_ones() as usize)) {
                    actions.push(Action::Acquire { producer: p, reach });
                }
            }
            (None, _) => {}
            // A reconciled leader whose lease is locally valid produces without the check.
            (Some(_), None) if producer.reconciled && self.skips_check(producer) => {
                if self.may_produce(state, p) {
                    actions.push(Action::Produce(p));
                }
            }
            // Any other leader cycle starts with the ownership check (renewal) over all nodes.
            (Some(_), None) if !self.owns_lease(state, producer.token(p), producer.view) => {
                actions.push(Action::LeaseLost(p));
            }
            (Some(_), None) if !producer.reconciled => {
                let needed = if c.has(mutation::Mutation::ReadAnyOneNode) {
                    1
                } else {
                    u32::try_from(quorum.size()).unwrap_or(u32::MAX)
                };
                for read in nodes.filter(|read| read.count_ones() >= needed) {
                    actions.push(Action::Reconcile { producer: p, read });
                }
            }
            (Some(_), None) => {
                if self.may_produce(state, p) {
                    actions.push(Action::Produce(p));
                }
            }
            (Some(_), Some(publish)) => match publish_outcome(quorum, publish) {
                // Never here: a publish returns at the reply that makes its tally say stored,
                // and its block's commit begins (`DeliverWrite`).
                PublishOutcome::Stored => {}
                PublishOutcome::HeightTaken => actions.push(Action::PublishRefused(p)),
                PublishOutcome::Failed => actions.push(Action::PublishFailed(p)),
            },
        }
        if producer.valid {
            actions.push(Action::ValidityEnds(p));
        }
        if state.crashes < c.max_crashes {
            actions.push(Action::Crash(p));
        }
        // The operator restarts a process on the next list once the procedure got there (the
        // joint list once a node holds the joint record, the new one once the commit passed); a
        // process started earlier only fails closed (its nodes refuse it) until then.
        if producer
            .view
            .next()
            .is_some_and(|next| next <= procedure_at(state))
        {
            actions.push(Action::Restart(p));
        }
    }

    /// The operator's steps of a membership change that may happen now.
    fn change_actions(&self, state: &State, actions: &mut Vec<Action>) {
        if self.config.change.is_none() {
            return;
        }
        let joint = self.view_mask(Record::Joint);
        let new = self.view_mask(Record::New);
        for (n, node) in (0u8..).zip(&state.nodes) {
            let bit = 1 << n;
            if joint & bit != 0 && matches!(node.record, None | Some(Record::Old)) {
                actions.push(Action::BeginOn(n));
            }
            if state.change_committed && new & bit != 0 && node.record == Some(Record::Joint) {
                actions.push(Action::CommitOn(n));
            }
        }
        if !state.change_committed
            && self
                .records
                .commit_allowed(&state.nodes, self.config.mutation)
        {
            actions.push(Action::CommitChange);
        }
    }

    /// Whether a reconciled leader's cycle skips the ownership check: while its lease is
    /// locally valid, or always under [`mutation::Mutation::SkipCheckAfterExpiry`].
    pub(crate) fn skips_check(&self, producer: &Producer) -> bool {
        producer.valid || self.config.has(mutation::Mutation::SkipCheckAfterExpiry)
    }

    /// Whether the key on node `n` may expire now: a locally valid leader keeps its lease on a
    /// quorum until its validity ends (Redlock's validity, drift included), so only keys beyond
    /// such a quorum, and every other key, expire at any moment.
    fn may_expire(&self, state: &State, n: u8) -> bool {
        let Some(owner) = state.nodes[usize::from(n)].script.owner else {
            return false;
        };
        let valid_holder = state
            .producers
            .get(usize::from(owner.producer))
            .filter(|producer| {
                producer.valid
                    && producer.epoch.is_some()
                    && producer.token(owner.producer) == owner
            });
        let Some(holder) = valid_holder else {
            return true;
        };
        let held_elsewhere = (0u8..)
            .zip(&state.nodes)
            .filter(|(other, node)| *other != n && node.script.owner == Some(owner))
            .count();
        self.quorum(holder.view).reached(held_elsewhere)
    }

    /// Whether `token`, a process of `view`, holds the lease key on a quorum, by the ownership
    /// tally over its nodes (a node holding another record refuses the check: no answer).
    pub(crate) fn owns_lease(&self, state: &State, token: Token, view: Record) -> bool {
        let mut tally = OwnershipTally::new(self.quorum(view));
        for n in self.members(view) {
            let node = &state.nodes[usize::from(*n)];
            tally.record(if !self.admits(node, view) {
                OwnerReply::Unavailable
            } else if node.script.owner == Some(token) {
                OwnerReply::Owner
            } else {
                OwnerReply::NotOwner
            });
        }
        tally.decision() == OwnershipDecision::Owned
    }

    /// Whether node `n` may lose its data now: the wipe bound, and fewer than `budget` other
    /// nodes still counting against the budget.
    fn may_wipe(&self, state: &State, n: u8) -> bool {
        let counting = (0u8..)
            .zip(&state.nodes)
            .filter(|(other, node)| *other != n && !node.lost.is_empty())
            .count();
        state.wipes < self.config.max_wipes && counting < usize::from(self.config.disruption_budget)
    }

    /// An acquire attempt: `promote` with this process's floor on every reached node, the
    /// replies tallied (unreached nodes are unavailable). `None` when it would take a node past
    /// the epoch bound or change nothing.
    fn acquire(&self, state: &mut State, p: u8, reach: u8) -> Option<()> {
        let c = &self.config;
        let (token, floor, view) = {
            let producer = &state.producers[usize::from(p)];
            (producer.token(p), producer.led, producer.view)
        };
        let lease_keys = |state: &State| -> Vec<(Option<Token>, Epoch)> {
            state
                .nodes
                .iter()
                .map(|node| (node.script.owner, node.script.epoch))
                .collect()
        };
        let before = lease_keys(state);
        let mut tally = PromoteTally::new(self.quorum(view));
        for n in self.records.members(view) {
            let node = &mut state.nodes[usize::from(*n)];
            if reach & (1 << n) == 0 || !self.admits(node, view) {
                tally.record(PromoteReply::Unavailable);
                continue;
            }
            tally.record(
                match mutation::promote(&mut node.script, &token, floor, c.mutation) {
                    PromoteAnswer::Granted(epoch) => PromoteReply::Granted(epoch),
                    PromoteAnswer::LockHeld => PromoteReply::HeldByAnother,
                },
            );
        }
        if state
            .nodes
            .iter()
            .any(|node| node.script.epoch.get() > u64::from(c.max_epoch))
        {
            return None;
        }
        if let AcquireDecision::Acquired { epoch, .. } = tally.decision(Some(VALIDITY)) {
            let producer = &mut state.producers[usize::from(p)];
            if epoch <= producer.led {
                state.epoch_reused = true;
            }
            producer.epoch = Some(epoch);
            producer.led = producer.led.max(epoch);
            producer.reconciled = false;
            producer.valid = true;
            producer.fenced_since_check = false;
            return Some(());
        }
        if lease_keys(state) == before {
            return None;
        }
        // The attempt releases its partial grants (their epoch raises stay); a lost release is
        // a key that lingers until its TTL, which only delays others.
        for node in &mut state.nodes {
            if node.script.owner == Some(token) {
                node.script.owner = None;
            }
        }
        Some(())
    }

    /// Runs `write_block` for `msg` on its node, replacing the block `replaces` names there if
    /// the script lets it (a repair's replacement; `None` for every other write), and records a
    /// write accepted from a token whose lease had lapsed on every node that leaves its block on
    /// a quorum, and a replacement that removes a committed block. Every write, publish or
    /// repair, goes through here.
    pub(crate) fn write_on(
        &self,
        state: &mut State,
        msg: WriteMsg,
        replaces: Option<BlockId>,
    ) -> WriteReply {
        if !self.admits(&state.nodes[usize::from(msg.node)], msg.view) {
            // The membership check's refusal: never a stored write.
            return WriteReply::Failed;
        }
        let lapsed = !state
            .nodes
            .iter()
            .any(|node| node.script.owner == Some(msg.token));
        let replaced = replaces.and_then(|id| {
            state.nodes[usize::from(msg.node)]
                .stream
                .iter()
                .map(|entry| entry.block)
                .find(|held| held.height == msg.block.height && rules::id_of(*held) == id)
        });
        let replaced_was_committed = replaced.is_some_and(|block| self.committed(state, block));
        let answer = rules::write_on(
            &mut state.nodes[usize::from(msg.node)],
            msg.token,
            msg.epoch,
            msg.view,
            msg.block,
            replaces,
            self.config.kept_heights,
            self.config.mutation,
        );
        if replaced_was_committed
            && replaced.is_some_and(|block| !state.nodes[usize::from(msg.node)].holds(block))
        {
            state.replaced_committed = true;
        }
        if lapsed && answer.stored() && self.on_a_quorum(&state.nodes, msg.block) {
            state.lapsed_write_to_quorum = true;
        }
        rules::reply_of(answer)
    }

    /// Whether `block` is committed: in a local chain, on a quorum, or published with a tally
    /// that said stored (its producer's commit of it runs or waits).
    fn committed(&self, state: &State, block: Block) -> bool {
        self.on_a_quorum(&state.nodes, block)
            || state.producers.iter().any(|producer| {
                producer
                    .chain
                    .iter()
                    .chain(&producer.committing)
                    .any(|held| held.block == block)
            })
    }

    /// Node `n` loses its data. The committed blocks it held (in a local chain, or on a quorum)
    /// are remembered as lost until they are back on a quorum or trimmed everywhere.
    fn wipe(&self, state: &mut State, n: u8) {
        let committed = |block: &Block, state: &State| {
            self.on_a_quorum(&state.nodes, *block)
                || state
                    .producers
                    .iter()
                    .any(|p| p.chain.iter().any(|c| c.block == *block))
        };
        let node = &state.nodes[usize::from(n)];
        let mut lost = node.lost.clone();
        for entry in &node.stream {
            if committed(&entry.block, state) && !lost.contains(&entry.block) {
                lost.push(entry.block);
            }
        }
        lost.sort();
        // The node keeps its role and record: the model abstracts its re-admission (a leader
        // gives it a new id and the next record at once).
        state.nodes[usize::from(n)] = RedisNode {
            lost,
            role: node.role,
            record: node.record,
            ..RedisNode::default()
        };
        state.wipes += 1;
        for producer in &mut state.producers {
            producer.fenced_since_check = true;
        }
    }

    /// Whether the state is at the edge of the bounds: every producer has its full chain, or
    /// has sealed all the blocks it may, or cannot be granted another leadership, or stands
    /// aside with no peer to catch up from.
    pub fn at_bound(&self, state: &State) -> bool {
        let c = &self.config;
        (0u8..).zip(&state.producers).all(|(p, producer)| {
            let floor = if c.has(mutation::Mutation::NoEpochFloor) {
                Epoch::default()
            } else {
                producer.led
            };
            let promotable = self
                .members(producer.view)
                .iter()
                .map(|n| &state.nodes[usize::from(*n)])
                .filter(|node| {
                    self.admits(node, producer.view)
                        && node.script.epoch.max(floor).get() < u64::from(c.max_epoch)
                })
                .count();
            producer.height() >= c.max_height
                || !self.may_seal(state, p)
                || !self.quorum(producer.view).reached(promotable)
                || (producer.standing_aside
                    && !state.producers.iter().any(|peer| extends(peer, producer)))
        })
    }

    /// Whether some action leads somewhere: every listed action does, except an acquire past
    /// the epoch bound or one that changes nothing.
    pub(crate) fn enabled(&self, state: &State) -> bool {
        let mut actions = Vec::new();
        self.actions(state, &mut actions);
        actions.into_iter().any(|action| {
            !matches!(action, Action::Acquire { .. }) || self.next_state(state, action).is_some()
        })
    }
}

/// How a publish ends, as the adapter's publish decides from its write tally.
enum PublishOutcome {
    /// The tally says stored: commit.
    Stored,
    /// Impossible (or undecided) with a quorum refusing the height: keep the lease and
    /// reconcile again.
    HeightTaken,
    /// Anything else, or a timeout while the tally is undecided: step down.
    Failed,
}

/// The publish's write tally over the replies it heard (the decision depends only on the
/// counts, not on their order).
fn publish_tally(quorum: poa_quorum::Quorum, publish: Publish) -> WriteTally {
    let mut tally = WriteTally::publish(quorum);
    let replies = [
        (publish.acked.count_ones(), WriteReply::Written),
        (u32::from(publish.refused), WriteReply::HeightRefused),
        (u32::from(publish.fenced), WriteReply::Fenced),
    ];
    for (count, reply) in replies {
        for _ in 0..count {
            tally.record(reply);
        }
    }
    tally
}

/// How the publish ends if it ends now: a tally still undecided ends only by its deadline.
fn publish_outcome(quorum: poa_quorum::Quorum, publish: Publish) -> PublishOutcome {
    let tally = publish_tally(quorum, publish);
    match tally.decision() {
        WriteDecision::Stored => PublishOutcome::Stored,
        WriteDecision::Impossible | WriteDecision::Undecided
            if quorum.reached(tally.counts().height_refused) =>
        {
            PublishOutcome::HeightTaken
        }
        WriteDecision::Impossible | WriteDecision::Undecided | WriteDecision::Fenced => {
            PublishOutcome::Failed
        }
    }
}

/// Whether `peer`'s chain extends `producer`'s (longer, same blocks below).
fn extends(peer: &Producer, producer: &Producer) -> bool {
    peer.chain.len() > producer.chain.len()
        && peer
            .chain
            .iter()
            .zip(&producer.chain)
            .all(|(a, b)| a.block == b.block)
}

/// A process restart (a crash, or the operator's restart on another list): memory is lost, the
/// local chain kept, and the new process has a new owner token and an empty epoch floor.
fn restart(producer: &mut Producer) {
    step_down(producer);
    producer.committing.clear();
    producer.incarnation += 1;
    producer.led = Epoch::default();
    producer.standing_aside = false;
}

/// A leader stops leading: its lease, reconciliation and publish are gone from memory. A
/// commit in flight is not abandoned: its block is on a quorum, and it ends on its own.
pub(crate) fn step_down(producer: &mut Producer) {
    producer.epoch = None;
    producer.reconciled = false;
    producer.valid = false;
    producer.publish = None;
}

/// A leader step that checked ownership (and found it): the renewal re-armed the keys of a
/// quorum, and the local validity runs again.
fn renewed(producer: &mut Producer) {
    producer.valid = true;
    producer.fenced_since_check = false;
}

/// An install of the operator's change lands on node `n`: it takes `record`, also where a lease
/// is held, which fences that lease's holder there at once (what a producer skipping its check
/// does not see, as after a wipe).
fn install(state: &mut State, n: u8, record: Record) {
    state.nodes[usize::from(n)].record = Some(record);
    for producer in &mut state.producers {
        producer.fenced_since_check = true;
    }
}

/// The record the operator's procedure is at: the new one once the commit passed, the joint
/// one once a node holds it, the old one before.
pub(crate) fn procedure_at(state: &State) -> Record {
    if state.change_committed {
        Record::New
    } else if state
        .nodes
        .iter()
        .any(|node| node.record == Some(Record::Joint))
    {
        Record::Joint
    } else {
        Record::Old
    }
}

/// How many nodes hold `block`.
pub fn stored_on(nodes: &[RedisNode], block: Block) -> u8 {
    u8::try_from(nodes.iter().filter(|node| node.holds(block)).count()).unwrap_or(u8::MAX)
}

/// A wiped node stops counting against the budget once every committed block it lost is back
/// on a quorum or held by no node at all (trimmed everywhere).
fn forget_recovered_losses(model: &ProtocolModel, state: &mut State) {
    if state.nodes.iter().all(|node| node.lost.is_empty()) {
        return;
    }
    let settled: Vec<Vec<bool>> = state
        .nodes
        .iter()
        .map(|node| {
            node.lost
                .iter()
                .map(|block| {
                    stored_on(&state.nodes, *block) == 0 || model.on_a_quorum(&state.nodes, *block)
                })
                .collect()
        })
        .collect();
    for (node, settled) in state.nodes.iter_mut().zip(settled) {
        let mut settled = settled.into_iter();
        node.lost.retain(|_| !settled.next().unwrap_or(false));
    }
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
        // `new` replayed the start once already, so this cannot fail for a constructed model.
        start::initial_state(self).into_iter().collect()
    }

    fn actions(&self, state: &State, actions: &mut Vec<Action>) {
        for p in 0..self.config.producers {
            self.producer_actions(state, p, actions);
        }
        self.change_actions(state, actions);
        for (n, node) in (0u8..).zip(&state.nodes) {
            if node.script.owner.is_some() && self.may_expire(state, n) {
                actions.push(Action::Expire(n));
            }
            if self.may_wipe(state, n) {
                actions.push(Action::Wipe(n));
            }
        }
        for msg in &state.writes {
            actions.push(Action::DeliverWrite(*msg));
        }
    }

    fn next_state(&self, last: &State, action: Action) -> Option<State> {
        let mut s = last.clone();
        match action {
            Action::Acquire { producer, reach } => self.acquire(&mut s, producer, reach)?,
            Action::Expire(n) => s.nodes[usize::from(n)].script.owner = None,
            Action::ValidityEnds(p) => s.producers[usize::from(p)].valid = false,
            Action::Produce(p) => {
                let token = s.producers[usize::from(p)].token(p);
                let skipped = self.skips_check(&s.producers[usize::from(p)]);
                if skipped {
                    let producer = &s.producers[usize::from(p)];
                    if !producer.fenced_since_check && !self.owns_lease(&s, token, producer.view) {
                        s.skipped_without_lease = true;
                    }
                } else {
                    renewed(&mut s.producers[usize::from(p)]);
                }
                let view = s.producers[usize::from(p)].view;
                let producer = &mut s.producers[usize::from(p)];
                let epoch = producer.epoch?;
                let block = Block {
                    height: producer.tip_height() + 1,
                    producer: p,
                    attempt: producer.attempts,
                    parent: producer.tip(),
                };
                producer.attempts += 1;
                producer.publish = Some(Publish::of(block));
                for node in self.members(view) {
                    insert_sorted(
                        &mut s.writes,
                        WriteMsg {
                            node: *node,
                            token,
                            epoch,
                            block,
                            view,
                        },
                    );
                }
            }
            Action::DeliverWrite(msg) => {
                remove(&mut s.writes, &msg);
                let reply = self.write_on(&mut s, msg, None);
                let held = s.nodes[usize::from(msg.node)].holds(msg.block);
                let p = &mut s.producers[usize::from(msg.token.producer)];
                let quorum = self.quorum(p.view);
                // A reply only matters to the process and publish that sent the request, and only
                // until its tally decides; a late reply to a crashed process, an abandoned publish
                // or a decided tally is discarded.
                if p.incarnation == msg.token.incarnation
                    && let Some(publish) = p.publish.as_mut()
                    && publish.block == msg.block
                    && publish_tally(quorum, *publish).decision() == WriteDecision::Undecided
                {
                    match reply {
                        WriteReply::Written | WriteReply::AlreadyStored => {
                            publish.acked |= 1 << msg.node;
                            if held {
                                publish.held |= 1 << msg.node;
                            }
                        }
                        WriteReply::HeightRefused => publish.refused += 1,
                        WriteReply::Fenced => publish.fenced += 1,
                        WriteReply::Denied | WriteReply::Failed => {}
                    }
                    // The publish returns at the reply that makes its tally say stored.
                    let publish = *publish;
                    if matches!(publish_outcome(quorum, publish), PublishOutcome::Stored) {
                        commit::publish_returned(p, publish, quorum);
                    }
                }
            }
            Action::Commit(_) | Action::CommitAbove(_) | Action::CommitFailed(_) => {
                self.end_commit(&mut s, action)?;
            }
            Action::PublishFailed(p) | Action::LeaseLost(p) => {
                step_down(&mut s.producers[usize::from(p)]);
            }
            Action::PublishRefused(p) => {
                let producer = &mut s.producers[usize::from(p)];
                producer.publish = None;
                producer.reconciled = false;
            }
            Action::Reconcile { producer, read } => {
                renewed(&mut s.producers[usize::from(producer)]);
                self.reconcile(&mut s, producer, read);
            }
            Action::Crash(p) => {
                s.crashes += 1;
                restart(&mut s.producers[usize::from(p)]);
            }
            Action::Restart(p) => {
                let producer = &mut s.producers[usize::from(p)];
                producer.view = producer.view.next()?;
                restart(producer);
            }
            Action::BeginOn(n) => install(&mut s, n, Record::Joint),
            Action::CommitChange => s.change_committed = true,
            Action::CommitOn(n) => install(&mut s, n, Record::New),
            Action::Wipe(n) => self.wipe(&mut s, n),
            Action::CatchUp { producer, from } => {
                let peer = s.producers[usize::from(from)].chain.clone();
                let known = s.producers[usize::from(producer)].chain.len();
                for committed in peer.into_iter().skip(known) {
                    let copied = Committed {
                        source: Source::Peer,
                        ..committed
                    };
                    commit::commit_locally(&mut s, producer, copied);
                }
                s.producers[usize::from(producer)].standing_aside = false;
            }
        }
        forget_recovered_losses(self, &mut s);
        if !matches!(action, Action::Wipe(_))
            && s.nodes
                .iter()
                .zip(&last.nodes)
                .any(|(now, before)| now.script.epoch < before.script.epoch)
        {
            s.epoch_decreased = true;
        }
        Some(s)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        crate::properties::all()
    }
}
