//! The reference chain: the blocks of [`crate::block`] (an ed25519 seal, the postcard
//! encoding) named as a [`Chain`] with its [`BlockCodec`], so `poa-node` instantiates the ports
//! and the generic adapters with them. Nothing in the ports, the domain service or the shared
//! log adapters depends on this module; an embedder with its own blocks declares its own
//! [`Chain`] instead.

use poa_ports::{
    BlockCodec, BlockCodecError, BlockHeight, BlockId, Chain, HeaderView, SealedBlockView,
    Timestamp,
};

use crate::block::{Block, Header, SealedBlock};

/// The reference chain: [`Header`], [`Block`] and [`SealedBlock`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReferenceChain;

impl Chain for ReferenceChain {
    type Header = Header;
    type Block = Block;
    type SealedBlock = SealedBlock;
}

impl BlockCodec for ReferenceChain {
    fn encode_block(block: &SealedBlock) -> Vec<u8> {
        block.encode()
    }

    fn decode_block(bytes: &[u8]) -> Result<SealedBlock, BlockCodecError> {
        SealedBlock::decode(bytes)
    }
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

#[cfg(test)]
#[allow(non_snake_case)]
mod tests {
    use super::*;
    use poa_ports::ChainId;

    use poa_ports::Transaction;

    use crate::block::{Seal, transactions_root};

    #[test]
    fn views__when_read_from_a_reference_block__then_agree_with_its_header_and_transactions() {
        // given
        let transactions = vec![
            Transaction::new(b"a".to_vec()),
            Transaction::new(b"b".to_vec()),
        ];
        let header = Header {
            chain_id: ChainId::new(3),
            height: BlockHeight::new(9),
            parent_id: BlockId::from_bytes([4; 32]),
            timestamp: Timestamp::from_unix_millis(1_234),
            transactions_root: transactions_root(&transactions),
            transaction_count: 2,
        };
        let block = SealedBlock {
            block: Block {
                header: header.clone(),
                transactions,
            },
            seal: Seal::Genesis,
        };

        // when
        let head = (
            HeaderView::height(&header),
            HeaderView::id(&header),
            HeaderView::timestamp(&header),
        );
        let sealed = (
            SealedBlockView::height(&block),
            SealedBlockView::id(&block),
            SealedBlockView::parent_id(&block),
            SealedBlockView::transaction_count(&block),
        );

        // then
        assert_eq!(
            head,
            (
                BlockHeight::new(9),
                header.id(),
                Timestamp::from_unix_millis(1_234)
            )
        );
        assert_eq!(
            sealed,
            (
                BlockHeight::new(9),
                header.id(),
                BlockId::from_bytes([4; 32]),
                2
            )
        );
    }
}
