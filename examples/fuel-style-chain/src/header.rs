//! [`FuelHeader`]: the chain's header, its own id hash and its application hash, and [`Tai64`],
//! the header's time. The layout and the hashes are this chain's alone: nothing here comes from
//! the producer library, which reads a header only through [`HeaderView`].

use poa_ports::{BlockHeight, BlockId, HeaderView, Timestamp, Transaction};
use sha2::{Digest, Sha512_256};

/// Domain tag of the block id: no other hash of this chain can collide with an id.
const BLOCK_ID_TAG: &[u8] = b"fuel-style-chain/block-id/v1";
/// Domain tag of the application hash.
const APPLICATION_TAG: &[u8] = b"fuel-style-chain/application/v1";

/// A point in time as TAI64 labels it (seconds, offset by 2^62), the way fuel-core's headers
/// carry time. Whole seconds: blocks produced within one second share their time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tai64(pub u64);

impl Tai64 {
    /// The label of the Unix epoch: 2^62 plus the 10 s TAI was ahead of UTC in 1970.
    pub const UNIX_EPOCH: Self = Self((1 << 62) + 10);

    /// The label of a Unix time in milliseconds, rounded down to the second.
    pub fn from_unix_millis(millis: u64) -> Self {
        Self(Self::UNIX_EPOCH.0.saturating_add(millis / 1_000))
    }

    /// Milliseconds since the Unix epoch; a label before it reads as the epoch.
    pub fn to_unix_millis(self) -> u64 {
        self.0
            .saturating_sub(Self::UNIX_EPOCH.0)
            .saturating_mul(1_000)
    }
}

/// The header of a block of this chain, after fuel-core's: a `u32` height, the id of the block
/// below (`prev_root`), a TAI64 time, a hash over the block's application data (the consensus
/// parameters version and the transactions), the transaction count, and the consensus
/// parameters version the block was built under.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FuelHeader {
    /// The block's height; genesis is 0.
    pub height: u32,
    /// The id of the block below (the genesis block's commits to the chain's authority).
    pub prev_root: [u8; 32],
    /// When the block was built.
    pub time: Tai64,
    /// [`application_hash`] of the block's transactions under its consensus parameters.
    pub application_hash: [u8; 32],
    /// How many transactions the block carries.
    pub transactions_count: u16,
    /// The version of the consensus parameters the block was built under.
    pub consensus_parameters_version: u32,
}

impl FuelHeader {
    /// The block id: SHA-512/256 over a tag and every field, big-endian, in declaration order.
    /// The codec's bytes do not enter it, so the id does not change with the wire form.
    pub fn block_id(&self) -> [u8; 32] {
        let mut hash = Sha512_256::new();
        hash.update(BLOCK_ID_TAG);
        hash.update(self.height.to_be_bytes());
        hash.update(self.prev_root);
        hash.update(self.time.0.to_be_bytes());
        hash.update(self.application_hash);
        hash.update(self.transactions_count.to_be_bytes());
        hash.update(self.consensus_parameters_version.to_be_bytes());
        hash.finalize().into()
    }
}

/// The hash a header's `application_hash` must hold for `transactions` built under
/// `consensus_parameters_version`: SHA-512/256 over a tag, the version, the count and each
/// transaction's length and bytes, in block order.
pub fn application_hash(
    consensus_parameters_version: u32,
    transactions: &[Transaction],
) -> [u8; 32] {
    let mut hash = Sha512_256::new();
    hash.update(APPLICATION_TAG);
    hash.update(consensus_parameters_version.to_be_bytes());
    hash.update((transactions.len() as u64).to_be_bytes());
    for transaction in transactions {
        hash.update((transaction.as_bytes().len() as u64).to_be_bytes());
        hash.update(transaction.as_bytes());
    }
    hash.finalize().into()
}

impl HeaderView for FuelHeader {
    fn height(&self) -> BlockHeight {
        BlockHeight::new(u64::from(self.height))
    }

    fn id(&self) -> BlockId {
        BlockId::from_bytes(self.block_id())
    }

    fn timestamp(&self) -> Timestamp {
        Timestamp::from_unix_millis(self.time.to_unix_millis())
    }
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests {
    use super::*;

    fn header() -> FuelHeader {
        FuelHeader {
            height: 7,
            prev_root: [1; 32],
            time: Tai64::from_unix_millis(1_700_000_000_999),
            application_hash: application_hash(3, &[]),
            transactions_count: 0,
            consensus_parameters_version: 3,
        }
    }

    #[test]
    fn block_id__when_any_field_changes__then_changes() {
        // given
        let base = header();
        let changed = [
            FuelHeader {
                height: 8,
                ..base.clone()
            },
            FuelHeader {
                prev_root: [2; 32],
                ..base.clone()
            },
            FuelHeader {
                time: Tai64(base.time.0 + 1),
                ..base.clone()
            },
            FuelHeader {
                application_hash: [9; 32],
                ..base.clone()
            },
            FuelHeader {
                transactions_count: 1,
                ..base.clone()
            },
            FuelHeader {
                consensus_parameters_version: 4,
                ..base.clone()
            },
        ];

        // when / then
        for other in changed {
            assert_ne!(other.block_id(), base.block_id(), "{other:?}");
        }
    }

    #[test]
    fn timestamp__when_read_through_the_view__then_is_the_whole_second_in_millis() {
        // given
        let header = header();

        // when
        let timestamp = header.timestamp();

        // then
        assert_eq!(timestamp, Timestamp::from_unix_millis(1_700_000_000_000));
        assert_eq!(
            Tai64::from_unix_millis(timestamp.as_unix_millis()),
            header.time
        );
    }

    #[test]
    fn application_hash__when_transactions_are_split_differently__then_differs() {
        // given
        let joined = [Transaction::new(b"ab".to_vec())];
        let split = [
            Transaction::new(b"a".to_vec()),
            Transaction::new(b"b".to_vec()),
        ];

        // when / then
        assert_ne!(application_hash(1, &joined), application_hash(1, &split));
        assert_ne!(application_hash(1, &joined), application_hash(2, &joined));
    }
}
