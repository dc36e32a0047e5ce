//! Catching up from peers when the shared block log no longer holds the next height (every
//! stream was trimmed past the local chain).
//!
//! Blocks from a [`BlockHistorySource`] are untrusted: they go through the same import path as
//! reconciled blocks (verify, then commit, stopping at the first refusal). Nothing here
//! produces, and a cycle that finds no source for the next height fails and waits one retry
//! period like any failed cycle, so the loop never spins on a gap.

use std::sync::Arc;

use poa_ports::{BlockHeight, BlockHistorySource, HistoryError};
use tokio::time::Instant;
use tracing::{error, info};

use super::{CycleOutcome, ProductionService, duration_millis};

/// The most blocks one cycle asks a history source for; the next cycle asks again.
pub(crate) const HISTORY_BATCH: usize = 256;

impl ProductionService {
    /// Fetches blocks the shared log no longer holds from `history` when a cycle finds the next
    /// height trimmed from every stream. Without it such a cycle fails with a clear error.
    #[must_use]
    pub fn with_block_history(mut self, history: Arc<dyn BlockHistorySource>) -> Self {
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
            error!(
                height = %next_height,
                "the shared block log no longer holds the next height and no history source is configured: add --peer"
            );
            return self.fail("history", &HistoryError::NoSource);
        };
        let started = Instant::now();
        let blocks = match history.blocks_from(next_height, HISTORY_BATCH).await {
            Ok(blocks) => blocks,
            Err(history_error) => {
                error!(height = %next_height, error = %history_error, "no history source answered for the next height");
                return self.fail("history", &history_error);
            }
        };
        if blocks.is_empty() {
            error!(
                height = %next_height,
                "no source holds the next height: neither the shared block log nor any peer"
            );
            return self.fail(
                "history",
                &format_args!("no source holds height {next_height}"),
            );
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
        let outcome = self.import_blocks(local_height, blocks).await;
        if let CycleOutcome::Failed { error, .. } = &outcome {
            error!(height = %next_height, error = %error, "refused a block fetched from a peer");
        }
        outcome
    }
}
