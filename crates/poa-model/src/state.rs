//! The model's state and actions: plain data, no rule (the rules are `poa_quorum`'s, called from
//! `rules.rs`; what happens next is `model.rs`). Node sets are bit masks so states hash and
//! compare cheaply; a node's script state is `poa_quorum::script::NodeState` itself.

use poa_ports::Epoch;
use poa_quorum::script::NodeState;

/// A sealed block named by who sealed it: the producer and its attempt counter (unique, so the
/// height is implied).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockRef {
    /// Producer that sealed the block.
    pub producer: u8,
    /// That producer's attempt counter when it sealed the block.
    pub attempt: u8,
}

/// A block, unique per (producer, attempt): two producers' blocks at one height always differ,
/// and one producer's retry at a height is a different block too (a new timestamp in the real
/// system). Its `parent` is part of the block, as the parent id is part of a real header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Block {
    /// Height the block was produced at (1-based).
    pub height: u8,
    /// Producer that sealed it.
    pub producer: u8,
    /// That producer's attempt counter when it sealed it.
    pub attempt: u8,
    /// The block it extends, `None` for the genesis block.
    pub parent: Option<BlockRef>,
}

impl Block {
    /// Who sealed this block (what the next block names as its parent).
    pub fn reference(&self) -> BlockRef {
        BlockRef {
            producer: self.producer,
            attempt: self.attempt,
        }
    }
}

/// The lease owner token: unique per process start, so a restarted producer is a new owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Token {
    /// Producer index.
    pub producer: u8,
    /// How many times that producer restarted before taking this token.
    pub incarnation: u8,
}

/// A membership record, by its place in a change: what a node holds and what a process joined.
/// Two values are equal exactly when the records' digests are (checked once in `membership.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Record {
    /// The record of the old set (the only one without a change).
    #[default]
    Old,
    /// The joint record naming both sets.
    Joint,
    /// The record of the new set.
    New,
}

impl Record {
    /// Position in the model's record table.
    pub fn index(self) -> usize {
        match self {
            Self::Old => 0,
            Self::Joint => 1,
            Self::New => 2,
        }
    }

    /// The record a process restarted on the next node list joins (`None` after the new one).
    pub fn next(self) -> Option<Self> {
        match self {
            Self::Old => Some(Self::Joint),
            Self::Joint => Some(Self::New),
            Self::New => None,
        }
    }
}

/// A node's place in a membership change. It sorts first in a node, so the symmetry reduction
/// only swaps nodes of one role and each record's member set stays where it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Role {
    /// In the old set and the new one (every node, without a change).
    #[default]
    Kept,
    /// In the old set only: the change retires it.
    Retired,
    /// In the new set only: a fresh server the change adds.
    Added,
}

/// One stream entry: the stored block, its writer's epoch and the record it was written under.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamEntry {
    /// The stored block.
    pub block: Block,
    /// Epoch of the writer.
    pub epoch: Epoch,
    /// The record the writer joined, which the node held (the membership check admitted it):
    /// a copy counts toward a quorum of that record's set only.
    pub record: Record,
}

/// One independent Redis node: the scripts' state (lease key, epoch key, heights index, trim
/// floor) and the stream entries behind the kept heights.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct RedisNode {
    /// Its place in a membership change (fixed).
    pub role: Role,
    /// The membership record it holds (`None`: a fresh server): every script checks the
    /// caller's against it first and refuses a caller of another record.
    pub record: Option<Record>,
    /// What `promote` and `write_block` read and write, as `poa_quorum::script` defines it.
    pub script: NodeState<Token>,
    /// The stream entries of the kept heights, sorted (one per height unless the height check
    /// is mutated away). The model keeps exactly the indexed heights in the stream.
    pub stream: Vec<StreamEntry>,
    /// Committed blocks this node lost to a wipe that are neither back on a quorum nor trimmed
    /// from every node: while any is left, the node counts against the disruption budget.
    pub lost: Vec<Block>,
}

impl RedisNode {
    /// Whether this node holds `block`.
    pub fn holds(&self, block: Block) -> bool {
        self.stream.iter().any(|entry| entry.block == block)
    }

