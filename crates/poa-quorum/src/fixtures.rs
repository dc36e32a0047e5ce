//! Names of heights, blocks and epochs shared by the rules' tests: block `variant` at a height,
//! where variant 0 is the committed chain. Test code only.

use poa_ports::{BlockHeight, BlockId, Epoch};

pub(crate) fn height(value: u64) -> BlockHeight {
    BlockHeight::new(value)
}

/// Block `variant` at `height`: variant 0 is the committed chain.
pub(crate) fn id(height: u64, variant: u8) -> BlockId {
    let mut bytes = [variant; 32];
    bytes[..8].copy_from_slice(&height.to_be_bytes());
    BlockId::from_bytes(bytes)
}

/// The committed chain's block at `height` (the genesis id at 0).
pub(crate) fn chain(height: u64) -> BlockId {
    id(height, 0)
}

pub(crate) fn epoch(value: u64) -> Epoch {
    Epoch::new(value)
}
