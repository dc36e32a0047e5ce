//! Typed errors of the in-memory log's own switches. The port's calls answer with the port's
//! `ReconciliationError`, exactly as a real adapter would.

use poa_ports::{BlockHeight, BlockId};

/// Why [`crate::MemoryBlockLog::append_backlog`] could not put a block on the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    /// The log already holds another block at this height, and never holds two.
    #[error("height {height} already holds block {stored} on the log")]
    HeightTaken {
        /// The contested height.
        height: BlockHeight,
        /// The block the log keeps there.
        stored: BlockId,
    },
}