    /// Whether this node holds `block` written under `record`.
    pub fn holds_under(&self, block: Block, record: Record) -> bool {
        self.stream
            .iter()
            .any(|entry| entry.block == block && entry.record == record)
    }
}

/// Where a block of a local chain came from, with the evidence "commit only after quorum" checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    /// Published by this producer and committed with a quorum of acknowledgements: how many
    /// of the acknowledging nodes held the block when they acknowledged it.
    Published {
        /// Acknowledging nodes that held the block at their acknowledgement.
        holders: u8,
        /// The quorum of the record the producer counted under.
        quorum: u8,
    },
    /// Imported by a reconciliation (committed or proven committed).
    Log,
    /// Copied from a peer's local chain while catching up.
    Peer,
}

/// A block in a producer's local chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Committed {
    /// The committed block.
    pub block: Block,
    /// Where it came from.
    pub source: Source,
}

/// A publish in flight: the block and the replies its write tally heard. As in the adapter, the
/// tally hears replies only until it decides; later replies are discarded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Publish {
    /// The block being published.
    pub block: Block,
    /// Nodes that answered written / already stored (bit mask).
    pub acked: u8,
    /// Acknowledging nodes that held the block right after their write (bit mask): a node may
    /// answer written and trim the block at once when it keeps higher heights.
    pub held: u8,
    /// How many nodes refused the height (another block holds it, or it is below the node's
    /// trim floor).
    pub refused: u8,
    /// How many nodes fenced the write (not the owner, or a stale epoch).
    pub fenced: u8,
}

impl Publish {
    /// A publish of `block` that has heard no reply yet.
    pub fn of(block: Block) -> Self {
        Self {
            block,
            acked: 0,
            held: 0,
            refused: 0,
            fenced: 0,
        }
    }
}

/// One producer process (`poa-node`). Everything except `chain` and `attempts` is in memory and
/// lost on a crash.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Producer {
    /// The membership record this process joined: the node list it was started with (old,
    /// both, new). Kept across a crash; an operator's restart on the next list moves it on.
    pub view: Record,
    /// Restarts so far; with the producer index it forms the owner token.
    pub incarnation: u8,
    /// Believed epoch while leading; `None` for a follower.
    pub epoch: Option<Epoch>,
    /// The highest epoch this process has led with (0 before its first leadership): the floor
    /// every promote carries.
    pub led: Epoch,
    /// Whether this leadership generation finished its reconciliation (a scan imported nothing).
    pub reconciled: bool,
    /// The lease is locally valid: a quorum grant or a renewal (a leader step that checked
    /// ownership) since which the validity has not run out (`ValidityEnds`). While it is, the
    /// keys of a quorum do not expire, and a reconciled leader produces without the check.
    pub valid: bool,
    /// A node lost its data (and with it this process's key), or took a membership record of
    /// the operator's change (which refuses this process there at once), since this process
    /// last checked its ownership: what the check would have seen, and a skipping leader does
    /// not.
    pub fenced_since_check: bool,
    /// The process stopped competing for the lease (a gap, a divergence) until it caught up from
    /// a peer.
    pub standing_aside: bool,
    /// The in-flight publish, if any: undecided, or decided and not stored. A publish whose
    /// tally says stored has returned: its block joins `committing`.
    pub publish: Option<Publish>,
    /// This process's blocks that a quorum stored and whose commit has not ended, lowest first:
    /// the first one's commit runs, the next (published on it) waits for it. In memory only: a
    /// crash loses them from this process (a quorum stored them).
    pub committing: Vec<Committed>,
    /// Durable local chain, index `h - 1` holds height `h`.
    pub chain: Vec<Committed>,
    /// Blocks sealed so far (durable so block ids stay unique across restarts).
    pub attempts: u8,
}

impl Producer {
    /// The owner token of the current process.
    pub fn token(&self, index: u8) -> Token {
        Token {
            producer: index,
            incarnation: self.incarnation,
        }
    }

    /// The local chain's height.
    pub fn height(&self) -> u8 {
        u8::try_from(self.chain.len()).unwrap_or(u8::MAX)
    }

