//! The ports `poa-core` is generic over. Each trait is shaped by what the domain service needs,
//! not by what a backend offers; adapters implement them and export no traits of their own.
//!
//! The ports that carry blocks are generic over the embedder's [`Chain`]: an adapter implements
//! them for the chain whose blocks it can build, seal, verify, store or publish
//! (`impl BlockSigner<MyChain> for MySigner`).

use async_trait::async_trait;

use crate::chain::{Chain, HeaderView, SealedBlockView};
use crate::error::{HistoryError, ImportError, ProductionError, ReconciliationError, SigningError};
use crate::leadership::{ChainHead, LeaderState, LeaseStatus};
use crate::primitives::{BlockHeight, BlockId, Timestamp};

/// Leadership and the shared block log, merged into one port: who may produce, what committed
/// blocks the local chain lacks, and publication of a produced block to a quorum.
#[async_trait]
pub trait BlockReconciliationPort<C: Chain>: Send + Sync {
    /// Decides this cycle's role for producing the block above `head` (the local chain's
    /// head), acquiring or confirming the lease as needed, and returns committed blocks the
    /// local chain lacks, each extending the one before it and the first extending `head`.
    ///
    /// # Errors
    ///
    /// Any error (no read quorum, lease lost during repair, a gap or a divergence in the log,
    /// backend failure) means "do not produce this cycle"; it never stands for "nothing to do".
    async fn leader_state(
        &self,
        head: ChainHead,
    ) -> Result<LeaderState<C::SealedBlock>, ReconciliationError>;

    /// Like [`Self::leader_state`] but never acquires the lease: used while this process
    /// stands down (for a rolling upgrade) so it keeps importing committed blocks without
    /// taking the lease back. Never returns [`LeaderState::ReconciledLeader`].
    ///
    /// # Errors
    ///
    /// As [`Self::leader_state`].
    async fn follower_state(
        &self,
        head: ChainHead,
    ) -> Result<LeaderState<C::SealedBlock>, ReconciliationError>;

    /// Gives up the lease if held, so another process can take over without waiting for it to
    /// expire. Idempotent; a no-op for a process that does not lead.
    ///
    /// # Errors
    ///
    /// A backend failure; the lease then expires on its own.
    async fn release(&self) -> Result<(), ReconciliationError>;

    /// Publishes a produced, verified, sealed block to a quorum. Returns only once the block is
    /// durable on a quorum; only then may it be committed locally.
    ///
    /// # Errors
    ///
    /// The block is not known to be on a quorum; it must not be committed locally.
    async fn publish_produced_block(
        &self,
        block: &C::SealedBlock,
    ) -> Result<(), ReconciliationError>;

    /// A read-only snapshot of the lease for operators; never used for decisions.
    fn lease_status(&self) -> LeaseStatus {
        LeaseStatus::default()
    }

    /// A second opinion on the current time from the coordination nodes (the median of the
    /// clocks of a quorum of them, as last measured), so a producer need not trust its own
    /// clock alone before it dates a block. `None` when there is no such opinion (a single
    /// node) or no recent measurement.
    fn time_reference(&self) -> Option<Timestamp> {
        None
    }
}

/// Verification of a block on its own, without the local chain: it belongs to this chain, its
/// contents match its header, and an authorised producer sealed it.
///
/// The shared block log is trusted for quorum, never for validity: anyone who reaches a
/// coordination node can write to it. Reconciliation counts only blocks that pass this check
/// (a vote, evidence of history, a block to repair or to hand back for import); what fails is
/// skipped and counted, never repaired or imported.
pub trait SealVerifier<C: Chain>: Send + Sync {
    /// Checks `block` on its own: chain id, transactions against the header, the seal.
    ///
    /// # Errors
    ///
    /// Why the block is not a block of this chain sealed by an authorised producer.
    fn verify_seal(&self, block: &C::SealedBlock) -> Result<(), ImportError>;
}

/// The local chain: verification and durable commit of blocks.
#[async_trait]
pub trait BlockImporter<C: Chain>: Send + Sync {
    /// The header of the local head (the genesis header at least).
    ///
    /// # Errors
    ///
    /// The local store failed.
    async fn latest_header(&self) -> Result<C::Header, ImportError>;

    /// Verifies a block completely against the local head: chain, height, parent link,
    /// timestamp, transactions against the header, committed transactions not repeated, and
    /// the authority's seal. Changes nothing.
    ///
    /// # Errors
    ///
    /// Why the block is not acceptable as the next block.
    async fn verify(&self, block: &C::SealedBlock) -> Result<(), ImportError>;

    /// Verifies `block` as the child of `committing`: a block this process published whose
    /// commit into the local chain has begun and may end during this call. The checks of
    /// [`Self::verify`] with `committing` in place of the head, and none of the block's
    /// transactions committed locally or included in `committing` (whose transactions are not
    /// committed yet). `committing` must extend the local head, or be it (its commit ended).
    /// Changes nothing.
    ///
    /// What lets the service verify the next block before the commit of the one below it ends,
    /// so the commit runs while the next block is produced and published.
    ///
    /// # Errors
    ///
    /// Why the block is not acceptable as the block after `committing`.
    async fn verify_on_committing(
        &self,
        block: &C::SealedBlock,
        committing: &C::SealedBlock,
    ) -> Result<(), ImportError>;

