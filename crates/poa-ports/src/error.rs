//! Typed errors of every port, so the domain service can branch on the cause.

use crate::primitives::{BlockHeight, BlockId, ChainId, Timestamp};

/// A boxed error from an adapter's backend, kept as the source of a port error.
pub type BackendError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Errors of the reconciliation port (lease, publish, reconciliation).
#[derive(Debug, thiserror::Error)]
pub enum ReconciliationError {
    /// Publishing requires a fencing epoch, which only a lease holder has.
    #[error("no fencing epoch held: only the lease holder can publish")]
    NoEpoch,
    /// Fewer coordination nodes than the quorum answered successfully.
    #[error("{operation} reached {acked} of the {needed} nodes a quorum needs")]
    NoQuorum {
        /// Which operation (`publish`, `owner_check`, `reconcile_read`, `promote`, `repair`).
        operation: &'static str,
        /// Nodes that answered successfully.
        acked: usize,
        /// The quorum size.
        needed: usize,
    },
    /// The lease was lost (another owner or a newer epoch) while this process acted as leader.
    #[error("fenced: {reason}")]
    Fenced {
        /// What the fencing node reported.
        reason: String,
    },
    /// A quorum of coordination nodes refuses this process the operation for its credentials
    /// or permissions (authentication, an ACL, TLS): every retry meets the same refusal until
    /// the settings or the servers change.
    #[error(
        "{operation} refused by a quorum of coordination nodes for this process's credentials or permissions: see each node's state"
    )]
    Denied {
        /// Which operation (`publish`).
        operation: &'static str,
    },
    /// A quorum of nodes already holds another block at this height.
    #[error("height {height} already holds another block on a quorum")]
    HeightTaken {
        /// The contested height.
        height: BlockHeight,
    },
    /// Blocks above the local chain exist but could not be brought to a quorum.
    #[error("backlog at height {height} is unresolved: {reason}")]
    UnresolvedBacklog {
        /// The first height that could not be resolved.
        height: BlockHeight,
        /// Why.
        reason: String,
    },
    /// The shared block log no longer holds the next height (every stream was trimmed past
    /// the local chain): the blocks must come from a [`crate::BlockHistorySource`].
    #[error("the shared block log no longer holds height {next_height}: fetch it from a peer")]
    HistoryGap {
        /// The first height the local chain lacks.
        next_height: BlockHeight,
    },
    /// A quorum of coordination nodes holds nothing as high as the local head: the shared log
    /// lost blocks this process committed (nodes emptied or restored from old snapshots beyond
    /// the disruption budget). Producing on the local head alone could fork from a process
    /// that committed more: the service first asks every peer.
    #[error(
        "the shared block log lost blocks this process committed: it reaches {}, the local head is at {head}",
        log_top.map_or_else(|| "no height".to_owned(), |height| format!("height {height}"))
    )]
    LogBehindHead {
        /// The local head's height.
        head: BlockHeight,
        /// The highest height the answering nodes hold, if any.
        log_top: Option<BlockHeight>,
    },
    /// The shared log's block at this height does not extend the local chain: the log holds
    /// another chain (a second fleet on the same keys, a restored or foreign store) or the local
    /// chain is not the log's. Nothing is produced or imported until an operator resolves it.
    #[error(
        "the shared block log's block {block} at height {height} does not extend the local chain"
    )]
    Diverged {
        /// The first height where the log and the local chain differ.
        height: BlockHeight,
        /// The block the log holds there.
        block: BlockId,
    },
    /// Two different blocks at this height are each extended by a verified block above it: the
    /// log contradicts itself, and no block can be chosen from it.
    #[error("the shared block log holds two extended blocks at height {height}")]
    ConflictingHistory {
        /// The contradictory height.
        height: BlockHeight,
    },
    /// So many coordination nodes hold something other than a block of this chain at the next
    /// height (entries that fail verification, blocks of another chain) that no block can reach
    /// a quorum there. Producing would only be refused; an operator must remove what does not
    /// belong (entries proven invalid can be removed by the adapter) or find who writes it.
    #[error("height {height} is blocked on the shared block log: {detail}")]
    HeightBlocked {
        /// The blocked height.
        height: BlockHeight,
        /// Which nodes hold what there, and why it does not count.
        detail: String,
    },
    /// This process's coordination nodes do not match the membership record they hold (another
    /// node list, a replaced or wiped node beyond the disruption budget): it neither leads nor
    /// counts votes until an operator fixes the list or the record.
    #[error("membership mismatch: {detail}")]
    Membership {
        /// Which nodes hold which record, and what does not match.
        detail: String,
    },
    /// The backend failed in a way the port does not model.
    #[error("coordination backend failed")]
    Backend(#[source] BackendError),
}