    /// The local head, as the parent of the next block (`None` at genesis).
    pub fn head(&self) -> Option<BlockRef> {
        self.chain
            .last()
            .map(|committed| committed.block.reference())
    }

    /// The block the next one is produced on: the last one committing, else the local head.
    pub fn tip(&self) -> Option<BlockRef> {
        self.committing
            .last()
            .map(|committed| committed.block.reference())
            .or_else(|| self.head())
    }

    /// The height of [`Self::tip`].
    pub fn tip_height(&self) -> u8 {
        u8::try_from(self.chain.len() + self.committing.len()).unwrap_or(u8::MAX)
    }
}

/// A `write_block` request on the wire: it may land late (after its sender gave up or crashed)
/// or never.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WriteMsg {
    /// Target node.
    pub node: u8,
    /// Sender's owner token.
    pub token: Token,
    /// Sender's epoch.
    pub epoch: Epoch,
    /// The block.
    pub block: Block,
    /// The record the sender joined (its scripts carry that record's digest).
    pub view: Record,
}

/// The whole system.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct State {
    /// The Redis nodes.
    pub nodes: Vec<RedisNode>,
    /// The producers.
    pub producers: Vec<Producer>,
    /// Write requests in flight (sorted, so equal sets hash equally).
    pub writes: Vec<WriteMsg>,
    /// Crashes so far (bounded).
    pub crashes: u8,
    /// Node wipes so far (bounded).
    pub wipes: u8,
    /// Set by a transition other than a wipe that lowered a node's epoch (checked, never
    /// expected).
    pub epoch_decreased: bool,
    /// Set by a `write_block` (publish or repair) accepted from a token that held the lease key
    /// on no node at that moment, after which its block was on a quorum (checked, never
    /// expected).
    pub lapsed_write_to_quorum: bool,
    /// Set when a reconciliation completed (the leader may produce) while a block above the
    /// leader's chain was on a quorum or in another producer's chain (checked, never expected).
    pub reconciled_behind: bool,
    /// Set when a process took a leadership at an epoch not above one it had led with before
    /// (checked, never expected).
    pub epoch_reused: bool,
    /// Set when a repair replaced a committed block on a node: one in a local chain, on a
    /// quorum, or published with a tally that says stored (checked, never expected).
    pub replaced_committed: bool,
    /// Set when a leader produced without the ownership check while its token held the lease
    /// on fewer than a quorum of nodes and no node had lost its data since its last check
    /// (checked, never expected).
    pub skipped_without_lease: bool,
    /// The membership change's commit command passed its checks: the new record's installs
    /// may land on the new set's nodes holding the joint record.
    pub change_committed: bool,
    /// Local commits that failed so far (bounded).
    pub commit_failures: u8,
    /// Set when a block joined a local chain whose head was not its parent: committed before
    /// the block below it, or above a height the chain lacks (checked, never expected).
    pub committed_before_parent: bool,
}

