//! Blocks and Redis configurations the publish-path cases share: a sealed block whose encoded
//! size is close to a requested payload, and the adapter configuration every series uses.
//! Owns no measuring.

use std::sync::Arc;
use std::time::Duration;

use adapter_chain::block::transactions_root;
use adapter_chain::{Block, Header, ReferenceChain, Seal, SealedBlock};
use adapter_redis::{RedisConfig, RedisSecurity};
use poa_ports::Transaction;
use poa_ports::{
    BlockHeight, BlockId, ChainHead, ChainId, ImportError, SealVerifier, Signature, Timestamp,
};

/// The payload sizes the goals name: 256 B, 4 KiB and 64 KiB.
pub(crate) const BLOCK_SIZES: [usize; 3] = [256, 4 << 10, 64 << 10];

/// A sealed block at `height` carrying one transaction of `payload_bytes` bytes. The publish
/// path never verifies the seal, so a fixed signature keeps block building out of the timing.
pub(crate) fn block_of(height: u64, payload_bytes: usize) -> SealedBlock {
    let transactions = vec![Transaction::new(
        (0..payload_bytes)
            .map(|index| (index % 251) as u8)
            .collect(),
    )];
    SealedBlock {
        block: Block {
            header: Header {
                chain_id: ChainId::new(1),
                height: BlockHeight::new(height),
                parent_id: BlockId::from_bytes([0; 32]),
                timestamp: Timestamp::from_unix_millis(1_700_000_000_000 + height),
                transactions_root: transactions_root(&transactions),
                transaction_count: 1,
            },
            transactions,
        },
        seal: Seal::Authority(BENCH_SEAL),
    }
}

/// The fixed seal of the publish-path blocks.
const BENCH_SEAL: Signature = Signature::from_bytes([7; 64]);

/// The head below `next_height` with an id of zeros: the empty chain a fresh leader reports
/// before its first block. Later heads carry the last published block's id, which the cheap
/// check of a reconciled leader compares.
pub(crate) fn head_below(next_height: u64) -> ChainHead {
    ChainHead {
        height: BlockHeight::new(next_height.saturating_sub(1)),
        id: BlockId::from_bytes([0; 32]),
    }
}

/// Accepts exactly the publish-path blocks ([`block_of`]): chain 1 and the fixed seal.
#[derive(Debug)]
struct BenchSealVerifier;

impl SealVerifier<ReferenceChain> for BenchSealVerifier {
    fn verify_seal(&self, block: &SealedBlock) -> Result<(), ImportError> {
        match block.seal {
            Seal::Authority(seal)
                if seal == BENCH_SEAL && block.block.header.chain_id == ChainId::new(1) =>
            {
                Ok(())
            }
            _ => Err(ImportError::InvalidSeal {
                height: block.height(),
            }),
        }
    }
}

/// The verifier every publish-path series connects with.
pub(crate) fn verifier() -> Arc<dyn SealVerifier<ReferenceChain>> {
    Arc::new(BenchSealVerifier)
}

/// The adapter configuration of every benchmark series: the production defaults (node
/// timeout 100 ms, TTL 3 s) with `urls` and a key prefix of the series' own.
pub(crate) fn redis_config(urls: Vec<String>, lease_key: String) -> RedisConfig {
    RedisConfig {
        urls,
        lease_key,
        security: RedisSecurity::default(),
        ..RedisConfig::default()
    }
}

/// The default node timeout, for cases that compare against it.
pub(crate) fn node_timeout() -> Duration {
    RedisConfig::default().node_timeout
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests {
    use super::*;

    #[test]
    fn block_of__when_sizes_requested__then_encoded_size_is_payload_plus_a_small_header() {
        // given / when / then
        for size in BLOCK_SIZES {
            let encoded = block_of(7, size).encode().len();
            assert!(
                encoded >= size && encoded <= size + 256,
                "{size} B payload encodes to {encoded} B"
            );
        }
    }
}
