//! [`RedbBlockImporter`]: the `BlockImporter` port over [`ChainStore`], and the async reads of
//! the local chain that the node's HTTP API serves.
//!
//! After a commit it removes the block's transactions from the pool, so a committed transaction
//! is never offered for another block. It verifies and writes nothing itself: the rules are in
//! `verify`, the writes in `storage`. It verifies a block on a parent whose commit has not ended
//! from the parent itself and two reads of the store (its head, then which of the block's
//! transactions it committed), since that commit may end between them.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use crate::{Header, ReferenceChain, SealedBlock};
use async_trait::async_trait;
use poa_ports::{
    BlockHeight, BlockId, BlockImporter, Clock, ImportError, SealedBlockView, Timestamp,
    TransactionId,
};

use crate::error::StorageError;
use crate::pool::MemoryTransactionPool;
use crate::storage::ChainStore;
use crate::verify::verify_block;

/// The local chain as the domain service imports into it. Cheap to clone: clones share the
/// store and the pool.
#[derive(Clone)]
pub struct RedbBlockImporter {
    store: ChainStore,
    pool: MemoryTransactionPool,
    future_limit: Option<(Arc<dyn Clock>, Duration)>,
}

impl std::fmt::Debug for RedbBlockImporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbBlockImporter")
            .field("store", &self.store)
            .field(
                "max_clock_skew",
                &self.future_limit.as_ref().map(|(_, skew)| skew),
            )
            .finish_non_exhaustive()
    }
}

impl RedbBlockImporter {
    /// An importer committing into `store` and removing committed transactions from `pool`.
    pub fn new(store: ChainStore, pool: MemoryTransactionPool) -> Self {
        Self {
            store,
            pool,
            future_limit: None,
        }
    }

    /// Refuses, in `verify`, a block dated more than `max_skew` ahead of `clock`: a producer
    /// whose clock ran ahead would otherwise date the chain in the future for good (every later
    /// block is dated at least as late as its parent).
    #[must_use]
    pub fn with_max_clock_skew(mut self, clock: Arc<dyn Clock>, max_skew: Duration) -> Self {
        self.future_limit = Some((clock, max_skew));
        self
    }

    /// Refuses a block dated beyond the clock plus the allowed skew, when a limit is set.
    fn check_not_in_future(&self, block: &SealedBlock) -> Result<(), ImportError> {
        let Some((clock, max_skew)) = &self.future_limit else {
            return Ok(());
        };
        let limit = Timestamp::from_unix_millis(
            clock
                .now()
                .as_unix_millis()
                .saturating_add(u64::try_from(max_skew.as_millis()).unwrap_or(u64::MAX)),
        );
        let found = block.block.header.timestamp;
        if found > limit {
            return Err(ImportError::TimestampInFuture {
                height: block.height(),
                found,
                limit,
            });
        }
        Ok(())
    }

    /// The store, for synchronous reads outside a runtime.
    pub fn store(&self) -> &ChainStore {
        &self.store
    }

    /// The block with the greatest height (genesis at least).
    ///
    /// # Errors
    ///
    /// The store failed.
    pub async fn head(&self) -> Result<SealedBlock, StorageError> {
        self.store.run_blocking(ChainStore::head).await
    }

    /// The block at `height`, if committed.
    ///
    /// # Errors
    ///
    /// The store failed.
    pub async fn block_at(&self, height: BlockHeight) -> Result<Option<SealedBlock>, StorageError> {
        self.store
            .run_blocking(move |store| store.block_at(height))
            .await
    }

    /// The committed block with this id, if any.
    ///
    /// # Errors
    ///
    /// The store failed.
    pub async fn block_by_id(&self, id: BlockId) -> Result<Option<SealedBlock>, StorageError> {
        self.store
            .run_blocking(move |store| store.block_by_id(id))
            .await
    }

