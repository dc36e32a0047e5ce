//! [`PoolBlockProducer`]: the `BlockProducer` port, building the next block from the pool's
//! oldest transactions within [`BlockLimits`].
//!
//! It never removes a transaction it includes (only a commit does), but it drops from the pool
//! any transaction the chain has already committed, so a resubmitted transaction is neither
//! included twice nor left to clog the pool. On a parent whose commit has not ended it passes
//! over the parent's transactions, which stay in the pool until that commit ends. It neither
//! seals nor verifies.

use crate::block::transactions_root;
use crate::{Block, Header, ReferenceChain};
use async_trait::async_trait;
use poa_ports::Transaction;
use poa_ports::{BlockProducer, ParentBlock, ProductionError, Timestamp, TransactionId};

use crate::pool::MemoryTransactionPool;
use crate::storage::ChainStore;

/// Bounds of one block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockLimits {
    /// Most transactions in one block.
    pub max_transactions: usize,
    /// Most bytes of transactions in one block.
    pub max_bytes: usize,
}

impl BlockLimits {
    /// The limits a node runs with unless configured otherwise: 1,000 transactions and 1 MiB
    /// of transaction bytes per block. The byte bound keeps one encoded block well within what
    /// a Redis stream entry and one fsync comfortably carry; it is above
    /// [`crate::PoolLimits::standard`]'s per-transaction limit, so every accepted transaction
    /// fits in a block.
    pub const fn standard() -> Self {
        Self {
            max_transactions: 1_000,
            max_bytes: 1024 * 1024,
        }
    }
}

/// Builds blocks from the pool on top of the local chain.
#[derive(Debug, Clone)]
pub struct PoolBlockProducer {
    store: ChainStore,
    pool: MemoryTransactionPool,
    limits: BlockLimits,
}

impl PoolBlockProducer {
    /// A producer taking transactions from `pool`, asking `store` which are committed, and
    /// filling blocks up to `limits`.
    pub fn new(store: ChainStore, pool: MemoryTransactionPool, limits: BlockLimits) -> Self {
        Self {
            store,
            pool,
            limits,
        }
    }

    /// The pool's oldest transactions within the block limits, passing over `left_out` (the
    /// transactions of a parent still being committed), minus those already committed, which
    /// are dropped from the pool.
    async fn select_uncommitted(
        &self,
        left_out: &[TransactionId],
    ) -> Result<Vec<Transaction>, ProductionError> {
        let candidates: Vec<(TransactionId, Transaction)> = self
            .pool
            .select_leaving_out(
                self.limits.max_transactions,
                self.limits.max_bytes,
                left_out,
            )
            .into_iter()
            .map(|transaction| (transaction.id(), transaction))
            .collect();
        let ids: Vec<TransactionId> = candidates.iter().map(|(id, _)| *id).collect();
        let committed = self
            .store
            .run_blocking(move |store| store.committed_among(&ids))
            .await
            .map_err(|error| ProductionError::Storage(Box::new(error)))?;
        if !committed.is_empty() {
            let committed: Vec<TransactionId> = committed.iter().copied().collect();
            let dropped = self.pool.remove_committed(&committed);
            tracing::debug!(dropped, "committed transactions dropped from pool");
        }
        Ok(candidates
            .into_iter()
            .filter(|(id, _)| !committed.contains(id))
            .map(|(_, transaction)| transaction)
            .collect())
    }
}

