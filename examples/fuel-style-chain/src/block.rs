//! The chain's blocks and [`FuelStyleChain`], the name the producer library knows them by: a
//! [`FuelBlock`] is what the producer builds, a [`SealedFuelBlock`] what the signer seals and
//! everyone else verifies, stores and publishes. The genesis block is here too: it is never
//! sealed or published, every process builds the same one from the chain's settings.

use poa_ports::{BlockHeight, BlockId, Chain, HeaderView, SealedBlockView, Transaction};
use sha2::{Digest, Sha512_256};

use crate::header::{FuelHeader, Tai64, application_hash};
use crate::keys::AuthorityPublicKey;

/// Domain tag of the genesis block's `prev_root`.
const GENESIS_TAG: &[u8] = b"fuel-style-chain/genesis/v1";

/// The chain as the producer library sees it: this crate's header and blocks.
#[derive(Debug, Clone, Copy, Default)]
pub struct FuelStyleChain;

impl Chain for FuelStyleChain {
    type Header = FuelHeader;
    type Block = FuelBlock;
    type SealedBlock = SealedFuelBlock;
}

/// A block before it is sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FuelBlock {
    /// The header, which commits to the transactions through its application hash.
    pub header: FuelHeader,
    /// The transactions, in block order.
    pub transactions: Vec<Transaction>,
}

impl FuelBlock {
    /// Builds the block above `parent` from `transactions`, dated `time` (never before the
    /// parent). `None` when the parent is at the highest height or there are more transactions
    /// than a header can count.
    pub fn build_on(
        parent: &FuelHeader,
        time: Tai64,
        consensus_parameters_version: u32,
        transactions: Vec<Transaction>,
    ) -> Option<Self> {
        let header = FuelHeader {
            height: parent.height.checked_add(1)?,
            prev_root: parent.block_id(),
            time: time.max(parent.time),
            application_hash: application_hash(consensus_parameters_version, &transactions),
            transactions_count: u16::try_from(transactions.len()).ok()?,
            consensus_parameters_version,
        };
        Some(Self {
            header,
            transactions,
        })
    }
}

/// A block with its seal: a secp256k1 ECDSA signature (`r ‖ s`, low-s) by the chain's authority
/// over the block id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedFuelBlock {
    /// The sealed block.
    pub block: FuelBlock,
    /// The authority's signature over [`FuelHeader::block_id`]; zeros on the genesis block.
    pub signature: [u8; 64],
}

impl SealedFuelBlock {
    /// The chain's first block: height 0, dated the Unix epoch, no transactions, unsealed,
    /// its `prev_root` a hash of the authority's public key, so that two chains with different
    /// authorities never share a genesis (and so never a block).
    pub fn genesis(authority: &AuthorityPublicKey, consensus_parameters_version: u32) -> Self {
        let mut prev_root = Sha512_256::new();
        prev_root.update(GENESIS_TAG);
        prev_root.update(authority.to_sec1_bytes());
        let header = FuelHeader {
            height: 0,
            prev_root: prev_root.finalize().into(),
            time: Tai64::UNIX_EPOCH,
            application_hash: application_hash(consensus_parameters_version, &[]),
            transactions_count: 0,
            consensus_parameters_version,
        };
        Self {
            block: FuelBlock {
                header,
                transactions: Vec::new(),
            },
            signature: [0; 64],
        }
    }

    /// The block's header.
    pub fn header(&self) -> &FuelHeader {
        &self.block.header
    }
}

impl SealedBlockView for SealedFuelBlock {
    fn height(&self) -> BlockHeight {
        self.block.header.height()
    }

    fn id(&self) -> BlockId {
        self.block.header.id()
    }

    fn parent_id(&self) -> BlockId {
        BlockId::from_bytes(self.block.header.prev_root)
    }

    fn transaction_count(&self) -> usize {
        self.block.transactions.len()
    }
}