    /// The height of the block that committed this transaction, if any.
    ///
    /// # Errors
    ///
    /// The store failed.
    pub async fn transaction_height(
        &self,
        id: TransactionId,
    ) -> Result<Option<BlockHeight>, StorageError> {
        self.store
            .run_blocking(move |store| store.transaction_height(&id))
            .await
    }

    /// Whether a committed block holds this transaction.
    ///
    /// # Errors
    ///
    /// The store failed.
    pub async fn is_committed(&self, id: TransactionId) -> Result<bool, StorageError> {
        self.store
            .run_blocking(move |store| store.is_committed(&id))
            .await
    }

    /// Which of `ids` a committed block holds, in one read (a relay batch asks for hundreds).
    ///
    /// # Errors
    ///
    /// The store failed.
    pub async fn committed_among(
        &self,
        ids: Vec<TransactionId>,
    ) -> Result<HashSet<TransactionId>, StorageError> {
        self.store
            .run_blocking(move |store| store.committed_among(&ids))
            .await
    }
}

#[async_trait]
impl BlockImporter<ReferenceChain> for RedbBlockImporter {
    async fn latest_header(&self) -> Result<Header, ImportError> {
        let head = self.store.run_blocking(ChainStore::head).await?;
        Ok(head.block.header)
    }

    async fn verify(&self, block: &SealedBlock) -> Result<(), ImportError> {
        self.check_not_in_future(block)?;
        let block = block.clone();
        self.store
            .run_blocking(move |store| store.verify(&block))
            .await
    }

    async fn verify_on_committing(
        &self,
        block: &SealedBlock,
        committing: &SealedBlock,
    ) -> Result<(), ImportError> {
        self.check_not_in_future(block)?;
        let block = block.clone();
        let committing = committing.clone();
        self.store
            .run_blocking(move |store| verify_on_committing(store, &block, &committing))
            .await
    }

    async fn commit(&self, block: SealedBlock) -> Result<(), ImportError> {
        let height = block.height();
        let id = block.id();
        let transaction_ids: Vec<TransactionId> = block
            .block
            .transactions
            .iter()
            .map(|transaction| transaction.id())
            .collect();
        self.store
            .run_blocking(move |store| store.commit(&block))
            .await?;
        self.pool.remove_committed(&transaction_ids);
        tracing::debug!(
            height = %height,
            id = %id,
            transactions = transaction_ids.len(),
            "block committed"
        );
        Ok(())
    }

    async fn block_at(&self, height: BlockHeight) -> Result<Option<SealedBlock>, ImportError> {
        Ok(RedbBlockImporter::block_at(self, height).await?)
    }
}

/// Verifies `block` as the child of `committing`, whose commit may end while this runs: the
/// store's head must be `committing` or its parent, and the block's transactions must be new to
/// the store and to `committing`. The head is read before the transactions: a commit of
/// `committing` between the two reads only adds transactions `committing` already names, and
/// no other commit runs meanwhile (the service commits one block at a time).
fn verify_on_committing(
    store: &ChainStore,
    block: &SealedBlock,
    committing: &SealedBlock,
) -> Result<(), ImportError> {
    let head = store.head()?;
    if head.id() != committing.id() && head.id() != committing.parent_id() {
        return Err(ImportError::WrongParent {
            height: committing.height(),
            expected: head.id(),
            found: committing.parent_id(),
        });
    }
    let included: HashSet<TransactionId> = transaction_ids(committing).collect();
    let ids: Vec<TransactionId> = transaction_ids(block).collect();
    let committed = store.committed_among(&ids)?;
    verify_block(store.spec(), &committing.block.header, block, |id| {
        Ok(included.contains(id) || committed.contains(id))
    })
}

/// The ids of the block's transactions, in block order.
fn transaction_ids(block: &SealedBlock) -> impl Iterator<Item = TransactionId> + '_ {
    block
        .block
        .transactions
        .iter()
        .map(poa_ports::Transaction::id)
}
