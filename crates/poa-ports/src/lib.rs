//! Domain types and ports of the high-availability Proof-of-Authority block producer.
//!
//! This crate is the contract between the domain service (`poa-core`) and the adapters that
//! give it a chain, a signer, a transaction pool and a leader lease. It performs no I/O and
//! depends on no runtime: everything here is a value, a pure function over values, or a trait.
//!
//! # Layout
//!
//! - [`primitives`]: newtypes for heights, epochs, hashes and times.
//! - [`chain`]: the embedder's chain ([`Chain`]) and what the producer reads from its headers
//!   and sealed blocks; every port that carries blocks is generic over it. [`BlockCodec`] is
//!   the chain's wire form, for the adapters that store or transfer blocks.
//! - [`leadership`]: what the reconciliation port reports (`LeaderState`, lease status).
//! - [`ports`]: the traits `poa-core` is generic over.
//! - [`transaction`]: an opaque transaction and its id.
//! - [`error`]: typed errors of every port.

#![deny(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]

pub mod chain;
pub mod error;
pub mod leadership;
pub mod ports;
pub mod primitives;
pub mod transaction;

pub use chain::{BlockCodec, BlockCodecError, Chain, HeaderView, SealedBlockView};
pub use error::{HistoryError, ImportError, ProductionError, ReconciliationError, SigningError};
pub use leadership::{ChainHead, LeaderState, LeaseStatus, NodeOutcome, NodeState, NodeStatus};
pub use ports::{
    BlockHistorySource, BlockImporter, BlockProducer, BlockReconciliationPort, BlockSigner, Clock,
    EverySource, ParentBlock, SealVerifier, TransactionPool,
};
pub use primitives::{
    BlockHeight, BlockId, ChainId, Epoch, Signature, Timestamp, TransactionId, TransactionsRoot,
};
pub use transaction::Transaction;
