//! Errors of the chain adapter: authority key files, the local block store and the
//! transaction pool. Verification refusals are not here: they are the port's
//! [`poa_ports::ImportError`] variants, so `poa-core` can branch on them.

use std::path::PathBuf;

use poa_ports::{BlockCodecError, BlockHeight, BlockId};

/// Errors reading, writing or parsing authority keys.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file does not exist.
    #[error("authority key file {} does not exist", path.display())]
    Missing {
        /// The key file.
        path: PathBuf,
    },
    /// The key file exists but could not be read.
    #[error("cannot read authority key file {}", path.display())]
    Unreadable {
        /// The key file.
        path: PathBuf,
        /// What the file system reported.
        #[source]
        source: std::io::Error,
    },
    /// The key file does not hold a key in the expected format.
    #[error(
        "authority key file {} is malformed: {reason} (expected the 32-byte secret as 64 lowercase hex characters and a newline)",
        path.display()
    )]
    Malformed {
        /// The key file.
        path: PathBuf,
        /// What is wrong with its content.
        reason: String,
    },
    /// Writing refused: a file already exists at the path, and a key is never overwritten.
    #[error("refusing to overwrite existing authority key file {}", path.display())]
    AlreadyExists {
        /// The key file.
        path: PathBuf,
    },
    /// The key file could not be created or written.
    #[error("cannot write authority key file {}", path.display())]
    Unwritable {
        /// The key file.
        path: PathBuf,
        /// What the file system reported.
        #[source]
        source: std::io::Error,
    },
    /// A public key is not 64 hex characters encoding a valid ed25519 point.
    #[error("invalid authority public key: {reason}")]
    InvalidPublicKey {
        /// Why it was refused.
        reason: &'static str,
    },
}

/// Errors of the local block store.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The database file could not be created or opened (locked by another process, corrupt,
    /// unreadable).
    #[error("cannot open chain database {}", path.display())]
    Open {
        /// The database file.
        path: PathBuf,
        /// What redb reported (boxed: redb's error is large and this one is rare).
        #[source]
        source: Box<redb::Error>,
    },
    /// The data directory holds the chain of another spec (another chain id, authority or
    /// genesis time).
    #[error(
        "data directory {} belongs to another chain: its genesis is {stored}, this chain's genesis is {expected}",
        path.display()
    )]
    ForeignChain {
        /// The database file.
        path: PathBuf,
        /// The genesis id stored in the database.
        stored: BlockId,
        /// The genesis id of the configured spec.
        expected: BlockId,
    },
    /// The database was written by an incompatible version of this adapter.
    #[error("chain database {} has schema version {found}, this build reads version {supported}", path.display())]
    UnsupportedSchema {
        /// The database file.
        path: PathBuf,
        /// The stored schema version.
        found: u64,
        /// The schema version this build reads and writes.
        supported: u64,
    },
    /// The database content contradicts itself (missing genesis, missing index entry).
    #[error("chain database is inconsistent: {reason}")]
    Inconsistent {
        /// What is missing or contradictory.
        reason: String,
    },
    /// A stored block does not decode.
    #[error("stored block at height {height} does not decode")]
    UndecodableBlock {
        /// The height of the block.
        height: BlockHeight,
        /// What the decoder reported.
        #[source]
        source: BlockCodecError,
    },
    /// A read or write failed inside redb (boxed: redb's error is large, and every store call
    /// returns this type).
    #[error("chain database operation failed")]
    Database(#[source] Box<redb::Error>),
    /// The blocking task that ran a database operation panicked or was cancelled.
    #[error("chain database task did not complete")]
    TaskFailed(#[source] tokio::task::JoinError),
}

/// Every redb error type converts into the one `redb::Error`, so one `From` per type keeps `?`
/// usable on each call without losing the cause.
macro_rules! storage_error_from_redb {
    ($($source:ty),+ $(,)?) => {
        $(impl From<$source> for StorageError {
            fn from(error: $source) -> Self {
                Self::Database(Box::new(error.into()))
            }
        })+
    };
}

storage_error_from_redb!(
    redb::Error,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
);

/// Refusals of the transaction pool.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// The transaction is larger than one transaction may be.
    #[error("transaction of {bytes} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The transaction's size.
        bytes: usize,
        /// The configured per-transaction limit.
        limit: usize,
    },
    /// The pool holds as many transactions or bytes as it may.
    #[error("transaction pool is full")]
    Full,
    /// The same transaction is already pending.
    #[error("transaction is already pending")]
    Duplicate,
    /// The transaction has no bytes.
    #[error("transaction is empty")]
    Empty,
    /// A relayed transaction was first accepted longer ago than the pool keeps transactions.
    #[error("transaction has expired")]
    Expired,
}
