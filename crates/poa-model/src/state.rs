//! The model's state and actions: plain data, no protocol logic (that lives in `protocol.rs` and
//! `model.rs`). Node sets are bit masks so states hash and compare cheaply.

/// A block, unique per (producer, attempt): two producers' blocks at one height always differ, and
/// one producer's retry at a height is a different block too (a new timestamp in the real system).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockId {
    /// Height the block was produced at (1-based).
    pub height: u8,
    /// Producer that sealed it.
    pub producer: u8,
    /// That producer's attempt counter when it sealed it.
    pub attempt: u8,
}

/// The lease owner token: unique per process start, so a restarted producer is a new owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Token {
    /// Producer index.
    pub producer: u8,
    /// How many times that producer restarted before taking this token.
    pub incarnation: u8,
}

/// One stream entry (and its heights-index member) on a Redis node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Entry {
    /// The stored block.
    pub id: BlockId,
    /// Epoch of the writer.
    pub epoch: u8,
}

/// One independent Redis node: lease key, epoch key, stream + heights index.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct RedisNode {
    /// `P`: the lease owner, `None` when absent or expired.
    pub owner: Option<Token>,
    /// `P:epoch:token`: never expires.
    pub epoch: u8,
    /// Stream entries in append order (one per height unless the height check is mutated away).
    pub entries: Vec<Entry>,
}

/// A block in a producer's local chain, with the evidence checked by "commit after quorum".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Committed {
    /// The committed block.
    pub id: BlockId,
    /// How many nodes held it at the moment of the local commit.
    pub holders: u8,
}

/// A publish in flight: the block and the nodes whose success reply arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Publish {
    /// The block being published.
    pub id: BlockId,
    /// Nodes that answered written / already stored (bit mask).
    pub acked: u8,
}

/// One producer process (`poa-node`). Everything except `chain` and `attempts` is in memory and lost
/// on a crash.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Producer {
    /// Restarts so far; with the producer index it forms the owner token.
    pub incarnation: u8,
    /// Believed epoch while leading; `None` for a follower.
    pub epoch: Option<u8>,
    /// Whether this leadership generation finished its full reconciliation.
    pub reconciled: bool,
    /// The in-flight publish, if any.
    pub publish: Option<Publish>,
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
}

/// A `write_block` request on the wire: it may land late (after its sender gave up or crashed) or
/// never.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WriteMsg {
    /// Target node.
    pub node: u8,
    /// Sender's owner token.
    pub token: Token,
    /// Sender's epoch.
    pub epoch: u8,
    /// The block.
    pub id: BlockId,
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
    /// Set by a transition that lowered a node's epoch (checked, never expected).
    pub epoch_decreased: bool,
    /// Set by a `write_block` (publish or repair) accepted from a token that held the lease key on
    /// no node at that moment, after which its block was on a quorum (PROTOCOL.md invariant 3;
    /// checked, never expected).
    pub lapsed_write_to_quorum: bool,
    /// Set when a reconciliation completed (the leader may produce) while a block above the
    /// leader's chain was already on a quorum (checked, never expected).
    pub reconciled_below_quorum_block: bool,
}

/// One step of the system.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// An acquire attempt: `promote` on the reachable nodes (bit mask), all replies counted; the
    /// producer leads iff a quorum granted, with the highest epoch returned.
    Acquire {
        /// Producer.
        producer: u8,
        /// Nodes the attempt reached.
        reach: u8,
    },
    /// The lease key's TTL runs out on one node.
    Expire(u8),
    /// A reconciled leader seals the next block and sends `write_block` to every node.
    Produce(u8),
    /// A write request lands on its node (`write_block` runs) and a success reply reaches the
    /// sender at once. Loss and delay need no actions of their own (see the crate docs): a request
    /// may stay in flight across any number of other steps, and the sender may time out first.
    DeliverWrite(WriteMsg),
    /// The producer commits its published block locally (needs a quorum of acks).
    Commit(u8),
    /// The publish times out below quorum: the producer releases leadership and must reconcile in
    /// its next generation.
    PublishFailed(u8),
    /// A leader reads the given nodes (bit mask), votes, repairs and imports.
    Reconcile {
        /// Producer.
        producer: u8,
        /// Nodes whose reads succeeded.
        read: u8,
    },
    /// The process crashes and restarts: in-memory state is lost, the local chain is kept.
    Crash(u8),
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
                        ..publish
                    }),
                    ..p.clone()
                })
                .collect(),
            writes,
            crashes: self.crashes,
            epoch_decreased: self.epoch_decreased,
            lapsed_write_to_quorum: self.lapsed_write_to_quorum,
            reconciled_below_quorum_block: self.reconciled_below_quorum_block,
        }
    }
}
