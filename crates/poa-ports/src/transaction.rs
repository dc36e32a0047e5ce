//! An opaque transaction: the bytes a pool holds, a block orders and peers relay to each
//! other, with the identity every process gives them. The producer never interprets them.

use sha2::{Digest, Sha256};

use crate::primitives::TransactionId;

/// An opaque transaction: the chain orders and commits bytes; it does not interpret them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Transaction(Vec<u8>);

impl Transaction {
    /// Wraps raw transaction bytes.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The transaction's identity: SHA-256 of its bytes.
    pub fn id(&self) -> TransactionId {
        TransactionId::from_bytes(Sha256::digest(&self.0).into())
    }
}