/// Errors of a source of committed blocks beyond the shared block log.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// No source (peer) is configured.
    #[error("no history source (peer) is configured")]
    NoSource,
    /// No configured source answered.
    #[error("none of the {sources} history sources answered: {reason}")]
    Unavailable {
        /// How many sources were asked.
        sources: usize,
        /// The last failure, for operators.
        reason: String,
    },
}

/// Errors of the importer: verification and local commit.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The block belongs to another chain.
    #[error("block is for chain {found}, this chain is {expected}")]
    WrongChain {
        /// This chain.
        expected: ChainId,
        /// The block's chain.
        found: ChainId,
    },
    /// The block is not the next height of the local chain.
    #[error("block height {found} is not the next height {expected}")]
    WrongHeight {
        /// The next height of the local chain.
        expected: BlockHeight,
        /// The block's height.
        found: BlockHeight,
    },
    /// The block does not extend the local head.
    #[error("block at height {height} has parent {found}, local head is {expected}")]
    WrongParent {
        /// The block's height.
        height: BlockHeight,
        /// The local head's id.
        expected: BlockId,
        /// The block's parent id.
        found: BlockId,
    },
    /// The block's timestamp is earlier than its parent's.
    #[error("block at height {height} has timestamp {found}, earlier than its parent's {parent}")]
    TimestampBeforeParent {
        /// The block's height.
        height: BlockHeight,
        /// The parent's timestamp.
        parent: Timestamp,
        /// The block's timestamp.
        found: Timestamp,
    },
    /// The block is dated further ahead of the local clock than the allowed clock skew: a
    /// producer's clock ran ahead, and every later block would carry that time.
    #[error(
        "block at height {height} is dated {found}, beyond the local clock plus the allowed skew ({limit})"
    )]
    TimestampInFuture {
        /// The block's height.
        height: BlockHeight,
        /// The block's timestamp.
        found: Timestamp,
        /// The local clock plus the allowed skew when it was checked.
        limit: Timestamp,
    },
    /// The header's transaction root or count does not match the transactions carried.
    #[error("block at height {height} carries transactions that do not match its header")]
    TransactionsMismatch {
        /// The block's height.
        height: BlockHeight,
    },
    /// The seal is not a valid signature of the configured authority (or a genesis seal above
    /// height 0).
    #[error("block at height {height} is not sealed by the chain authority")]
    InvalidSeal {
        /// The block's height.
        height: BlockHeight,
    },
    /// A transaction in the block is already committed at an earlier height.
    #[error("block at height {height} repeats a committed transaction")]
    DuplicateTransaction {
        /// The block's height.
        height: BlockHeight,
    },
    /// The local store failed; the message carries the store's own error (the file, the cause,
    /// the fix), since status pages show only this message.
    #[error("local block storage failed: {0}")]
    Storage(BackendError),
}

/// Errors of the block producer.
#[derive(Debug, thiserror::Error)]
pub enum ProductionError {
    /// The producer could not build a block.
    #[error("block production failed: {reason}")]
    Failed {
        /// Why.
        reason: String,
    },
    /// The local store failed while producing; the message carries the store's own error.
    #[error("block production could not read local state: {0}")]
    Storage(BackendError),
}

/// Errors of the block signer.
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    /// The signer has no key that may seal blocks of this chain.
    #[error("no authority key available to seal blocks")]
    NoKey,
}
