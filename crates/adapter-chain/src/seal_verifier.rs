//! [`AuthoritySealVerifier`]: the `SealVerifier` port of this chain, the check every block read
//! from the shared log passes before reconciliation counts it.
//!
//! The verifier of a store ([`crate::ChainStore::seal_verifier`]) shares the store's valid
//! seals, so a block read from the log is sealed-checked once: here, not again in the store's
//! `verify` when the block is imported.

use std::sync::Arc;

use crate::{ReferenceChain, SealedBlock};
use poa_ports::{ImportError, SealVerifier};

use crate::genesis::ChainSpec;
use crate::seal_cache::SealCache;
use crate::verify::verify_sealed_block_with_seals;

/// Verifies blocks against the chain spec: this chain's id, transactions that match the
/// header, and a seal by the spec's authority key.
#[derive(Debug, Clone)]
pub struct AuthoritySealVerifier {
    spec: ChainSpec,
    seals: Arc<SealCache>,
}

impl AuthoritySealVerifier {
    /// A verifier for the chain of `spec`, sharing its valid seals with no store.
    pub fn new(spec: ChainSpec) -> Self {
        Self::sharing(spec, Arc::new(SealCache::new(spec.authority)))
    }

    /// A verifier for the chain of `spec` that remembers valid seals in `seals`.
    pub(crate) fn sharing(spec: ChainSpec, seals: Arc<SealCache>) -> Self {
        Self { spec, seals }
    }
}

impl SealVerifier<ReferenceChain> for AuthoritySealVerifier {
    fn verify_seal(&self, block: &SealedBlock) -> Result<(), ImportError> {
        verify_sealed_block_with_seals(&self.spec, &self.seals, block)
    }
}
