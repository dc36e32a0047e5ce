//! [`MemoryBlockStore`]: the local chain in memory and the `BlockImporter` port over it. A real
//! node keeps its chain on disk; the port asks the same of either: verify a block against the
//! head (or against a published block whose commit has not ended) without changing anything,
//! commit it atomically (checking the head again under the same lock), hand back the head and
//! any committed block.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use poa_ports::{
    BlockHeight, BlockImporter, HeaderView, ImportError, SealVerifier, SealedBlockView,
    Transaction, TransactionId,
};

use crate::block::{FuelStyleChain, SealedFuelBlock};
use crate::header::FuelHeader;
use crate::pool::TransactionQueue;
use crate::seal_verifier::Secp256k1SealVerifier;

/// One producer's chain, from genesis to head. Clones share the same chain.
#[derive(Debug, Clone)]
pub struct MemoryBlockStore {
    chain: Arc<Mutex<Chain>>,
    verifier: Secp256k1SealVerifier,
    queue: TransactionQueue,
}

/// The genesis block, the blocks above it by height (index = height - 1) and every committed
/// transaction.
#[derive(Debug)]
struct Chain {
    genesis: SealedFuelBlock,
    blocks: Vec<SealedFuelBlock>,
    committed: HashSet<TransactionId>,
}

impl MemoryBlockStore {
    /// A chain holding `genesis` only, accepting blocks `verifier` accepts, and removing from
    /// `queue` what each committed block includes.
    pub fn new(
        genesis: SealedFuelBlock,
        verifier: Secp256k1SealVerifier,
        queue: TransactionQueue,
    ) -> Self {
        Self {
            chain: Arc::new(Mutex::new(Chain {
                genesis,
                blocks: Vec::new(),
                committed: HashSet::new(),
            })),
            verifier,
            queue,
        }
    }

    /// Every block from genesis to head.
    pub fn blocks(&self) -> Vec<SealedFuelBlock> {
        let chain = self.lock();
        let mut blocks = vec![chain.genesis.clone()];
        blocks.extend(chain.blocks.iter().cloned());
        blocks
    }

    /// The head's height.
    pub fn height(&self) -> BlockHeight {
        self.lock().head().height()
    }

    /// The chain. No holder of the lock panics, so a poisoned lock still guards a whole chain.
    fn lock(&self) -> MutexGuard<'_, Chain> {
        self.chain.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Chain {
    fn head(&self) -> &SealedFuelBlock {
        self.blocks.last().unwrap_or(&self.genesis)
    }

    /// Whether `block` is the next block of this chain: its place, its date, its seal, and no
    /// transaction committed before.
    fn check_next(
        &self,
        block: &SealedFuelBlock,
        verifier: &Secp256k1SealVerifier,
    ) -> Result<(), ImportError> {
        self.check_on(self.head().header(), &[], block, verifier)
    }

    /// Whether `block` is the child of `head`, a block this chain holds or one that extends it
    /// and is not committed yet (whose transactions, `uncommitted`, it must not repeat either).
    fn check_on(
        &self,
        head: &FuelHeader,
        uncommitted: &[Transaction],
        block: &SealedFuelBlock,
        verifier: &Secp256k1SealVerifier,
    ) -> Result<(), ImportError> {
        let height = block.height();
        let expected = head.height().next().unwrap_or(head.height());
        if height != expected {
            return Err(ImportError::WrongHeight {
                expected,
                found: height,
            });
        }
        if block.parent_id() != head.id() {
            return Err(ImportError::WrongParent {
                height,
                expected: head.id(),
                found: block.parent_id(),
            });
        }
        if block.header().time < head.time {
            return Err(ImportError::TimestampBeforeParent {
                height,
                parent: head.timestamp(),
                found: block.header().timestamp(),
            });
        }
        verifier.verify_seal(block)?;
        let mut seen = HashSet::new();
        for transaction in &block.block.transactions {
            let id = transaction.id();
            if self.committed.contains(&id) || uncommitted.contains(transaction) || !seen.insert(id)
            {
                return Err(ImportError::DuplicateTransaction { height });
            }
        }
        Ok(())
    }
}

#[async_trait]
impl BlockImporter<FuelStyleChain> for MemoryBlockStore {
    async fn latest_header(&self) -> Result<FuelHeader, ImportError> {
        Ok(self.lock().head().header().clone())
    }

    async fn verify(&self, block: &SealedFuelBlock) -> Result<(), ImportError> {
        self.lock().check_next(block, &self.verifier)
    }

    async fn verify_on_committing(
        &self,
        block: &SealedFuelBlock,
        committing: &SealedFuelBlock,
    ) -> Result<(), ImportError> {
        let chain = self.lock();
        if chain.head().id() == committing.id() {
            return chain.check_next(block, &self.verifier);
        }
        let head = chain.head().header();
        if committing.parent_id() != head.id() {
            return Err(ImportError::WrongParent {
                height: committing.height(),
                expected: head.id(),
                found: committing.parent_id(),
            });
        }
        chain.check_on(
            committing.header(),
            &committing.block.transactions,
            block,
            &self.verifier,
        )
    }

    async fn commit(&self, block: SealedFuelBlock) -> Result<(), ImportError> {
        let mut chain = self.lock();
        chain.check_next(&block, &self.verifier)?;
        chain.committed.extend(
            block
                .block
                .transactions
                .iter()
                .map(|transaction| transaction.id()),
        );
        self.queue.remove_included(&block.block.transactions);
        chain.blocks.push(block);
        Ok(())
    }

