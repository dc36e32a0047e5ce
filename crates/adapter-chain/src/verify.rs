//! Pure verification of a sealed block as the next block of a chain: given the spec, the parent
//! header and a lookup of committed transactions, is this block acceptable? And of a block on
//! its own (chain, contents, seal), as the shared block log's entries are checked.
//!
//! No I/O and no clock: the caller reads the parent and answers the lookup (from a read or write
//! transaction of the store), so the same rules run in `verify` and inside `commit`.

use std::collections::HashSet;

use crate::{Header, Seal, SealedBlock};
use poa_ports::{BlockHeight, ImportError, TransactionId};

use crate::genesis::ChainSpec;

/// Verifies `block` as the child of `parent` on the chain of `spec`. Checks, cheapest first:
/// chain id, height = parent + 1, parent link, timestamp not before the parent's, transactions
/// against the header, the seal (an authority signature over the block id, valid for the spec's
/// key; a genesis seal only at height 0), no transaction twice in the block, and no transaction
/// for which `is_committed` answers `true`.
///
/// # Errors
///
/// The first refusal found, as the matching [`ImportError`] variant; any error of
/// `is_committed` is returned unchanged.
pub fn verify_block(
    spec: &ChainSpec,
    parent: &Header,
    block: &SealedBlock,
    mut is_committed: impl FnMut(&TransactionId) -> Result<bool, ImportError>,
) -> Result<(), ImportError> {
    let header = &block.block.header;
    let height = header.height;
    if header.chain_id != spec.chain_id {
        return Err(ImportError::WrongChain {
            expected: spec.chain_id,
            found: header.chain_id,
        });
    }
    // A parent at u64::MAX has no next height, so nothing extends it; the refusal then names
    // the parent's own height as the expected one.
    if parent.height.next() != Some(height) {
        return Err(ImportError::WrongHeight {
            expected: parent.height.next().unwrap_or(parent.height),
            found: height,
        });
    }
    let parent_id = parent.id();
    if header.parent_id != parent_id {
        return Err(ImportError::WrongParent {
            height,
            expected: parent_id,
            found: header.parent_id,
        });
    }
    if header.timestamp < parent.timestamp {
        return Err(ImportError::TimestampBeforeParent {
            height,
            parent: parent.timestamp,
            found: header.timestamp,
        });
    }
    if !block.block.transactions_match_header() {
        return Err(ImportError::TransactionsMismatch { height });
    }
    if !seal_is_valid(spec, block) {
        return Err(ImportError::InvalidSeal { height });
    }
    let mut seen = HashSet::with_capacity(block.block.transactions.len());
    for transaction in &block.block.transactions {
        let id = transaction.id();
        if !seen.insert(id) || is_committed(&id)? {
            return Err(ImportError::DuplicateTransaction { height });
        }
    }
    Ok(())
}

/// Verifies `block` on its own, without a parent: the chain id, the transactions against the
/// header, and the seal. What the shared block log must pass before it counts in any
/// reconciliation decision (`poa_ports::SealVerifier`).
///
/// # Errors
///
/// The first refusal found, as the matching [`ImportError`] variant.
pub fn verify_sealed_block(spec: &ChainSpec, block: &SealedBlock) -> Result<(), ImportError> {
    let header = &block.block.header;
    if header.chain_id != spec.chain_id {
        return Err(ImportError::WrongChain {
            expected: spec.chain_id,
            found: header.chain_id,
        });
    }
    if !block.block.transactions_match_header() {
        return Err(ImportError::TransactionsMismatch {
            height: header.height,
        });
    }
    if !seal_is_valid(spec, block) {
        return Err(ImportError::InvalidSeal {
            height: header.height,
        });
    }
    Ok(())
}

/// What is wrong with `block` as read from the store at `height`, if anything: stored under
/// another height, transactions that do not match the header (a flipped byte in a committed
/// transaction), a seal that does not verify (a flipped byte in the header), or a genesis that
/// is not the spec's. A block that passes was written as it is.
pub(crate) fn stored_block_problem(
    spec: &ChainSpec,
    height: BlockHeight,
    block: &SealedBlock,
) -> Option<String> {
    if block.height() != height {
        return Some(format!(
            "the block stored at height {height} says it is at height {}",
            block.height()
        ));
    }
    if !block.block.transactions_match_header() {
        return Some(format!(
            "the transactions of the block at height {height} do not match its header's transactions root"
        ));
    }
    if height == BlockHeight::GENESIS {
        return (*block != spec.genesis_block())
            .then(|| "the stored genesis block is not this chain's genesis".to_owned());
    }
    (!seal_is_valid(spec, block))
        .then(|| format!("the seal of the block at height {height} does not verify"))
}

/// Whether the block's seal is valid for its height: a genesis seal only at height 0, an
/// authority seal only with the spec authority's signature over the block id.
fn seal_is_valid(spec: &ChainSpec, block: &SealedBlock) -> bool {
    match &block.seal {
        Seal::Genesis => block.height() == BlockHeight::GENESIS,
        Seal::Authority(signature) => spec.authority.verifies(block.id().as_bytes(), signature),
    }
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests;