/// One step of the system.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// An acquire attempt: `promote` on the reachable nodes (bit mask), the replies tallied; the
    /// producer leads iff a quorum granted, with the highest epoch returned.
    Acquire {
        /// Producer.
        producer: u8,
        /// Nodes the attempt reached.
        reach: u8,
    },
    /// The lease key's TTL runs out on one node. A locally valid leader's keys on a quorum do
    /// not: the validity ends first.
    Expire(u8),
    /// A leader's local validity runs out (time passes without a renewal).
    ValidityEnds(u8),
    /// A leader's cycle starts with an ownership check that finds its token on fewer than a
    /// quorum of nodes: it steps down (its release is lost).
    LeaseLost(u8),
    /// A reconciled leader seals the next block and sends `write_block` to every node; while its
    /// lease is locally valid it skips the ownership check.
    Produce(u8),
    /// A write request lands on its node (`write_block` runs) and a success reply reaches the
    /// sender at once. Loss and delay need no actions of their own: a request may stay in flight
    /// across any number of other steps, and the sender may time out first.
    DeliverWrite(WriteMsg),
    /// The commit of the producer's lowest committing block (the write tally said stored) ends
    /// well: the block joins the local chain, and the commit of the block published on it, if
    /// that one is stored too, begins.
    Commit(u8),
    /// The commit of the producer's lowest committing block fails (its disk): nothing above it
    /// is committed, the process steps down and catches up like any process behind.
    CommitFailed(u8),
    /// The commit of the block published on the committing one ends first. Only under
    /// [`crate::Mutation::CommitsOutOfOrder`]: the pipeline's commits are in height order.
    CommitAbove(u8),
    /// The publish fails without a quorum of refusals: it times out below quorum at any moment
    /// before its tally decides, or the tally says fenced, or impossible with fewer than a
    /// quorum refusing the height. The producer steps down (its release is lost: the keys linger
    /// until they expire) and must reconcile in its next leadership.
    PublishFailed(u8),
    /// The publish's tally says impossible and a quorum refused the height (`HeightTaken`): the
    /// producer keeps its lease, and its leadership must reconcile again before it produces.
    PublishRefused(u8),
    /// A leader reads the given nodes (bit mask), walks the view, repairs and imports.
    Reconcile {
        /// Producer.
        producer: u8,
        /// Nodes whose reads succeeded.
        read: u8,
    },
    /// The process crashes and restarts: in-memory state is lost, the local chain is kept.
    Crash(u8),
    /// A Redis node loses all its data (restarted empty), within the disruption budget.
    Wipe(u8),
    /// A process standing aside copies the blocks it lacks from a peer's local chain (`--peer`)
    /// and competes again.
    CatchUp {
        /// The process catching up.
        producer: u8,
        /// The peer it copies from.
        from: u8,
    },
    /// The operator restarts a process on the next node list (old, then both with
    /// `--next-redis-url`, then new): a crash that also moves the process's record on.
    Restart(u8),
    /// `membership begin`'s install of the joint record lands on a node holding the old record
    /// or none (a fresh server given its id).
    BeginOn(u8),
    /// `membership commit` reads every node and passes its checks (the joint record on a quorum
    /// of each set, the window on a quorum of the new set).
    CommitChange,
    /// The commit's install of the new record lands on a node of the new set holding the joint
    /// record.
    CommitOn(u8),
}

/// Node symmetry: nodes are interchangeable, so a state is replaced by the one with its nodes
/// sorted, every node index and node mask renamed accordingly.
impl stateright::Representative for State {
    fn representative(&self) -> Self {
        let mut order: Vec<usize> = (0..self.nodes.len()).collect();
        order.sort_by(|a, b| self.nodes[*a].cmp(&self.nodes[*b]));
        // new_index[old] = position of old node in the sorted order
        let mut new_index = vec![0u8; order.len()];
        for (new, old) in order.iter().enumerate() {
            new_index[*old] = u8::try_from(new).unwrap_or(u8::MAX);
        }
        let remap = |mask: u8| {
            (0..new_index.len())
                .filter(|old| mask & (1 << old) != 0)
                .fold(0u8, |acc, old| acc | (1 << new_index[old]))
        };
        let mut writes: Vec<WriteMsg> = self
            .writes
            .iter()
            .map(|w| WriteMsg {
                node: new_index[usize::from(w.node)],
                ..*w
            })
            .collect();
        writes.sort();
        Self {
            nodes: order.iter().map(|old| self.nodes[*old].clone()).collect(),
            producers: self
                .producers
                .iter()
                .map(|p| Producer {
                    publish: p.publish.map(|publish| Publish {
                        acked: remap(publish.acked),
                        held: remap(publish.held),
                        ..publish
                    }),
                    ..p.clone()
                })
                .collect(),
            writes,
            crashes: self.crashes,
            wipes: self.wipes,
            epoch_decreased: self.epoch_decreased,
            lapsed_write_to_quorum: self.lapsed_write_to_quorum,
            reconciled_behind: self.reconciled_behind,
            epoch_reused: self.epoch_reused,
            replaced_committed: self.replaced_committed,
            skipped_without_lease: self.skipped_without_lease,
            change_committed: self.change_committed,
            commit_failures: self.commit_failures,
            committed_before_parent: self.committed_before_parent,
        }
    }
}
