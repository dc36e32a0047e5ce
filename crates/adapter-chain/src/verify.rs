//! Pure verification of a sealed block as the next block of a chain: given the spec, the parent
//! header and a lookup of committed transactions, is this block acceptable? And of a block on
//! its own (chain, contents, seal), as the shared block log's entries are checked.
//!
//! No I/O and no clock: the caller reads the parent and answers the lookup. The store's `verify`
//! runs every rule; its `commit` runs them all again only for a block `verify` did not just
//! accept, and otherwise only those that depend on the head it reads in its write transaction.

use std::collections::HashSet;

use crate::{Header, Seal, SealedBlock};
use poa_ports::{BlockHeight, ImportError, TransactionId};

use crate::genesis::ChainSpec;
use crate::seal_cache::SealCache;

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
    is_committed: impl FnMut(&TransactionId) -> Result<bool, ImportError>,
) -> Result<(), ImportError> {
    check_block(spec, None, parent, block, is_committed)
}

/// [`verify_block`], asking `seals` (of the spec's authority) whether the seal is valid, so a
/// seal found valid before is not checked again.
///
/// # Errors
///
/// As [`verify_block`].
pub(crate) fn verify_block_with_seals(
    spec: &ChainSpec,
    seals: &SealCache,
    parent: &Header,
    block: &SealedBlock,
    is_committed: impl FnMut(&TransactionId) -> Result<bool, ImportError>,
) -> Result<(), ImportError> {
    check_block(spec, Some(seals), parent, block, is_committed)
}

fn check_block(
    spec: &ChainSpec,
    seals: Option<&SealCache>,
    parent: &Header,
    block: &SealedBlock,
    is_committed: impl FnMut(&TransactionId) -> Result<bool, ImportError>,
) -> Result<(), ImportError> {
    let header = &block.block.header;
    if header.chain_id != spec.chain_id {
        return Err(ImportError::WrongChain {
            expected: spec.chain_id,
            found: header.chain_id,
        });
    }
    verify_link(parent, block)?;
    verify_contents(spec, seals, block)?;
    verify_no_repeated_transaction(block, is_committed)
}

/// Verifies what of `block` depends on the chain it is added to (height, parent link,
/// timestamp, repeated transactions), for a block whose own contents [`verify_block`] accepted
/// before: the store's commit of a block its `verify` just accepted, so the seal is checked
/// once per block.
///
/// # Errors
///
/// As [`verify_block`], for those checks.
pub(crate) fn verify_verified_block_extends(
    parent: &Header,
    block: &SealedBlock,
    is_committed: impl FnMut(&TransactionId) -> Result<bool, ImportError>,
) -> Result<(), ImportError> {
    verify_link(parent, block)?;
    verify_no_repeated_transaction(block, is_committed)
}

/// Height = parent + 1, the parent link, and a timestamp not before the parent's.
fn verify_link(parent: &Header, block: &SealedBlock) -> Result<(), ImportError> {
    let header = &block.block.header;
    let height = header.height;
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
    Ok(())
}

/// The transactions against the header, then the seal.
fn verify_contents(
    spec: &ChainSpec,
    seals: Option<&SealCache>,
    block: &SealedBlock,
) -> Result<(), ImportError> {
    let height = block.height();
    if !block.block.transactions_match_header() {
        return Err(ImportError::TransactionsMismatch { height });
    }
    if !seal_is_valid(spec, seals, block) {
        return Err(ImportError::InvalidSeal { height });
    }
    Ok(())
}

/// No transaction twice in the block, and none that `is_committed` says is committed.
fn verify_no_repeated_transaction(
    block: &SealedBlock,
    mut is_committed: impl FnMut(&TransactionId) -> Result<bool, ImportError>,
) -> Result<(), ImportError> {
    let mut seen = HashSet::with_capacity(block.block.transactions.len());
    for transaction in &block.block.transactions {
        let id = transaction.id();
        if !seen.insert(id) || is_committed(&id)? {
            return Err(ImportError::DuplicateTransaction {
                height: block.height(),
            });
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
    check_sealed_block(spec, None, block)
}

/// [`verify_sealed_block`], asking `seals` (of the spec's authority) whether the seal is valid
/// and remembering a valid one, so the store does not check it again at import.
///
/// # Errors
///
/// As [`verify_sealed_block`].
pub(crate) fn verify_sealed_block_with_seals(
    spec: &ChainSpec,
    seals: &SealCache,
    block: &SealedBlock,
) -> Result<(), ImportError> {
    check_sealed_block(spec, Some(seals), block)
}

fn check_sealed_block(
    spec: &ChainSpec,
    seals: Option<&SealCache>,
    block: &SealedBlock,
) -> Result<(), ImportError> {
    let header = &block.block.header;
    if header.chain_id != spec.chain_id {
        return Err(ImportError::WrongChain {
            expected: spec.chain_id,
            found: header.chain_id,
        });
    }
    verify_contents(spec, seals, block)
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
    (!seal_is_valid(spec, None, block))
        .then(|| format!("the seal of the block at height {height} does not verify"))
}

/// Whether the block's seal is valid for its height: a genesis seal only at height 0, an
/// authority seal only with the spec authority's signature over the block id (found valid
/// before in `seals`, when given and of that authority, or checked now).
fn seal_is_valid(spec: &ChainSpec, seals: Option<&SealCache>, block: &SealedBlock) -> bool {
    match (&block.seal, seals) {
        (Seal::Genesis, _) => block.height() == BlockHeight::GENESIS,
        (Seal::Authority(signature), Some(seals)) if seals.is_of(&spec.authority) => {
            seals.verifies(block.id(), signature)
        }
        (Seal::Authority(signature), _) => {
            spec.authority.verifies(block.id().as_bytes(), signature)
        }
    }
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests;
