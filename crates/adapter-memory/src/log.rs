//! [`MemoryBlockLog`]: the shared quorum log that several producer handles use, and the
//! switches a test flips on the log as a whole (the lease lapses, blocks published by a
//! producer the test does not run). It hands out the handles and lets a test read what the
//! log holds; the port itself is `MemoryReconciliation`.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use poa_ports::{BlockHeight, Chain, Epoch, SealedBlockView};
use tokio::time::Instant;

use crate::error::AppendError;
use crate::reconciliation::MemoryReconciliation;
use crate::state::{LogState, LoggedBlock};

/// One producer process on a [`MemoryBlockLog`]: the owner the lease names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProducerId(pub(crate) u64);

impl fmt::Display for ProducerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "producer-{}", self.0)
    }
}

/// The shared block log and its lease, in memory. Clones share the same log; every producer
/// handle from [`Self::producer`] competes for the one lease and writes to the one log.
pub struct MemoryBlockLog<C: Chain> {
    state: Arc<Mutex<LogState<C>>>,
}

// Not derived: a derive would ask the chain's marker type for `Clone` and `Default` too.
impl<C: Chain> Clone for MemoryBlockLog<C> {
    fn clone(&self) -> Self {
        Self {
            state: Arc::clone(&self.state),
        }
    }
}

impl<C: Chain> Default for MemoryBlockLog<C> {
    fn default() -> Self {
        Self {
            state: Arc::new(Mutex::new(LogState::default())),
        }
    }
}

impl<C: Chain> fmt::Debug for MemoryBlockLog<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("MemoryBlockLog")
            .field("epoch", &state.epoch)
            .field("top", &state.top())
            .field("lease", &state.lease)
            .finish_non_exhaustive()
    }
}

impl<C: Chain> MemoryBlockLog<C> {
    /// An empty log whose lease never lapses on its own: it is held until released, dropped,
    /// or taken away with [`Self::expire_lease`].
    pub fn new() -> Self {
        Self::default()
    }

    /// The same log with a lease that lapses `ttl` after its last grant, renewal or write, on
    /// tokio's clock: with paused time (`#[tokio::test(start_paused = true)]`) it lapses when
    /// the test lets that much time pass, never by waiting.
    #[must_use]
    pub fn with_lease_ttl(self, ttl: Duration) -> Self {
        self.lock().lease_ttl = Some(ttl);
        self
    }

    /// A new producer process on this log: a port with its own lease owner, not leading yet.
    pub fn producer(&self) -> MemoryReconciliation<C> {
        let id = self.lock().add_producer();
        MemoryReconciliation::new(self.clone(), id)
    }

    /// Every block on the log, in height order.
    pub fn blocks(&self) -> Vec<C::SealedBlock> {
        self.lock()
            .blocks
            .values()
            .map(|logged| logged.block.clone())
            .collect()
    }

    /// The block the log holds at `height`, if any.
    pub fn block_at(&self, height: BlockHeight) -> Option<C::SealedBlock> {
        self.lock()
            .blocks
            .get(&height)
            .map(|logged| logged.block.clone())
    }

    /// The highest height the log holds.
    pub fn top(&self) -> Option<BlockHeight> {
        self.lock().top()
    }

    /// The log's fencing epoch: the epoch of the latest leadership, raised by every new one.
    pub fn epoch(&self) -> Epoch {
        self.lock().epoch
    }

    /// Who holds the lease now, if anyone (a lapsed lease is nobody's).
    pub fn lease_holder(&self) -> Option<ProducerId> {
        self.lock()
            .live_lease(Instant::now())
            .map(|lease| lease.owner)
    }

    /// The lease lapses now, whoever holds it, as if its holder had stopped renewing it for a
    /// TTL (frozen, cut off, killed). The holder still believes it leads until its next
    /// `leader_state`; its publishes are fenced from now on.
    pub fn expire_lease(&self) {
        self.lock().lease = None;
    }

    /// Puts `blocks` on the log as a producer outside the test would have: it led (the log's
    /// epoch rises once, so a leader's next publish is fenced), published them and stopped
    /// (the lease is free). No handle has imported them: a follower's next `leader_state`, and
    /// a new leadership's first, hands back those that extend its head. Also the way to start
    /// a test from a chain that exists before it.
    ///
    /// # Errors
    ///
    /// [`AppendError::HeightTaken`] when the log holds another block at one of the heights;
    /// the blocks before it were appended.
    pub fn append_backlog(
        &self,
        blocks: impl IntoIterator<Item = C::SealedBlock>,
    ) -> Result<(), AppendError> {
        let mut state = self.lock();
        let epoch = Epoch::new(state.epoch.get().saturating_add(1));
        state.epoch = epoch;
        state.lease = None;
        for block in blocks {
            let height = block.height();
            match state.blocks.get(&height) {
                Some(stored) if stored.block.id() == block.id() => {}
                Some(stored) => {
                    return Err(AppendError::HeightTaken {
                        height,
                        stored: stored.block.id(),
                    });
                }
                None => {
                    state.blocks.insert(height, LoggedBlock { block, epoch });
                }
            }
        }
        Ok(())
    }

    /// The epoch of the leadership that wrote the block at `height`, if the log holds one.
    pub fn epoch_at(&self, height: BlockHeight) -> Option<Epoch> {
        self.lock().blocks.get(&height).map(|logged| logged.epoch)
    }

    /// The state. Only this crate's methods hold the lock and none of them panics, so even a
    /// poisoned lock (a test thread that panicked elsewhere) guards whole state.
    pub(crate) fn lock(&self) -> MutexGuard<'_, LogState<C>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
