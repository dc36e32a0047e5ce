//! [`FuelStyleNode`]: one producer process's local side of the chain (store, transaction queue,
//! producer, signer, verifier, clock) wired into the [`Ports`] of a `poa_core`
//! `ProductionService`. The reconciliation port is the one thing passed in: the Redis adapter in
//! a fleet, the in-memory log in a unit test, the no-op adapter for a single node.

use std::sync::Arc;

use poa_core::Ports;
use poa_ports::{BlockReconciliationPort, SealVerifier};

use crate::block::{FuelStyleChain, SealedFuelBlock};
use crate::clock::WallClock;
use crate::keys::AuthorityKey;
use crate::pool::TransactionQueue;
use crate::producer::QueueBlockProducer;
use crate::seal_verifier::Secp256k1SealVerifier;
use crate::signer::Secp256k1BlockSigner;
use crate::store::MemoryBlockStore;

/// What every producer of one chain agrees on besides the authority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainSettings {
    /// The consensus parameters version every block is built under.
    pub consensus_parameters_version: u32,
    /// The most transactions one block carries.
    pub max_transactions: u16,
}

/// One producer process's local chain and the adapters over it.
#[derive(Debug, Clone)]
pub struct FuelStyleNode {
    /// The local chain.
    pub store: MemoryBlockStore,
    /// Pending transactions: submit here.
    pub queue: TransactionQueue,
    verifier: Secp256k1SealVerifier,
    producer: QueueBlockProducer,
    signer: Secp256k1BlockSigner,
}

impl FuelStyleNode {
    /// A process at the genesis of the chain `authority` seals, with `settings`.
    pub fn new(authority: AuthorityKey, settings: ChainSettings) -> Self {
        let public_key = authority.public_key();
        let verifier = Secp256k1SealVerifier::new(public_key);
        let queue = TransactionQueue::new();
        let genesis = SealedFuelBlock::genesis(&public_key, settings.consensus_parameters_version);
        Self {
            store: MemoryBlockStore::new(genesis, verifier, queue.clone()),
            producer: QueueBlockProducer::new(
                queue.clone(),
                settings.consensus_parameters_version,
                settings.max_transactions,
            ),
            signer: Secp256k1BlockSigner::new(authority),
            queue,
            verifier,
        }
    }

    /// The chain's check of a block on its own, which the reconciliation adapter applies to
    /// every entry of the shared log before it counts it.
    pub fn seal_verifier(&self) -> Arc<dyn SealVerifier<FuelStyleChain>> {
        Arc::new(self.verifier)
    }

    /// The service's ports: this process's chain, producer, signer, queue and clock, and the
    /// given reconciliation port.
    pub fn ports(
        &self,
        reconciliation: Arc<dyn BlockReconciliationPort<FuelStyleChain>>,
    ) -> Ports<FuelStyleChain> {
        Ports {
            reconciliation,
            importer: Arc::new(self.store.clone()),
            producer: Arc::new(self.producer.clone()),
            signer: Arc::new(self.signer.clone()),
            pool: Arc::new(self.queue.clone()),
            clock: Arc::new(WallClock),
        }
    }
}
