//! Catching up from peers when the shared block log no longer holds the next height (every
//! stream was trimmed past the local chain).
//!
//! Blocks from a [`BlockHistorySource`] are untrusted: they go through the same import path as
//! reconciled blocks (verify, then commit, stopping at the first refusal). Nothing here
//! produces, and the lease is released before the catch-up: a far-behind process follows until
//! it is current. A cycle that finds no source for the next height fails and waits one retry
//! period like any failed cycle, so the loop never spins on a gap.

use std::sync::Arc;

use poa_ports::{BlockHeight, BlockHistorySource, Chain, HistoryError};
use tokio::time::Instant;
use tracing::info;

use super::{CycleOutcome, ProductionService, duration_millis};

/// The most blocks one cycle asks a history source for; the next cycle asks again.
pub(crate) const HISTORY_BATCH: usize = 256;

impl<C: Chain> ProductionService<C> {
    /// Fetches blocks the shared log no longer holds from `history` when a cycle finds the next
    /// height trimmed from every stream. Without it such a cycle fails with a clear error.
    #[must_use]
    pub fn with_block_history(mut self, history: Arc<dyn BlockHistorySource<C>>) -> Self {
        self.history = Some(history);
        self
    }

    /// Fetches the blocks from `next_height` from the history source and imports them like
    /// any reconciled block.
    pub(super) async fn catch_up_from_history(
        &mut self,
        local_height: BlockHeight,
        next_height: BlockHeight,
    ) -> CycleOutcome {
        self.metrics.history_gaps.inc();
        let Some(history) = self.history.clone() else {
            return self.stand_aside("history", &HistoryError::NoSource).await;
        };
        let started = Instant::now();
        let blocks = match history.blocks_from(next_height, HISTORY_BATCH).await {
            Ok(blocks) => blocks,
            Err(history_error) => return self.stand_aside("history", &history_error).await,
        };
        if blocks.is_empty() {
            let reason = format!("no source holds height {next_height}");
            return self.stand_aside("history", &reason).await;
        }
        let fetched = blocks.len();
        self.metrics
            .blocks_fetched_from_peers
            .inc_by(u64::try_from(fetched).unwrap_or(u64::MAX));
        info!(
            height = %next_height,
            count = fetched,
            elapsed_ms = duration_millis(started.elapsed()),
            "fetched blocks trimmed from the shared block log from a peer"
        );
        self.import_blocks(local_height, blocks).await
    }
}
