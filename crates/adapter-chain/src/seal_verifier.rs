//! [`AuthoritySealVerifier`]: the `SealVerifier` port of this chain, the check every block read
//! from the shared log passes before reconciliation counts it.

use crate::{ReferenceChain, SealedBlock};
use poa_ports::{ImportError, SealVerifier};

use crate::genesis::ChainSpec;
use crate::verify::verify_sealed_block;

/// Verifies blocks against the chain spec: this chain's id, transactions that match the
/// header, and a seal by the spec's authority key.
#[derive(Debug, Clone)]
pub struct AuthoritySealVerifier {
    spec: ChainSpec,
}

impl AuthoritySealVerifier {
    /// A verifier for the chain of `spec`.
    pub fn new(spec: ChainSpec) -> Self {
        Self { spec }
    }
}

impl SealVerifier<ReferenceChain> for AuthoritySealVerifier {
    fn verify_seal(&self, block: &SealedBlock) -> Result<(), ImportError> {
        verify_sealed_block(&self.spec, block)
    }
}
