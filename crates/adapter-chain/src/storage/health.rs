//! [`StorageHealth`]: whether the local chain accepts commits, as the store sees it, published
//! on a watch channel so the node can answer `/health`, export a metric and exit when the
//! store gives up. It holds state only; the store decides every transition.

use std::fmt;

/// The state of the local chain's database file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum StorageHealth {
    /// Reads and commits work.
    #[default]
    Healthy,
    /// An I/O error closed the database; the store reopens it (bounded by its recovery
    /// window). Nothing is committed meanwhile.
    Recovering {
        /// The error, naming the file and what the file system reported.
        cause: String,
    },
    /// The file at the database path is no longer the one the store has open (deleted or
    /// replaced): commits are refused, reads are served from the open file. The process keeps
    /// running so the operator can copy the open file out before restarting.
    Detached {
        /// What changed, with where to copy the open file from.
        cause: String,
    },
    /// Terminal: the store refuses every operation. The process should exit so a supervisor
    /// restarts it once the cause is fixed.
    Failed {
        /// The error, naming the file, the cause and the fix.
        cause: String,
    },
}

impl StorageHealth {
    /// Whether commits are accepted.
    pub fn is_healthy(&self) -> bool {
        matches!(self, Self::Healthy)
    }

    /// Whether the store has given up for the life of the process.
    pub fn is_failed(&self) -> bool {
        matches!(self, Self::Failed { .. })
    }

    /// A short lowercase name: `healthy`, `recovering`, `detached` or `failed`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Healthy => "healthy",
            Self::Recovering { .. } => "recovering",
            Self::Detached { .. } => "detached",
            Self::Failed { .. } => "failed",
        }
    }
}

impl fmt::Display for StorageHealth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Healthy => f.write_str("healthy"),
            Self::Recovering { cause } | Self::Detached { cause } | Self::Failed { cause } => {
                write!(f, "{}: {cause}", self.name())
            }
        }
    }
}
