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
    /// Something other than a regular file is at the path (a named pipe would block the read).
    #[error("authority key file {} is {kind}, not a regular file", path.display())]
    NotARegularFile {
        /// The key file.
        path: PathBuf,
        /// What is there instead: "a named pipe (FIFO)", "a directory", ...
        kind: &'static str,
    },
    /// The key file may be read or written by group or others: refused, as ssh refuses such a
    /// private key, since anyone who reads it can seal blocks of the chain.
    #[error(
        "authority key file {} has mode {mode:04o}, so group or others may read or write it: restrict it to its owner with `chmod 600 {}`",
        path.display(),
        path.display()
    )]
    OpenPermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
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
    /// The data directory path names something that is not a directory.
    #[error("data directory {} is not a directory: point it at a directory (it is created if missing)", path.display())]
    DataDirNotADirectory {
        /// The data directory.
        path: PathBuf,
    },
    /// The chain database path names something that is not a regular file.
    #[error("chain database {} is not a regular file: move it aside, the chain database is a file the node creates", path.display())]
    NotARegularFile {
        /// The database path.
        path: PathBuf,
    },
    /// The chain database file is empty: it holds no chain, and is never silently made a new
    /// one.
    #[error(
        "chain database {path} is empty, it holds no chain (a truncated copy, or a first start of an older version that was killed): restore it from a backup, or if no chain is expected there remove it (rm {path}) and start again to create the chain or resync it",
        path = path.display()
    )]
    EmptyFile {
        /// The database file.
        path: PathBuf,
    },
    /// The file is not a redb database.
    #[error(
        "chain database {path} is not a database ({detail}): it was not written by poa-node, or a first start of an older version was killed while creating it; restore it from a backup, or if it holds no chain you need move it aside (mv {path} {path}.invalid) and start again to create the chain or resync it",
        path = path.display()
    )]
    NotADatabase {
        /// The database file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// Another process (a running node, or a check) has the database open.
    #[error(
        "chain database {} is in use by another process: stop the process that uses this data directory first, or give this one its own",
        path.display()
    )]
    InUse {
        /// The database file.
        path: PathBuf,
    },
    /// The data directory holds the chain of another spec (another chain id, authority or
    /// genesis time).
    #[error(
        "data directory {} belongs to another chain ({difference}): its genesis is {stored}, this chain's genesis is {expected}",
        path.display()
    )]
    ForeignChain {
        /// The database file.
        path: PathBuf,
        /// The genesis id stored in the database.
        stored: BlockId,
        /// The genesis id of the configured spec.
        expected: BlockId,
        /// Which settings differ (chain id, authority, genesis time), when the file records
        /// its spec.
        difference: String,
    },
    /// The database was written by an incompatible version of this adapter (a newer one: this
    /// build upgrades every older version it knows).
    #[error(
        "chain database {path} has schema version {found}, this build reads version {supported} and upgrades older ones: start the build that wrote it, or move it aside (mv {path} {path}.unsupported) and start again to resync the chain from the Redis streams or peers",
        path = path.display()
    )]
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
    /// The file system refused a read, write or size change of the database file (a full disk,
    /// a failing device). The store closes the database and reopens it at a later call, within
    /// its recovery window.
    #[error("chain database {} failed to {operation}: {cause}", path.display())]
    Io {
        /// The database file.
        path: PathBuf,
        /// What the store was doing: `read`, `write`, `resize`, `sync` or `size`.
        operation: &'static str,
        /// What the file system reported, e.g. "No space left on device (os error 28)".
        cause: String,
    },
    /// The database is closed after an I/O error and the next reopen attempt is not due yet.
    #[error(
        "chain database {} is closed after an i/o error ({cause}); it is reopened at the next attempt",
        path.display()
    )]
    Reopening {
        /// The database file.
        path: PathBuf,
        /// The I/O error that closed it.
        cause: String,
    },
    /// The store gave up: it refuses every operation until the process restarts. The node exits
    /// on this so a supervisor restarts it.
    #[error("chain database {} has failed for good: {cause}", path.display())]
    Failed {
        /// The database file.
        path: PathBuf,
        /// Why, with what the operator should do.
        cause: String,
    },
    /// The file at the database path is no longer the one the store has open (deleted or
    /// replaced while running): commits are refused for the life of the process.
    #[error("chain database {} is detached: {cause}", path.display())]
    Detached {
        /// The database path.
        path: PathBuf,
        /// What changed, and how to rescue the open file.
        cause: String,
    },
    /// A stored block decodes but is not what was committed at its height (a flipped byte).
    #[error("stored block at height {height} is damaged: {problem}")]
    DamagedBlock {
        /// The height it is stored at.
        height: BlockHeight,
        /// What does not check.
        problem: String,
    },
    /// The database file is damaged: redb found a bad checksum or panicked on it, or a stored
    /// block does not check. The store never writes into it again.
    #[error(
        "chain database {path} is damaged ({detail}): stop the node, then restore the file from a backup, or move it aside (mv {path} {path}.damaged) and start the node again to resync the chain from the Redis streams or peers",
        path = path.display()
    )]
    Corrupted {
        /// The database file.
        path: PathBuf,
        /// What was found.
        detail: String,
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
