//! The history source of a process with no peer configured: it has nowhere to ask, and says so.
//! It never sees a block, so it serves any chain.

use async_trait::async_trait;
use poa_ports::{BlockHeight, BlockHistorySource, Chain, EverySource, HistoryError};

/// Always [`HistoryError::NoSource`]; performs no I/O.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopBlockHistory;

#[async_trait]
impl<C: Chain> BlockHistorySource<C> for NoopBlockHistory {
    async fn blocks_from(
        &self,
        _next_height: BlockHeight,
        _max: usize,
    ) -> Result<Vec<C::SealedBlock>, HistoryError> {
        Err(HistoryError::NoSource)
    }

    async fn ask_every_source(
        &self,
        _next_height: BlockHeight,
        _max: usize,
    ) -> Result<EverySource<C::SealedBlock>, HistoryError> {
        Err(HistoryError::NoSource)
    }
}
