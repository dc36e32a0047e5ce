//! [`StorageHealth`]: whether the local chain accepts commits, as the store sees it, published
//! on a watch channel so the node can answer `/health`, export a metric and exit when the
//! store gives up. The store has two database files (the chain and its transaction index);
//! [`HealthBoard`] publishes the worse of their states. It holds state only; the store decides
//! every transition.

use std::fmt;
use std::sync::{Mutex, PoisonError};

use tokio::sync::watch;

use crate::metrics::StorageMetrics;

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

    /// How far from accepting commits: the worse of two files' states is the store's.
    fn severity(&self) -> u8 {
        match self {
            Self::Healthy => 0,
            Self::Recovering { .. } => 1,
            Self::Detached { .. } => 2,
            Self::Failed { .. } => 3,
        }
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

/// One database file of the store, as its health is recorded on the [`HealthBoard`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StoreFile {
    /// The chain file: blocks, their ids and the metadata.
    Chain,
    /// The transaction index file, derived from the chain.
    TransactionIndex,
}

/// The health of each of the store's files, published as the worst of them (the chain file's
/// on a tie), with the store's `healthy` gauge.
#[derive(Debug)]
pub(crate) struct HealthBoard {
    /// The chain file's state, then the transaction index file's.
    files: Mutex<[StorageHealth; 2]>,
    sender: watch::Sender<StorageHealth>,
    metrics: StorageMetrics,
}

impl HealthBoard {
    /// A board on which every file is healthy.
    pub(crate) fn new(metrics: StorageMetrics) -> Self {
        metrics.set_healthy(true);
        Self {
            files: Mutex::new([StorageHealth::Healthy, StorageHealth::Healthy]),
            sender: watch::Sender::new(StorageHealth::Healthy),
            metrics,
        }
    }

    /// Records `health` for `file` and publishes the store's health if it changed.
    pub(crate) fn publish(&self, file: StoreFile, health: StorageHealth) {
        let mut files = self.files.lock().unwrap_or_else(PoisonError::into_inner);
        files[file as usize] = health;
        let [chain, index] = &*files;
        let worst = if index.severity() > chain.severity() {
            index.clone()
        } else {
            chain.clone()
        };
        self.metrics.set_healthy(worst.is_healthy());
        self.sender.send_if_modified(|published| {
            let changed = *published != worst;
            *published = worst;
            changed
        });
    }

    /// A receiver of every change of the store's health.
    pub(crate) fn subscribe(&self) -> watch::Receiver<StorageHealth> {
        self.sender.subscribe()
    }

    /// The store's health now.
    pub(crate) fn current(&self) -> StorageHealth {
        self.sender.borrow().clone()
    }
}
