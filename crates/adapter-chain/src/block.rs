//! The reference chain's blocks: headers, transactions, seals, identities and the wire
//! encoding.
//!
//! A block's identity ([`BlockId`]) is the SHA-256 hash of a fixed, versioned byte layout of its
//! header, independent of the serde encoding, so the id never changes when the wire format does.
//! The wire encoding of a [`SealedBlock`] (postcard) is what the local store and the Redis
//! streams hold; decoding untrusted bytes never panics and reports [`BlockCodecError`].

use poa_ports::{
    BlockCodecError, BlockHeight, BlockId, ChainId, Signature, Timestamp, Transaction,
    TransactionsRoot,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::wire;

/// Domain separation tags, so a header hash can never collide with another kind of hash.
const HEADER_TAG: &[u8] = b"poa/header/v1";
const TRANSACTIONS_TAG: &[u8] = b"poa/transactions/v1";

/// The header of a block: everything the block id commits to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Header {
    /// The chain this block belongs to.
    #[serde(with = "wire::chain_id")]
    pub chain_id: ChainId,
    /// Position in the chain; the parent is at `height - 1`.
    #[serde(with = "wire::height")]
    pub height: BlockHeight,
    /// Id of the block at `height - 1` (all zeroes for genesis).
    #[serde(with = "wire::block_id")]
    pub parent_id: BlockId,
    /// When the producer built the block; never earlier than the parent's timestamp.
    #[serde(with = "wire::timestamp")]
    pub timestamp: Timestamp,
    /// Commitment to the ordered transactions, see [`transactions_root`].
    #[serde(with = "wire::transactions_root")]
    pub transactions_root: TransactionsRoot,
    /// Number of transactions in the block.
    pub transaction_count: u32,
}

impl Header {
    /// The block id: SHA-256 over a tagged, fixed-width big-endian layout of every field.
    pub fn id(&self) -> BlockId {
        let mut hasher = Sha256::new();
        hasher.update(HEADER_TAG);
        hasher.update(self.chain_id.get().to_be_bytes());
        hasher.update(self.height.get().to_be_bytes());
        hasher.update(self.parent_id.as_bytes());
        hasher.update(self.timestamp.as_unix_millis().to_be_bytes());
        hasher.update(self.transactions_root.as_bytes());
        hasher.update(self.transaction_count.to_be_bytes());
        BlockId::from_bytes(hasher.finalize().into())
    }
}

/// A block: a header and the transactions it commits to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Block {
    /// The header.
    pub header: Header,
    /// The transactions, in execution order.
    #[serde(with = "wire::transactions")]
    pub transactions: Vec<Transaction>,
}

impl Block {
    /// The block's id (the id of its header).
    pub fn id(&self) -> BlockId {
        self.header.id()
    }

    /// The block's height.
    pub fn height(&self) -> BlockHeight {
        self.header.height
    }

    /// Whether the header's transaction count and root match the transactions carried.
    pub fn transactions_match_header(&self) -> bool {
        u32::try_from(self.transactions.len()).ok() == Some(self.header.transaction_count)
            && transactions_root(&self.transactions) == self.header.transactions_root
    }
}

/// Commitment to an ordered list of transactions: SHA-256 over a tag, the count and every
/// transaction id in order. A flat commitment, not a Merkle tree: the chain needs to bind the
/// list to the header, not to prove single inclusions.
pub fn transactions_root(transactions: &[Transaction]) -> TransactionsRoot {
    let mut hasher = Sha256::new();
    hasher.update(TRANSACTIONS_TAG);
    hasher.update((transactions.len() as u64).to_be_bytes());
    for transaction in transactions {
        hasher.update(transaction.id().as_bytes());
    }
    TransactionsRoot::from_bytes(hasher.finalize().into())
}

/// How a block is authorised.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Seal {
    /// The genesis block: authorised by the chain configuration itself.
    Genesis,
    /// Any other block: the authority's ed25519 signature over the block id.
    Authority(#[serde(with = "wire::signature")] Signature),
}

/// A block together with its seal: what is published, stored and imported.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SealedBlock {
    /// The block.
    pub block: Block,
    /// Its authorisation.
    pub seal: Seal,
}

impl SealedBlock {
    /// The block's id.
    pub fn id(&self) -> BlockId {
        self.block.id()
    }

    /// The block's height.
    pub fn height(&self) -> BlockHeight {
        self.block.height()
    }

    /// Encodes the sealed block for storage and publication.
    pub fn encode(&self) -> Vec<u8> {
        // Serialising plain owned data into a Vec cannot fail; the fallback keeps this total.
        postcard::to_stdvec(self).unwrap_or_default()
    }

    /// Decodes bytes written by [`SealedBlock::encode`].
    ///
    /// # Errors
    ///
    /// [`BlockCodecError`] when the bytes are not a complete, well-formed sealed block.
    pub fn decode(bytes: &[u8]) -> Result<Self, BlockCodecError> {
        match postcard::take_from_bytes::<Self>(bytes) {
            Ok((block, [])) => Ok(block),
            Ok((_, rest)) => Err(BlockCodecError {
                reason: format!("{} trailing bytes", rest.len()),
            }),
            Err(error) => Err(BlockCodecError {
                reason: error.to_string(),
            }),
        }
    }
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests;
