//! A chain node as the domain service sees it (store, pool, importer, producer), and checks
//! over a whole stored chain.

use std::path::Path;

use adapter_chain::SealedBlock;
use adapter_chain::{
    BlockLimits, ChainSpec, ChainStore, CommitDurability, Ed25519BlockSigner,
    MemoryTransactionPool, PoolBlockProducer, PoolLimits, RedbBlockImporter,
};
use poa_ports::Transaction;
use poa_ports::{BlockHeight, BlockImporter, BlockProducer, BlockSigner, Clock, ParentBlock};

/// One process's local chain: what `poa-node` wires from this crate.
pub(crate) struct Node {
    pub(crate) store: ChainStore,
    pub(crate) pool: MemoryTransactionPool,
    pub(crate) importer: RedbBlockImporter,
    pub(crate) producer: PoolBlockProducer,
}

impl Node {
    /// Opens the chain of `spec` in `data_dir` with standard limits.
    pub(crate) fn open(spec: ChainSpec, data_dir: &Path) -> Self {
        Self::open_with_block_limits(spec, data_dir, BlockLimits::standard())
    }

    /// Opens the chain of `spec` in `data_dir`, producing blocks within `limits`.
    pub(crate) fn open_with_block_limits(
        spec: ChainSpec,
        data_dir: &Path,
        limits: BlockLimits,
    ) -> Self {
        Self::build(ChainStore::open(spec, data_dir).unwrap(), limits)
    }

    /// Opens the chain of `spec` in `data_dir` with standard limits, committing with
    /// `durability`.
    pub(crate) fn open_with_durability(
        spec: ChainSpec,
        data_dir: &Path,
        durability: CommitDurability,
    ) -> Self {
        let store = ChainStore::open_with_durability(spec, data_dir, durability).unwrap();
        Self::build(store, BlockLimits::standard())
    }

    /// A node over an already opened store, with standard limits.
    pub(crate) fn from_store(store: ChainStore) -> Self {
        Self::build(store, BlockLimits::standard())
    }

    fn build(store: ChainStore, limits: BlockLimits) -> Self {
        let pool = MemoryTransactionPool::new(PoolLimits::standard());
        Self {
            importer: RedbBlockImporter::new(store.clone(), pool.clone()),
            producer: PoolBlockProducer::new(store.clone(), pool.clone(), limits),
            store,
            pool,
        }
    }

    /// Submits transactions with the given bytes to the pool.
    pub(crate) fn submit(&self, transactions: &[&[u8]]) {
        for bytes in transactions {
            self.pool.submit(Transaction::new(bytes.to_vec())).unwrap();
        }
    }

    /// Produces the next block on the local head and seals it, as a leader does before
    /// publishing (nothing is committed).
    pub(crate) async fn produce_sealed(&self, signer: &Ed25519BlockSigner) -> SealedBlock {
        let parent = self.importer.latest_header().await.unwrap();
        let timestamp = adapter_chain::SystemClock.now().max(parent.timestamp);
        let block = self
            .producer
            .produce_block(ParentBlock::Head(&parent), timestamp)
            .await
            .unwrap();
        signer.seal(block).unwrap()
    }

    /// Produces the block above `committing`, a block whose commit has not ended, and seals it,
    /// as a leader does while that commit runs (nothing is committed).
    pub(crate) async fn produce_sealed_on_committing(
        &self,
        signer: &Ed25519BlockSigner,
        committing: &SealedBlock,
    ) -> SealedBlock {
        let timestamp = adapter_chain::SystemClock
            .now()
            .max(committing.block.header.timestamp);
        let block = self
            .producer
            .produce_block(ParentBlock::Committing(committing), timestamp)
            .await
            .unwrap();
        signer.seal(block).unwrap()
    }

    /// Produces, seals, verifies and commits the next block: one leader cycle.
    pub(crate) async fn produce_and_commit(&self, signer: &Ed25519BlockSigner) -> SealedBlock {
        let block = self.produce_sealed(signer).await;
        self.importer.verify(&block).await.unwrap();
        self.importer.commit(block.clone()).await.unwrap();
        block
    }
}

/// Walks the stored chain from genesis to head, asserting that every height is present, every
/// block links to the one below and the first is the spec's genesis. Returns every block.
pub(crate) fn assert_chain_links(store: &ChainStore) -> Vec<SealedBlock> {
    let head = store.head().unwrap();
    let genesis = store.block_at(BlockHeight::GENESIS).unwrap().unwrap();
    assert_eq!(genesis, store.spec().genesis_block());
    let mut chain = vec![genesis];
    for height in 1..=head.height().get() {
        let block = store
            .block_at(BlockHeight::new(height))
            .unwrap()
            .unwrap_or_else(|| panic!("height {height} is missing below head"));
        let parent = chain.last().unwrap();
        assert_eq!(block.block.header.parent_id, parent.id(), "height {height}");
        assert_eq!(block.height(), BlockHeight::new(height));
        assert_eq!(
            store.block_by_id(block.id()).unwrap().as_ref(),
            Some(&block)
        );
        chain.push(block);
    }
    assert_eq!(chain.last(), Some(&head));
    chain
}

/// Asserts that the store finds every transaction of `chain` at its block's height.
pub(crate) fn assert_transactions_indexed(store: &ChainStore, chain: &[SealedBlock]) {
    for block in chain {
        for transaction in &block.block.transactions {
            assert_eq!(
                store.transaction_height(&transaction.id()).unwrap(),
                Some(block.height()),
                "a transaction of the block at height {}",
                block.height()
            );
        }
    }
}

/// Every transaction of the chain, in order.
pub(crate) fn chain_transactions(chain: &[SealedBlock]) -> Vec<Transaction> {
    chain
        .iter()
        .flat_map(|block| block.block.transactions.iter().cloned())
        .collect()
}

/// A fresh authority key's dev chain spec and a signer with that key.
pub(crate) fn fresh_authority() -> (ChainSpec, Ed25519BlockSigner) {
    let key = adapter_chain::AuthorityKey::generate();
    (
        ChainSpec::dev(key.public_key()),
        Ed25519BlockSigner::new(key),
    )
}
