//! The chain specification and the genesis block it defines.
//!
//! Every process of a fleet configured with the same [`ChainSpec`] computes the same genesis
//! block, byte for byte, without talking to any other process. This module only computes
//! values; storing genesis is `storage`'s job.

use crate::block::transactions_root;
use crate::{Block, Header, Seal, SealedBlock};
use poa_ports::{BlockHeight, BlockId, ChainId, Timestamp};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::keys::AuthorityPublicKey;

/// Domain separation tag of the genesis parent id, so it can never equal another hash.
const GENESIS_PARENT_TAG: &[u8] = b"poa/genesis-parent/v1";

/// What defines a chain: its id, the one key allowed to seal its blocks, and its genesis time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainSpec {
    /// The chain id every header carries.
    #[serde(with = "crate::wire::chain_id")]
    pub chain_id: ChainId,
    /// The only key whose seals are accepted above genesis.
    pub authority: AuthorityPublicKey,
    /// The genesis block's timestamp; every later block is at or after it.
    #[serde(with = "crate::wire::timestamp")]
    pub genesis_time: Timestamp,
}

impl ChainSpec {
    /// The chain id of [`ChainSpec::dev`].
    pub const DEV_CHAIN_ID: ChainId = ChainId::new(0);

    /// The genesis time of [`ChainSpec::dev`]: 2024-01-01T00:00:00Z. Fixed, so dev processes
    /// started at different times share a genesis.
    pub const DEV_GENESIS_TIME: Timestamp = Timestamp::from_unix_millis(1_704_067_200_000);

    /// The development chain sealed by `authority`, with [`ChainSpec::DEV_CHAIN_ID`] and
    /// [`ChainSpec::DEV_GENESIS_TIME`].
    pub fn dev(authority: AuthorityPublicKey) -> Self {
        Self {
            chain_id: Self::DEV_CHAIN_ID,
            authority,
            genesis_time: Self::DEV_GENESIS_TIME,
        }
    }

    /// The genesis block: height 0, no transactions, [`Seal::Genesis`], the spec's chain id and
    /// genesis time, and [`ChainSpec::genesis_parent_id`] as parent.
    pub fn genesis_block(&self) -> SealedBlock {
        let transactions = Vec::new();
        SealedBlock {
            block: Block {
                header: Header {
                    chain_id: self.chain_id,
                    height: BlockHeight::GENESIS,
                    parent_id: self.genesis_parent_id(),
                    timestamp: self.genesis_time,
                    transactions_root: transactions_root(&transactions),
                    transaction_count: 0,
                },
                transactions,
            },
            seal: Seal::Genesis,
        }
    }

    /// The parent id of the genesis block: SHA-256 over a tag, the chain id (big-endian) and the
    /// authority's public key, instead of all zeroes.
    ///
    /// The header has no field for the authority, and a genesis block has no signature; without
    /// this, two chains with the same id and genesis time but different authorities would share
    /// a genesis id, and a data directory of one would open as the other. Committing to the
    /// authority here makes the genesis id, and so every block id, specific to the spec.
    pub fn genesis_parent_id(&self) -> BlockId {
        let mut hasher = Sha256::new();
        hasher.update(GENESIS_PARENT_TAG);
        hasher.update(self.chain_id.get().to_be_bytes());
        hasher.update(self.authority.as_bytes());
        BlockId::from_bytes(hasher.finalize().into())
    }
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests {
    use super::*;
    use crate::keys::AuthorityKey;

    #[test]
    fn genesis_block__when_computed_twice__then_has_the_same_id() {
        // given
        let spec = ChainSpec::dev(AuthorityKey::dev().public_key());

        // when
        let first = spec.genesis_block();
        let second = ChainSpec::dev(AuthorityKey::dev().public_key()).genesis_block();

        // then
        assert_eq!(first.encode(), second.encode());
        assert_eq!(first.id(), second.id());
    }

    #[test]
    fn genesis_block__when_built__then_is_an_empty_height_zero_block_with_genesis_seal() {
        // given
        let spec = ChainSpec::dev(AuthorityKey::dev().public_key());

        // when
        let genesis = spec.genesis_block();

        // then
        assert_eq!(genesis.height(), BlockHeight::GENESIS);
        assert_eq!(genesis.seal, Seal::Genesis);
        assert!(genesis.block.transactions.is_empty());
        assert!(genesis.block.transactions_match_header());
        assert_eq!(genesis.block.header.timestamp, ChainSpec::DEV_GENESIS_TIME);
        assert_eq!(genesis.block.header.chain_id, ChainSpec::DEV_CHAIN_ID);
    }

    #[test]
    fn genesis_block__when_any_spec_field_differs__then_has_another_id() {
        // given
        let base = ChainSpec::dev(AuthorityKey::dev().public_key());
        let other_authority = ChainSpec::dev(AuthorityKey::generate().public_key());
        let other_chain = ChainSpec {
            chain_id: ChainId::new(1),
            ..base
        };
        let other_time = ChainSpec {
            genesis_time: Timestamp::from_unix_millis(1),
            ..base
        };

        // when
        let id = base.genesis_block().id();

        // then
        for other in [other_authority, other_chain, other_time] {
            assert_ne!(other.genesis_block().id(), id, "{other:?}");
        }
    }
}
