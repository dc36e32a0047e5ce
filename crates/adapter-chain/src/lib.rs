//! The local chain adapter: everything a process needs to keep its own copy of the chain and
//! to produce blocks for it, behind the `poa-ports` traits.
//!
//! It depends on `poa-ports` only among workspace crates: it knows nothing of leadership,
//! Redis or the domain service's cycle.
//!
//! # Layout
//!
//! - [`block`]: the reference chain's headers, blocks, seals, block ids and postcard
//!   encoding; [`reference`](mod@reference) names them as the [`ReferenceChain`] with its
//!   [`poa_ports::BlockCodec`], the chain `poa-node` instantiates the ports with.
//! - [`keys`]: the authority key pair and its key file.
//! - [`genesis`]: the chain spec and its deterministic genesis block.
//! - [`verify`]: pure verification of a block as the next block of a chain, or on its own.
//! - [`seal_verifier`]: [`AuthoritySealVerifier`], the `SealVerifier` port.
//! - [`storage`]: the durable local chain on redb, and its recovery from I/O errors.
//! - [`metrics`]: the store's Prometheus metrics.
//! - [`check`]: the offline check of a data directory.
//! - [`importer`]: [`RedbBlockImporter`], the `BlockImporter` port, and async chain reads.
//! - [`signer`]: [`Ed25519BlockSigner`], the `BlockSigner` port.
//! - [`pool`]: [`MemoryTransactionPool`], the `TransactionPool` port.
//! - [`pool_maintenance`]: [`PoolMaintenance`], the pool's expiry and metrics.
//! - [`producer`]: [`PoolBlockProducer`], the `BlockProducer` port.
//! - [`clock`]: [`SystemClock`], the `Clock` port.
//! - [`error`]: the adapter's errors.
//!
//! # Wiring
//!
//! ```no_run
//! # fn wire(data_dir: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
//! use adapter_chain::{
//!     AuthorityKey, BlockLimits, ChainSpec, ChainStore, Ed25519BlockSigner,
//!     MemoryTransactionPool, PoolBlockProducer, PoolLimits, RedbBlockImporter,
//! };
//!
//! let key = AuthorityKey::dev();
//! let spec = ChainSpec::dev(key.public_key());
//! let pool = MemoryTransactionPool::new(PoolLimits::standard());
//! let store = ChainStore::open(spec, data_dir)?;
//! let importer = RedbBlockImporter::new(store.clone(), pool.clone());
//! let producer = PoolBlockProducer::new(store, pool.clone(), BlockLimits::standard());
//! let signer = Ed25519BlockSigner::new(key);
//! # Ok(())
//! # }
//! ```

pub mod block;
pub mod check;
pub mod clock;
pub mod error;
pub mod genesis;
pub mod importer;
pub mod keys;
pub mod metrics;
pub mod pool;
pub mod pool_maintenance;
pub mod producer;
pub mod reference;
mod seal_cache;
pub mod seal_verifier;
pub mod signer;
pub mod storage;
pub mod verify;
mod wire;

#[cfg(test)]
mod test_support;

pub use block::{Block, Header, Seal, SealedBlock, transactions_root};
pub use check::{ChainCheckReport, check_chain};
pub use clock::SystemClock;
pub use error::{KeyError, PoolError, StorageError};
pub use genesis::ChainSpec;
pub use importer::RedbBlockImporter;
pub use keys::{AuthorityKey, AuthorityPublicKey, DEV_KEY_SEED_PHRASE};
pub use metrics::StorageMetrics;
pub use pool::{MemoryTransactionPool, PoolLimits};
pub use pool_maintenance::PoolMaintenance;
pub use producer::{BlockLimits, PoolBlockProducer};
pub use reference::ReferenceChain;
pub use seal_verifier::AuthoritySealVerifier;
pub use signer::Ed25519BlockSigner;
pub use storage::{
    BackendWrapper, ChainStore, CommitDurability, DATABASE_FILE_NAME, OpenCheck, RecoveryPolicy,
    StorageHealth, StoreOptions, TRANSACTION_INDEX_FILE_NAME,
};
pub use verify::{verify_block, verify_sealed_block};
