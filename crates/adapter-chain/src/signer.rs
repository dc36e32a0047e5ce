//! [`Ed25519BlockSigner`]: the `BlockSigner` port, sealing a block with the authority key's
//! ed25519 signature over the 32 bytes of its block id. It signs whatever it is given; deciding
//! whether a block may be sealed is the domain service's job.

use crate::{Block, ReferenceChain, Seal, SealedBlock};
use poa_ports::{BlockSigner, SigningError};

use crate::keys::{AuthorityKey, AuthorityPublicKey};

/// Seals blocks with the chain authority's key.
#[derive(Debug)]
pub struct Ed25519BlockSigner {
    key: AuthorityKey,
}

impl Ed25519BlockSigner {
    /// A signer holding `key`.
    pub fn new(key: AuthorityKey) -> Self {
        Self { key }
    }

    /// The public key of the seals this signer makes.
    pub fn public_key(&self) -> AuthorityPublicKey {
        self.key.public_key()
    }
}

impl BlockSigner<ReferenceChain> for Ed25519BlockSigner {
    fn seal(&self, block: Block) -> Result<SealedBlock, SigningError> {
        let signature = self.key.sign(block.id().as_bytes());
        Ok(SealedBlock {
            block,
            seal: Seal::Authority(signature),
        })
    }
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests {
    use ed25519_dalek::Verifier;

    use super::*;
    use crate::genesis::ChainSpec;

    #[test]
    fn seal__when_block_is_signed__then_signature_verifies_over_the_block_id() {
        // given
        let key = AuthorityKey::generate();
        let public_key = key.public_key();
        let signer = Ed25519BlockSigner::new(key);
        let block = ChainSpec::dev(public_key).genesis_block().block;

        // when
        let sealed = signer.seal(block.clone()).unwrap();

        // then
        let Seal::Authority(signature) = sealed.seal else {
            panic!("expected an authority seal, got {:?}", sealed.seal);
        };
        let verifying = ed25519_dalek::VerifyingKey::from_bytes(public_key.as_bytes()).unwrap();
        let signature = ed25519_dalek::Signature::from_bytes(signature.as_bytes());
        assert!(verifying.verify(block.id().as_bytes(), &signature).is_ok());
        assert_eq!(sealed.block, block);
        assert_eq!(signer.public_key(), public_key);
    }
}