#[async_trait]
impl BlockProducer<ReferenceChain> for PoolBlockProducer {
    async fn produce_block(
        &self,
        parent: ParentBlock<'_, ReferenceChain>,
        timestamp: Timestamp,
    ) -> Result<Block, ProductionError> {
        let (parent, left_out): (&Header, Vec<TransactionId>) = match parent {
            ParentBlock::Head(header) => (header, Vec::new()),
            ParentBlock::Committing(block) => (
                &block.block.header,
                block
                    .block
                    .transactions
                    .iter()
                    .map(Transaction::id)
                    .collect(),
            ),
        };
        let chain_id = self.store.spec().chain_id;
        if parent.chain_id != chain_id {
            return Err(ProductionError::Failed {
                reason: format!(
                    "parent is on chain {}, this chain is {chain_id}",
                    parent.chain_id
                ),
            });
        }
        let height = parent
            .height
            .next()
            .ok_or_else(|| ProductionError::Failed {
                reason: format!("parent height {} has no successor", parent.height),
            })?;
        let transactions = self.select_uncommitted(&left_out).await?;
        let transaction_count =
            u32::try_from(transactions.len()).map_err(|_| ProductionError::Failed {
                reason: format!(
                    "{} transactions exceed a header's count",
                    transactions.len()
                ),
            })?;
        Ok(Block {
            header: Header {
                chain_id,
                height,
                parent_id: parent.id(),
                // Callers pass max(now, parent); clamping again keeps a block valid even when
                // a caller's clock runs behind the chain.
                timestamp: timestamp.max(parent.timestamp),
                transactions_root: transactions_root(&transactions),
                transaction_count,
            },
            transactions,
        })
    }
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests {
    use crate::Header;
    use poa_ports::{BlockHeight, ChainId};

    use super::*;
    use crate::genesis::ChainSpec;
    use crate::keys::AuthorityKey;
    use crate::pool::PoolLimits;
    use crate::signer::Ed25519BlockSigner;
    use crate::test_support::{child_block, transactions};

    struct Fixture {
        _dir: tempfile::TempDir,
        store: ChainStore,
        pool: MemoryTransactionPool,
        producer: PoolBlockProducer,
        signer: Ed25519BlockSigner,
    }

    impl Fixture {
        fn new(limits: BlockLimits) -> Self {
            let dir = tempfile::tempdir().unwrap();
            let key = AuthorityKey::generate();
            let store = ChainStore::open(ChainSpec::dev(key.public_key()), dir.path()).unwrap();
            let pool = MemoryTransactionPool::new(PoolLimits::standard());
            Self {
                _dir: dir,
                producer: PoolBlockProducer::new(store.clone(), pool.clone(), limits),
                store,
                pool,
                signer: Ed25519BlockSigner::new(key),
            }
        }

        fn head(&self) -> Header {
            self.store.head().unwrap().block.header
        }

        fn submit(&self, bytes: &[&[u8]]) {
            for transaction in transactions(bytes) {
                self.pool.submit(transaction).unwrap();
            }
        }
    }

    #[tokio::test]
    async fn produce_block__when_pool_has_transactions__then_builds_a_consistent_child() {
        // given
        let fixture = Fixture::new(BlockLimits::standard());
        fixture.submit(&[b"a", b"b"]);
        let parent = fixture.head();
        let timestamp = Timestamp::from_unix_millis(parent.timestamp.as_unix_millis() + 5);

        // when
        let block = fixture
            .producer
            .produce_block(ParentBlock::Head(&parent), timestamp)
            .await
            .unwrap();

        // then
        assert_eq!(block.header.height, BlockHeight::new(1));
        assert_eq!(block.header.parent_id, parent.id());
        assert_eq!(block.header.chain_id, parent.chain_id);
        assert_eq!(block.header.timestamp, timestamp);
        assert_eq!(block.transactions, transactions(&[b"a", b"b"]));
        assert!(block.transactions_match_header());
        assert_eq!(fixture.pool.pending_count(), 2, "producing removes nothing");
    }

    #[tokio::test]
    async fn produce_block__when_timestamp_is_before_parent__then_clamps_to_parent() {
        // given
        let fixture = Fixture::new(BlockLimits::standard());
        let parent = fixture.head();

        // when
        let block = fixture
            .producer
            .produce_block(ParentBlock::Head(&parent), Timestamp::from_unix_millis(0))
            .await
            .unwrap();

        // then
        assert_eq!(block.header.timestamp, parent.timestamp);
    }

    #[tokio::test]
    async fn produce_block__when_pool_holds_committed_transactions__then_skips_and_drops_them() {
        // given
        let fixture = Fixture::new(BlockLimits::standard());
        let committed = child_block(&fixture.signer, &fixture.head(), &[b"old"], |_| {});
        fixture.store.commit(&committed).unwrap();
        fixture.submit(&[b"old", b"new"]);

        // when
        let block = fixture
            .producer
            .produce_block(
                ParentBlock::Head(&fixture.head()),
                Timestamp::from_unix_millis(0),
            )
            .await
            .unwrap();

        // then
        assert_eq!(block.transactions, transactions(&[b"new"]));
        assert_eq!(fixture.pool.select(10, 1_000), transactions(&[b"new"]));
    }

    #[tokio::test]
    async fn produce_block__when_the_parent_is_still_committing__then_builds_on_it_and_leaves_its_transactions_out()
     {
        // given: a published block with "a" and "b", whose commit has not ended (its
        // transactions are still pending), and "c" pending after them
        let fixture = Fixture::new(BlockLimits {
            max_transactions: 2,
            max_bytes: 100,
        });
        fixture.submit(&[b"a", b"b", b"c"]);
        let committing = child_block(&fixture.signer, &fixture.head(), &[b"a", b"b"], |_| {});

        // when
        let block = fixture
            .producer
            .produce_block(
                ParentBlock::Committing(&committing),
                Timestamp::from_unix_millis(0),
            )
            .await
            .unwrap();

        // then: at the height above it, naming it, with only what it does not include
        assert_eq!(block.header.height, BlockHeight::new(2));
        assert_eq!(block.header.parent_id, committing.id());
        assert_eq!(block.header.timestamp, committing.block.header.timestamp);
        assert_eq!(block.transactions, transactions(&[b"c"]));
        assert_eq!(fixture.pool.pending_count(), 3, "producing removes nothing");
    }

    #[tokio::test]
    async fn produce_block__when_pool_exceeds_limits__then_takes_the_oldest_within_them() {
        // given
        let fixture = Fixture::new(BlockLimits {
            max_transactions: 2,
            max_bytes: 100,
        });
        fixture.submit(&[b"a", b"b", b"c"]);

        // when
        let block = fixture
            .producer
            .produce_block(
                ParentBlock::Head(&fixture.head()),
                Timestamp::from_unix_millis(0),
            )
            .await
            .unwrap();

        // then
        assert_eq!(block.transactions, transactions(&[b"a", b"b"]));
    }

    #[tokio::test]
    async fn produce_block__when_parent_is_on_another_chain__then_fails() {
        // given
        let fixture = Fixture::new(BlockLimits::standard());
        let mut parent = fixture.head();
        parent.chain_id = ChainId::new(77);

        // when
        let result = fixture
            .producer
            .produce_block(ParentBlock::Head(&parent), Timestamp::from_unix_millis(0))
            .await;

        // then
        assert!(
            matches!(result, Err(ProductionError::Failed { .. })),
            "{result:?}"
        );
    }
}
