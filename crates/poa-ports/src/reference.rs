//! The reference chain: the blocks of [`crate::block`] (an ed25519 seal, the postcard
//! encoding) named as a [`Chain`], so the adapters and `poa-node` instantiate the ports with
//! them. Nothing in the ports or the domain service depends on this module; an embedder with
//! its own blocks declares its own [`Chain`] instead.

use crate::block::{Block, Header, SealedBlock};
use crate::chain::{Chain, HeaderView, SealedBlockView};
use crate::primitives::{BlockHeight, BlockId, Timestamp};

/// The reference chain: [`Header`], [`Block`] and [`SealedBlock`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReferenceChain;

impl Chain for ReferenceChain {
    type Header = Header;
    type Block = Block;
    type SealedBlock = SealedBlock;
}

impl HeaderView for Header {
    fn height(&self) -> BlockHeight {
        self.height
    }

    fn id(&self) -> BlockId {
        Header::id(self)
    }

    fn timestamp(&self) -> Timestamp {
        self.timestamp
    }
}

impl SealedBlockView for SealedBlock {
    fn height(&self) -> BlockHeight {
        SealedBlock::height(self)
    }

    fn id(&self) -> BlockId {
        SealedBlock::id(self)
    }

    fn parent_id(&self) -> BlockId {
        self.block.header.parent_id
    }

    fn transaction_count(&self) -> usize {
        self.block.transactions.len()
    }
}