    /// Commits a verified block atomically and durably as the new head. Re-checks, inside the
    /// same write, that the block extends the current head.
    ///
    /// The service runs at most one commit at a time, in height order: it begins the commit of
    /// a block only after the commit of the block below it ended, and while a commit runs it
    /// may verify ([`Self::verify_on_committing`]) and publish the next block, never commit it.
    ///
    /// # Errors
    ///
    /// The block no longer extends the head, or the local store failed; nothing was written.
    async fn commit(&self, block: C::SealedBlock) -> Result<(), ImportError>;

    /// The committed block at `height`, if the local chain holds it: what a leader publishes
    /// again when the shared log lost it.
    ///
    /// # Errors
    ///
    /// The local store failed.
    async fn block_at(&self, height: BlockHeight) -> Result<Option<C::SealedBlock>, ImportError>;
}

/// The block a new block is built on: the local chain's head, or a block this process published
/// whose commit into the local chain has not ended yet. `C` is the embedder's chain.
pub enum ParentBlock<'a, C: Chain> {
    /// The head of the local chain, committed.
    Head(&'a C::Header),
    /// A block this process published to a quorum whose commit into the local chain has begun
    /// and may end at any moment: it extends the local head and becomes the head once its
    /// commit ends. Its transactions are not committed locally yet, so a block built on it
    /// must leave them out itself.
    Committing(&'a C::SealedBlock),
}

impl<C: Chain> ParentBlock<'_, C> {
    /// The parent's height: the new block is one above it.
    pub fn height(&self) -> BlockHeight {
        match self {
            Self::Head(header) => header.height(),
            Self::Committing(block) => block.height(),
        }
    }

    /// The parent's id: the new block names it as its parent.
    pub fn id(&self) -> BlockId {
        match self {
            Self::Head(header) => header.id(),
            Self::Committing(block) => block.id(),
        }
    }
}

// Not derived: a derive would ask `C: Clone` of the chain, which is only a name for its types.
impl<C: Chain> Clone for ParentBlock<'_, C> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<C: Chain> Copy for ParentBlock<'_, C> {}

impl<C: Chain> std::fmt::Debug for ParentBlock<'_, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self {
            Self::Head(_) => "Head",
            Self::Committing(_) => "Committing",
        };
        f.debug_struct(kind)
            .field("height", &self.height())
            .field("id", &self.id())
            .finish()
    }
}

/// Builds unsealed blocks from pending transactions.
#[async_trait]
pub trait BlockProducer<C: Chain>: Send + Sync {
    /// Builds the block on top of `parent` with the given timestamp (the service passes one no
    /// earlier than the parent's date). It includes no transaction the local chain committed
    /// and, on a [`ParentBlock::Committing`] parent, none that the parent includes: those are
    /// committed once the parent's commit ends, however long they stay in the pool until then.
    ///
    /// # Errors
    ///
    /// The block could not be built.
    async fn produce_block(
        &self,
        parent: ParentBlock<'_, C>,
        timestamp: Timestamp,
    ) -> Result<C::Block, ProductionError>;
}

/// Seals blocks with the chain authority's key.
pub trait BlockSigner<C: Chain>: Send + Sync {
    /// Seals the block (the reference chain signs its id).
    ///
    /// # Errors
    ///
    /// No key that may seal blocks is available.
    fn seal(&self, block: C::Block) -> Result<C::SealedBlock, SigningError>;
}

/// What the domain service needs to know about pending transactions (for instant blocks).
#[async_trait]
pub trait TransactionPool: Send + Sync {
    /// How many transactions are waiting to be included. The transactions of a block whose
    /// commit has not ended may still count: a pool usually drops them once the commit ended.
    /// So while a block's commit runs, the instant trigger produces the next block only when
    /// more than that block's transactions are pending.
    fn pending_count(&self) -> usize;

    /// Resolves once at least one transaction is pending.
    async fn wait_for_pending(&self);
}

/// Wall-clock time for block timestamps. Durations and sleeps use tokio's clock instead, so
/// tests can pause it.
pub trait Clock: Send + Sync {
    /// The current wall-clock time.
    fn now(&self) -> Timestamp;
}

/// Committed blocks from somewhere other than the shared block log (other producers' local
/// chains), for a process whose next height was already trimmed from every stream.
///
/// What it returns is untrusted: the service verifies and commits each block exactly like any
/// imported block.
#[async_trait]
pub trait BlockHistorySource<C: Chain>: Send + Sync {
    /// Up to `max` consecutive committed blocks starting at `next_height`, in height order.
    /// An empty list means no source holds `next_height`.
    ///
    /// # Errors
    ///
    /// [`HistoryError::NoSource`] when none is configured; [`HistoryError::Unavailable`] when
    /// every source failed to answer.
    async fn blocks_from(
        &self,
        next_height: BlockHeight,
        max: usize,
    ) -> Result<Vec<C::SealedBlock>, HistoryError>;

    /// Asks every source, not only the first that answers: up to `max` blocks from
    /// `next_height` from one that holds it, else whether every source answered that it does
    /// not. What a leader needs before it vouches for its own head over a log that lost blocks.
    ///
    /// # Errors
    ///
    /// [`HistoryError::NoSource`] when none is configured.
    async fn ask_every_source(
        &self,
        next_height: BlockHeight,
        max: usize,
    ) -> Result<EverySource<C::SealedBlock>, HistoryError>;
}

/// What every history source answered ([`BlockHistorySource::ask_every_source`]).
/// `B` is the chain's sealed block ([`Chain::SealedBlock`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EverySource<B> {
    /// A source holds the height: its blocks from there (untrusted, verified on import).
    Blocks(Vec<B>),
    /// Every source answered, and none holds the height.
    NoneHolds,
    /// No source that answered holds the height, and these did not answer.
    Unanswered(Vec<String>),
}
