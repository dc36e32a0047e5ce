//! A second chain that embeds the producer, written to show how: its own header (after
//! fuel-core's), its own block id hash (SHA-512/256), secp256k1 seals, its own byte codec and an
//! in-memory store, sharing no block code with the reference chain that `poa-node` runs. The
//! guide below is the crate's README.
//!
//! # Map
//!
//! - [`header`]: the header, its id, its application hash, its TAI64 time.
//! - [`block`]: the blocks, the genesis block, and [`FuelStyleChain`] (the `Chain`).
//! - [`codec`]: the wire form (`BlockCodec`), for the shared log.
//! - [`keys`]: the authority's secp256k1 key pair.
//! - [`signer`], [`seal_verifier`], [`store`], [`producer`], [`pool`], [`clock`]: one port
//!   implementation each.
//! - [`node`]: one producer process's ports, with the reconciliation port passed in.
//! - [`error`]: what the chain's own constructors refuse.
//!
#![doc = include_str!("../README.md")]

pub mod block;
pub mod clock;
pub mod codec;
pub mod error;
pub mod header;
pub mod keys;
pub mod node;
pub mod pool;
pub mod producer;
pub mod seal_verifier;
pub mod signer;
pub mod store;

pub use block::{FuelBlock, FuelStyleChain, SealedFuelBlock};
pub use clock::WallClock;
pub use error::FuelChainError;
pub use header::{FuelHeader, Tai64, application_hash};
pub use keys::{AuthorityKey, AuthorityPublicKey};
pub use node::{ChainSettings, FuelStyleNode};
pub use pool::TransactionQueue;
pub use producer::QueueBlockProducer;
pub use seal_verifier::Secp256k1SealVerifier;
pub use signer::Secp256k1BlockSigner;
pub use store::MemoryBlockStore;
