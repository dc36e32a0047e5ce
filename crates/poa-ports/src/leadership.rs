//! What the reconciliation port reports: the leader state of a production cycle and a
//! read-only view of the lease for operators.

use std::time::Duration;

use crate::chain::{HeaderView, SealedBlockView};
use crate::primitives::{BlockHeight, BlockId, Epoch};

/// The local chain's head, as the reconciliation port needs it: the next block must be at the
/// height above it and extend its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChainHead {
    /// The head's height.
    pub height: BlockHeight,
    /// The head's block id.
    pub id: BlockId,
}

impl ChainHead {
    /// The head of a chain whose last block has `header`.
    pub fn of<H: HeaderView>(header: &H) -> Self {
        Self {
            height: header.height(),
            id: header.id(),
        }
    }

    /// The head of a chain whose last block is `block`.
    pub fn of_block<B: SealedBlockView>(block: &B) -> Self {
        Self {
            height: block.height(),
            id: block.id(),
        }
    }

    /// The height of the next block, `None` at the highest representable height.
    pub fn next_height(&self) -> Option<BlockHeight> {
        self.height.next()
    }
}

/// The answer to "may this process produce the next block?", asked once per production cycle.
/// `B` is the chain's sealed block ([`crate::Chain::SealedBlock`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaderState<B> {
    /// This process holds the lease and the shared log holds nothing above the local chain:
    /// it may produce the next height.
    ReconciledLeader,
    /// Another process holds the lease and nothing committed is missing locally: do not
    /// produce; check again after one retry period.
    ReconciledFollower,
    /// Committed blocks above the local chain, in height order. Import them (each verified
    /// like any block) and do not produce in this cycle.
    UnreconciledBlocks(Vec<B>),
}

/// The last outcome of an operation against one coordination node, for status pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeOutcome {
    /// No operation has completed against this node yet.
    Unknown,
    /// The node answered and did what was asked.
    Ok,
    /// The node answered with a domain refusal (lease held, fenced, height taken).
    Refused,
    /// The node did not answer within its timeout; the outcome of the operation is unknown.
    TimedOut,
    /// The connection failed or the node answered with a non-domain error.
    Failed,
}

/// What a coordination node's calls and its client's connection attempts say about it, kept
/// for the whole life of the process: what an operator acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeState {
    /// Nothing answered or failed yet.
    Unknown,
    /// The node answers this process's calls.
    Ok,
    /// The node accepts connections but does not answer in time (half-alive, overloaded).
    TimedOut,
    /// The node answers, but refuses this process: authentication, ACL permissions or TLS.
    /// Retrying cannot help until the settings or the server change.
    Refused,
    /// The node cannot be reached: connections are refused or fail before its handshake.
    Unreachable,
}

impl NodeState {
    /// Every state, in the order status pages and metrics list them.
    pub const ALL: [Self; 5] = [
        Self::Unknown,
        Self::Ok,
        Self::TimedOut,
        Self::Refused,
        Self::Unreachable,
    ];

    /// The state as `/status` and the metrics label it (`timed_out`, ...).
    pub fn label(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Ok => "ok",
            Self::TimedOut => "timed_out",
            Self::Refused => "refused",
            Self::Unreachable => "unreachable",
        }
    }
}

impl NodeOutcome {
    /// The outcome's name as status pages show it: lowercase, words joined by `_`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Ok => "ok",
            Self::Refused => "refused",
            Self::TimedOut => "timed_out",
            Self::Failed => "failed",
        }
    }
}

/// One coordination node as an operator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    /// The node's address with any credentials removed.
    pub node: String,
    /// What the node's calls and connection attempts say about it.
    pub state: NodeState,
    /// Why the node is in its state when that is not `ok`: what it answered (`WRONGPASS ...`,
    /// `NOPERM ...`), the TLS error, or the connection error.
    pub state_reason: Option<String>,
    /// The last outcome of an operation against it.
    pub last_outcome: NodeOutcome,
    /// What the node answered the last time a call failed, while calls keep failing (for
    /// example a key of the wrong type written there by hand); `None` once a call succeeds.
    pub last_error: Option<String>,
}

/// A read-only snapshot of the lease, for `/status` and logs. Never used for safety decisions:
/// the coordination nodes fence every write themselves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaseStatus {
    /// The fencing epoch this process holds, if it leads.
    pub epoch: Option<Epoch>,
    /// How much longer the lease is valid by the local clock, if this process leads.
    pub valid_for: Option<Duration>,
    /// Every coordination node, in configuration order (empty for a single-node deployment).
    pub nodes: Vec<NodeStatus>,
    /// What a follower behind the shared log is waiting for, if anything (for example a block
    /// held by too few nodes that the leader has not repaired yet).
    pub waiting_for: Option<String>,
    /// Why this process's node list matches no membership record of the coordination nodes,
    /// while it does not (it then neither leads nor counts votes): which nodes hold which
    /// record.
    pub membership: Option<String>,
}
