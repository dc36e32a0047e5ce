//! [`Secp256k1BlockSigner`]: the `BlockSigner` port, sealing a block with the authority's
//! secp256k1 key over its id.

use poa_ports::{BlockSigner, SigningError};

use crate::block::{FuelBlock, FuelStyleChain, SealedFuelBlock};
use crate::keys::AuthorityKey;

/// Seals blocks with the chain authority's key.
#[derive(Debug, Clone)]
pub struct Secp256k1BlockSigner {
    key: AuthorityKey,
}

impl Secp256k1BlockSigner {
    /// A signer holding the authority's key.
    pub fn new(key: AuthorityKey) -> Self {
        Self { key }
    }
}

impl BlockSigner<FuelStyleChain> for Secp256k1BlockSigner {
    fn seal(&self, block: FuelBlock) -> Result<SealedFuelBlock, SigningError> {
        let signature = self.key.sign(&block.header.block_id());
        Ok(SealedFuelBlock { block, signature })
    }
}
