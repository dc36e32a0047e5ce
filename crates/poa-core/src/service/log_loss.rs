//! A shared log that lost blocks this process committed: nodes emptied or restored from old
//! snapshots beyond the disruption budget, so a quorum holds nothing as high as the local head.
//!
//! The log can no longer tell who holds the longest chain, and producing on the local head
//! alone would fork from a process that committed more. So a new leader in that state asks
//! every history source (peer) for the height above its head:
//!
//! - one holds it: the lease is released and its blocks are imported like any catch-up (the
//!   next leadership asks again from the new head);
//! - every one answered that it does not: this head is the highest, and it is published to
//!   the log again (under the lease, fenced like any write) so the log reaches it before
//!   anything is produced on it;
//! - some did not answer, or none is configured: this process stands aside, says which and
//!   what to do, and asks again after [`LOG_LOSS_RECHECK`]; an operator who has checked every
//!   producer's head can vouch for this one ([`super::ServiceHandle::vouch_for_head`]).

use std::time::Duration;

use poa_ports::{BlockHeight, Chain, EverySource, HeaderView, HistoryError, SealedBlockView};
use tokio::time::Instant;
use tracing::{info, warn};

use super::history::HISTORY_BATCH;
use super::{CycleOutcome, ProductionService};
use crate::status::Role;

/// How long a process that could not confirm its head over a lost log waits before asking its
/// peers again.
pub(crate) const LOG_LOSS_RECHECK: Duration = Duration::from_secs(5);

impl<C: Chain> ProductionService<C> {
    /// The leader's answer to a log that no longer reaches `head`.
    pub(super) async fn head_above_the_log(
        &mut self,
        head: C::Header,
        log_top: Option<BlockHeight>,
    ) -> CycleOutcome {
        let Some(next_height) = head.height().next() else {
            return self.fail("log", &"the chain reached the highest representable height");
        };
        if self.head_vouched_by_operator {
            info!(head = %head.height(), "an operator vouched for the local head: republishing it");
            return self.republish_head(&head).await;
        }
        let answer = match self.history.clone() {
            Some(history) => history.ask_every_source(next_height, HISTORY_BATCH).await,
            None => Err(HistoryError::NoSource),
        };
        let log_reach = log_top.map_or_else(|| "nothing".to_owned(), |top| format!("height {top}"));
        let unconfirmed = match answer {
            Ok(EverySource::Blocks(blocks)) => {
                info!(
                    head = %head.height(),
                    count = blocks.len(),
                    "a peer holds blocks above the local head that the shared log lost: importing them first"
                );
                if let Err(error) = self.ports.reconciliation.release().await {
                    warn!(error = %error, "lease release before the import failed: it will expire on its own");
                }
                return self.import_blocks(head.height(), blocks).await;
            }
            Ok(EverySource::NoneHolds) => return self.republish_head(&head).await,
            Ok(EverySource::Unanswered(peers)) => format!(
                "{} did not answer whether they hold height {next_height}",
                peers.join(", ")
            ),
            Err(HistoryError::NoSource) => {
                "no peer is configured to confirm that no other producer holds more".to_owned()
            }
            Err(error) => error.to_string(),
        };
        self.standing_down_until = Instant::now().checked_add(LOG_LOSS_RECHECK);
        let reason = format!(
            "the shared log lost blocks this process committed (it holds {log_reach}, the local head is at {}), and {unconfirmed}: producing on this head alone could fork from a producer that committed more. Waiting for every peer to answer; an operator who has checked every producer's head can vouch for this one",
            head.height()
        );
        self.stand_aside("log", &reason).await
    }

    /// Publishes the local head to the log again, under the lease this cycle holds.
    async fn republish_head(&mut self, head: &C::Header) -> CycleOutcome {
        let block = match self.ports.importer.block_at(head.height()).await {
            Ok(Some(block)) => block,
            Ok(None) => {
                let missing = format!(
                    "the local chain holds no block at its head {}",
                    head.height()
                );
                return self.stand_aside("head", &missing).await;
            }
            Err(error) => return self.stand_aside("head", &error).await,
        };
        if let Err(error) = self
            .ports
            .reconciliation
            .publish_produced_block(&block)
            .await
        {
            return self.fail_and_release("publish", &error).await;
        }
        self.head_vouched_by_operator = false;
        self.metrics.heads_republished.inc();
        info!(
            height = %head.height(),
            id = %block.id(),
            "republished the local head to the shared log, which had lost it"
        );
        self.set_role(Role::Leader);
        CycleOutcome::Idle
    }
}
