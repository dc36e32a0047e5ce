//! [`Secp256k1SealVerifier`]: the `SealVerifier` port, the check of a block on its own that the
//! shared log applies to every entry before it counts it, and the store before it commits: the
//! transactions match the header, and the authority sealed the block id.

use poa_ports::{ImportError, SealVerifier, SealedBlockView};

use crate::block::{FuelStyleChain, SealedFuelBlock};
use crate::header::application_hash;
use crate::keys::AuthorityPublicKey;

/// Checks blocks against the chain authority's public key.
#[derive(Debug, Clone, Copy)]
pub struct Secp256k1SealVerifier {
    authority: AuthorityPublicKey,
}

impl Secp256k1SealVerifier {
    /// A verifier that accepts only seals by `authority`.
    pub fn new(authority: AuthorityPublicKey) -> Self {
        Self { authority }
    }
}

impl SealVerifier<FuelStyleChain> for Secp256k1SealVerifier {
    /// Refuses a block whose transactions do not match its header's count and application
    /// hash, a block at height 0 (genesis is built, never sealed or sent), and a block whose
    /// signature is not the authority's over its id.
    fn verify_seal(&self, block: &SealedFuelBlock) -> Result<(), ImportError> {
        let header = &block.block.header;
        let height = block.height();
        let counted = usize::from(header.transactions_count) == block.block.transactions.len();
        let hashed = application_hash(
            header.consensus_parameters_version,
            &block.block.transactions,
        ) == header.application_hash;
        if !counted || !hashed {
            return Err(ImportError::TransactionsMismatch { height });
        }
        if header.height == 0
            || !self
                .authority
                .verifies(&header.block_id(), &block.signature)
        {
            return Err(ImportError::InvalidSeal { height });
        }
        Ok(())
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

    fn block_sealed_by(key: &AuthorityKey, authority: &AuthorityKey) -> SealedFuelBlock {
        let genesis = SealedFuelBlock::genesis(&authority.public_key(), 1);
        let block = FuelBlock::build_on(
            genesis.header(),
            Tai64::from_unix_millis(1_000),
            1,
            vec![Transaction::new(b"tx".to_vec())],
        )
        .unwrap();
        Secp256k1BlockSigner::new(key.clone()).seal(block).unwrap()
    }

    #[test]
    fn verify_seal__when_sealed_by_the_authority__then_accepts() {
        let authority = AuthorityKey::generate();
        let verifier = Secp256k1SealVerifier::new(authority.public_key());

        assert!(
            verifier
                .verify_seal(&block_sealed_by(&authority, &authority))
                .is_ok()
        );
    }

    #[test]
    fn verify_seal__when_sealed_by_another_key__then_refuses_the_seal() {
        // given
        let authority = AuthorityKey::generate();
        let verifier = Secp256k1SealVerifier::new(authority.public_key());
        let forged = block_sealed_by(&AuthorityKey::generate(), &authority);

        // when
        let verified = verifier.verify_seal(&forged);

        // then
        assert!(
            matches!(verified, Err(ImportError::InvalidSeal { .. })),
            "{verified:?}"
        );
    }

    #[test]
    fn verify_seal__when_a_transaction_is_swapped_after_sealing__then_refuses_the_transactions() {
        // given
        let authority = AuthorityKey::generate();
        let verifier = Secp256k1SealVerifier::new(authority.public_key());
        let mut block = block_sealed_by(&authority, &authority);
        block.block.transactions = vec![Transaction::new(b"other".to_vec())];

        // when
        let verified = verifier.verify_seal(&block);

        // then
        assert!(
            matches!(verified, Err(ImportError::TransactionsMismatch { .. })),
            "{verified:?}"
        );
    }
}
