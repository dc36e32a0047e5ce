//! [`MemoryReconciliation`]: the `BlockReconciliationPort` of one simulated producer process
//! on a [`MemoryBlockLog`], and the fault switches a test arms on that process. Each port call
//! is one step of the shared state under its lock; this file only maps the steps to the port's
//! answers.

use std::mem::take;
use std::sync::Arc;

use async_trait::async_trait;
use poa_ports::{
    BlockReconciliationPort, Chain, ChainHead, LeaderState, LeaseStatus, ReconciliationError,
};
use tokio::time::Instant;

use crate::log::{MemoryBlockLog, ProducerId};
use crate::state::{Faults, Role, no_quorum};

/// One producer process's port on a shared [`MemoryBlockLog`]. Clones are the same process
/// (keep one to flip switches while the service under test owns another); dropping the last
/// clone releases the lease, as dropping the real adapter does.
pub struct MemoryReconciliation<C: Chain> {
    process: Arc<Process<C>>,
}

// Not derived: a derive would ask the chain's marker type for `Clone` and `Debug` too.
impl<C: Chain> Clone for MemoryReconciliation<C> {
    fn clone(&self) -> Self {
        Self {
            process: Arc::clone(&self.process),
        }
    }
}

impl<C: Chain> std::fmt::Debug for MemoryReconciliation<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryReconciliation")
            .field("id", &self.process.id)
            .field("log", &self.process.log)
            .finish()
    }
}

/// What the clones share: the log and who this process is. Releases on drop.
struct Process<C: Chain> {
    log: MemoryBlockLog<C>,
    id: ProducerId,
}

impl<C: Chain> Drop for Process<C> {
    fn drop(&mut self) {
        self.log.lock().release(self.id, true);
    }
}

impl<C: Chain> MemoryReconciliation<C> {
    pub(crate) fn new(log: MemoryBlockLog<C>, id: ProducerId) -> Self {
        Self {
            process: Arc::new(Process { log, id }),
        }
    }

    /// The lease owner this process is on the log.
    pub fn id(&self) -> ProducerId {
        self.process.id
    }

    /// The log this process shares.
    pub fn log(&self) -> &MemoryBlockLog<C> {
        &self.process.log
    }

    /// The next publish of this process finds its lease gone (it lapsed between the cycle's
    /// renewal and the write, as for a leader frozen past its TTL) and is fenced: nothing is
    /// written. The process competes again at its next `leader_state`, with a higher epoch.
    pub fn lose_lease_before_next_publish(&self) {
        self.arm(|faults| faults.lose_lease_before_next_publish = true);
    }

    /// The next publish of this process fails as when too few nodes store the block:
    /// `NoQuorum`, and nothing is written.
    pub fn refuse_next_publish(&self) {
        self.arm(|faults| faults.refuse_next_publish = true);
    }

    /// The next publish of this process that stores its block loses the reply: the block is
    /// on the log, yet the caller gets `NoQuorum`, an unknown outcome. A producer must not
    /// commit it, and finds it again in the log at its next leadership.
    pub fn lose_next_publish_reply(&self) {
        self.arm(|faults| faults.lose_next_publish_reply = true);
    }

    /// The next call of this process (`leader_state`, `follower_state`, `release`, or a
    /// publish past its local epoch check) is answered by no node in time: reads and publishes
    /// return `NoQuorum` and change nothing, a leader's renewal is lost with it (the process
    /// no longer leads; the lease stays on the log), and a release returns `Ok` locally but
    /// never arrives, so the lease stays until it lapses.
    pub fn time_out_next_call(&self) {
        self.arm(|faults| faults.time_out_next_call = true);
    }

    fn arm(&self, set: impl FnOnce(&mut Faults)) {
        set(&mut self.process.log.lock().producer(self.id()).faults);
    }

    /// Uses up the armed timeout, if any: the call it affects ends here.
    fn times_out(&self) -> bool {
        take(
            &mut self
                .process
                .log
                .lock()
                .producer(self.id())
                .faults
                .time_out_next_call,
        )
    }
}

#[async_trait]
impl<C: Chain> BlockReconciliationPort<C> for MemoryReconciliation<C> {
    async fn leader_state(
        &self,
        head: ChainHead,
    ) -> Result<LeaderState<C::SealedBlock>, ReconciliationError> {
        let id = self.id();
        let mut state = self.process.log.lock();
        if take(&mut state.producer(id).faults.time_out_next_call) {
            // The renewal did not arrive either: this process no longer leads.
            state.release(id, false);
            return Err(no_quorum("reconcile_read"));
        }
        match state.settle_role(id, Instant::now()) {
            Role::Leader => {
                let blocks = state.reconcile_as_leader(id, head)?;
                Ok(if blocks.is_empty() {
                    LeaderState::ReconciledLeader
                } else {
                    LeaderState::UnreconciledBlocks(blocks)
                })
            }
            Role::Follower => Ok(follower_answer(state.blocks_above(head)?)),
        }
    }

    async fn follower_state(
        &self,
        head: ChainHead,
    ) -> Result<LeaderState<C::SealedBlock>, ReconciliationError> {
        if self.times_out() {
            return Err(no_quorum("reconcile_read"));
        }
        let blocks = self.process.log.lock().blocks_above(head)?;
        Ok(follower_answer(blocks))
    }

    async fn release(&self) -> Result<(), ReconciliationError> {
        let arrives = !self.times_out();
        self.process.log.lock().release(self.id(), arrives);
        Ok(())
    }

    async fn publish_produced_block(
        &self,
        block: &C::SealedBlock,
    ) -> Result<(), ReconciliationError> {
        self.process
            .log
            .lock()
            .publish(self.id(), block, Instant::now())
    }

    /// The held epoch while this process leads; `valid_for` only when the log has a TTL (the
    /// lease has no end otherwise); no nodes, and nothing waited for.
    fn lease_status(&self) -> LeaseStatus {
        let id = self.id();
        let now = Instant::now();
        let mut state = self.process.log.lock();
        let held = state.producer(id).held;
        let lease = state.live_lease(now);
        LeaseStatus {
            epoch: held,
            valid_for: lease
                .filter(|lease| lease.owner == id && Some(lease.epoch) == held)
                .and_then(|lease| lease.expires_at)
                .map(|at| at.saturating_duration_since(now)),
            nodes: Vec::new(),
            waiting_for: None,
            membership: None,
        }
    }
}

/// A follower's answer: the blocks it lacks, or nothing to do.
fn follower_answer<B>(blocks: Vec<B>) -> LeaderState<B> {
    if blocks.is_empty() {
        LeaderState::ReconciledFollower
    } else {
        LeaderState::UnreconciledBlocks(blocks)
    }
}
