//! A leader that cannot extend the chain hands the lease over.
//!
//! A leader whose publish or repair at the next height does not reach a quorum keeps trying,
//! and keeps the lease while it can renew it: its renewals need only a quorum of lease keys,
//! which a node that refuses its writes (garbage at the height) or answers them too late (a
//! slow link) still grants. Another process, whose links reach a quorum that takes the block,
//! would extend the chain, but it cannot take a lease that is renewed. So once such failures
//! have gone on for the hand-over period with nothing committed, the leader releases and does
//! not compete for the same period; if no other process does better, it leads again after it.
//!
//! Failures that every process would meet alike do not count: a quorum that refused the height
//! (it holds another block there), a height blocked by entries that fail verification, a
//! membership mismatch. Those keep the lease, so the fleet does not take turns at the same
//! refusal.

use poa_ports::Chain;
use tokio::time::Instant;
use tracing::warn;

use super::ProductionService;

/// What a failed leading attempt came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Handover {
    /// The failures lasted the hand-over period: the lease was released by the step-down.
    HandedOver,
    /// Still within the period: the lease is as the caller left it.
    NotDue,
}

impl<C: Chain> ProductionService<C> {
    /// Records that this leader's attempt at the next height failed in a way another process
    /// might not meet (a publish or a repair short of a quorum), and hands the lease over once
    /// such failures have lasted the hand-over period since the last block this process
    /// committed. A caller that would release the lease anyway releases only on
    /// [`Handover::NotDue`]: the hand-over has released it already.
    pub(super) async fn leading_attempt_failed(&mut self) -> Handover {
        let Some(period) = self.config.handover_after() else {
            return Handover::NotDue;
        };
        let now = Instant::now();
        let since = *self.stuck_since.get_or_insert(now);
        let stuck_for = now.saturating_duration_since(since);
        if stuck_for < period {
            return Handover::NotDue;
        }
        warn!(
            stuck_ms = super::duration_millis(stuck_for),
            "leading without extending the chain: handing the lease over to a process that may reach a quorum"
        );
        self.metrics.handovers.inc();
        self.stuck_since = None;
        self.step_down(period).await;
        Handover::HandedOver
    }

    /// The chain advanced, or another process leads: a later failure starts a new count.
    pub(super) fn chain_moved_on(&mut self) {
        self.stuck_since = None;
    }
}