    async fn block_at(&self, height: BlockHeight) -> Result<Option<SealedFuelBlock>, ImportError> {
        let chain = self.lock();
        let Some(above_genesis) = height.previous() else {
            return Ok(Some(chain.genesis.clone()));
        };
        Ok(usize::try_from(above_genesis.get())
            .ok()
            .and_then(|index| chain.blocks.get(index))
            .cloned())
    }
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests {
    use poa_ports::{BlockSigner, Transaction};

    use super::*;
    use crate::block::FuelBlock;
    use crate::header::Tai64;
    use crate::keys::AuthorityKey;
    use crate::signer::Secp256k1BlockSigner;

    struct Fixture {
        store: MemoryBlockStore,
        signer: Secp256k1BlockSigner,
        queue: TransactionQueue,
    }

    fn fixture() -> Fixture {
        let key = AuthorityKey::generate();
        let queue = TransactionQueue::new();
        let store = MemoryBlockStore::new(
            SealedFuelBlock::genesis(&key.public_key(), 1),
            Secp256k1SealVerifier::new(key.public_key()),
            queue.clone(),
        );
        Fixture {
            store,
            signer: Secp256k1BlockSigner::new(key),
            queue,
        }
    }

    async fn next_block(
        store: &MemoryBlockStore,
        signer: &Secp256k1BlockSigner,
        transactions: Vec<Transaction>,
    ) -> SealedFuelBlock {
        let parent = store.latest_header().await.unwrap();
        let time = Tai64(parent.time.0 + 1);
        signer
            .seal(FuelBlock::build_on(&parent, time, 1, transactions).unwrap())
            .unwrap()
    }

    #[tokio::test]
    async fn commit__when_the_next_block__then_becomes_the_head_and_leaves_the_queue() {
        // given
        let Fixture {
            store,
            signer,
            queue,
        } = fixture();
        let transaction = Transaction::new(b"pay".to_vec());
        queue.submit(transaction.clone());
        let block = next_block(&store, &signer, vec![transaction]).await;

        // when
        store.verify(&block).await.unwrap();
        store.commit(block.clone()).await.unwrap();

        // then
        assert_eq!(store.height(), BlockHeight::new(1));
        assert_eq!(
            store.block_at(BlockHeight::new(1)).await.unwrap(),
            Some(block)
        );
        assert_eq!(queue.front(10), Vec::new());
    }

    #[tokio::test]
    async fn commit__when_sealed_by_another_key__then_refuses_and_keeps_the_head() {
        // given
        let Fixture { store, .. } = fixture();
        let intruder = Secp256k1BlockSigner::new(AuthorityKey::generate());
        let forged = next_block(&store, &intruder, Vec::new()).await;

        // when
        let committed = store.commit(forged).await;

        // then
        assert!(
            matches!(committed, Err(ImportError::InvalidSeal { .. })),
            "{committed:?}"
        );
        assert_eq!(store.height(), BlockHeight::GENESIS);
    }

    #[tokio::test]
    async fn verify__when_a_transaction_was_committed_before__then_refuses_the_repeat() {
        // given
        let Fixture { store, signer, .. } = fixture();
        let transaction = Transaction::new(b"once".to_vec());
        let first = next_block(&store, &signer, vec![transaction.clone()]).await;
        store.commit(first).await.unwrap();
        let repeat = next_block(&store, &signer, vec![transaction]).await;

        // when
        let verified = store.verify(&repeat).await;

        // then
        assert!(
            matches!(verified, Err(ImportError::DuplicateTransaction { .. })),
            "{verified:?}"
        );
    }

    #[tokio::test]
    async fn verify_on_committing__when_the_parent_is_not_committed_yet__then_takes_the_child_and_refuses_a_repeat()
     {
        // given: block 1 with a transaction, published but not committed
        let Fixture { store, signer, .. } = fixture();
        let transaction = Transaction::new(b"once".to_vec());
        let one = next_block(&store, &signer, vec![transaction.clone()]).await;
        let time = Tai64(one.header().time.0 + 1);
        let on_one = |transactions| {
            signer
                .seal(FuelBlock::build_on(one.header(), time, 1, transactions).unwrap())
                .unwrap()
        };
        let child = on_one(vec![Transaction::new(b"next".to_vec())]);
        let repeat = on_one(vec![transaction]);

        // when
        let child_verified = store.verify_on_committing(&child, &one).await;
        let repeat_verified = store.verify_on_committing(&repeat, &one).await;
        store.commit(one.clone()).await.unwrap();
        let child_verified_after_the_commit = store.verify_on_committing(&child, &one).await;

        // then
        child_verified.unwrap();
        child_verified_after_the_commit.unwrap();
        assert!(
            matches!(
                repeat_verified,
                Err(ImportError::DuplicateTransaction { .. })
            ),
            "{repeat_verified:?}"
        );
    }

    #[tokio::test]
    async fn verify__when_not_on_the_head__then_refuses_the_place() {
        // given
        let Fixture { store, signer, .. } = fixture();
        let one = next_block(&store, &signer, Vec::new()).await;
        store.commit(one.clone()).await.unwrap();

        // when: height 1 again, and a block at height 2 on another parent
        let again = store.verify(&one).await;
        let mut stray = next_block(&store, &signer, Vec::new()).await;
        stray.block.header.prev_root = [9; 32];
        let stray = signer.seal(stray.block).unwrap();
        let wrong_parent = store.verify(&stray).await;

        // then
        assert!(
            matches!(again, Err(ImportError::WrongHeight { .. })),
            "{again:?}"
        );
        assert!(
            matches!(wrong_parent, Err(ImportError::WrongParent { .. })),
            "{wrong_parent:?}"
        );
    }
}
