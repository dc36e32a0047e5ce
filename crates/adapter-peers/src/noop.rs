//! The history source of a process with no peer configured: it has nowhere to ask, and says so.

use async_trait::async_trait;
use poa_ports::{
    BlockHeight, BlockHistorySource, EverySource, HistoryError, ReferenceChain, SealedBlock,
};

/// Always [`HistoryError::NoSource`]; performs no I/O.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopBlockHistory;

#[async_trait]
impl BlockHistorySource<ReferenceChain> for NoopBlockHistory {
    async fn blocks_from(
        &self,
        _next_height: BlockHeight,
        _max: usize,
    ) -> Result<Vec<SealedBlock>, HistoryError> {
        Err(HistoryError::NoSource)
    }

    async fn ask_every_source(
        &self,
        _next_height: BlockHeight,
        _max: usize,
    ) -> Result<EverySource<SealedBlock>, HistoryError> {
        Err(HistoryError::NoSource)
    }
}
