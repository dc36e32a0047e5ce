//! The state behind the shared `Mutex`: the lease with its owner and fencing epoch, the blocks
//! by height, and what each producer handle believes (its held epoch, its epoch floor, the
//! faults armed on it). Every rule the fake keeps is a method here, called with the lock held
//! and the current time passed in, so a call of the port is one atomic step of the log.

use std::collections::BTreeMap;
use std::mem::take;
use std::time::Duration;

use poa_ports::{BlockHeight, Chain, ChainHead, Epoch, ReconciliationError, SealedBlockView};
use tokio::time::Instant;

use crate::log::ProducerId;

/// The quorum size named in the errors the fake returns: its one log stands for a quorum.
pub(crate) const QUORUM: usize = 1;

/// What the refusals of a write say, in the words of the real scripts.
const NOT_THE_OWNER: &str = "the lease is lost or held by another producer";
const STALE_EPOCH: &str = "the epoch is stale: a newer leadership holds the lease";

/// The lease as the log holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LeaseHold {
    pub(crate) owner: ProducerId,
    pub(crate) epoch: Epoch,
    /// When the lease lapses on tokio's clock; `None` when the log has no TTL.
    pub(crate) expires_at: Option<Instant>,
}

/// A block on the log and the epoch of the leadership that wrote it.
#[derive(Clone)]
pub(crate) struct LoggedBlock<C: Chain> {
    pub(crate) block: C::SealedBlock,
    pub(crate) epoch: Epoch,
}

/// Faults a test armed on one producer; each is used up by the call it affects.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Faults {
    pub(crate) time_out_next_call: bool,
    pub(crate) refuse_next_publish: bool,
    pub(crate) lose_next_publish_reply: bool,
    pub(crate) lose_lease_before_next_publish: bool,
}

/// What one producer process believes, as the real adapter keeps it in its lease state.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ProducerState {
    /// The epoch of the leadership this producer believes it holds.
    pub(crate) held: Option<Epoch>,
    /// The highest epoch any earlier leadership of this producer held.
    pub(crate) floor: Epoch,
    /// The next leader scan checks that the log still reaches the local head: the first scan
    /// of every leadership, and the first after a failed publish.
    pub(crate) full_read_pending: bool,
    pub(crate) faults: Faults,
}

impl ProducerState {
    /// The leadership ends: its epoch joins the floor, so the next one is higher.
    fn stop_leading(&mut self) {
        if let Some(held) = self.held.take() {
            self.floor = self.floor.max(held);
        }
    }
}

/// The role a producer's `leader_state` settled on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Leader,
    Follower,
}

/// Everything behind the log's `Mutex`.
pub(crate) struct LogState<C: Chain> {
    pub(crate) lease: Option<LeaseHold>,
    /// The log's fencing epoch: the highest ever granted, never lowered.
    pub(crate) epoch: Epoch,
    pub(crate) blocks: BTreeMap<BlockHeight, LoggedBlock<C>>,
    pub(crate) lease_ttl: Option<Duration>,
    pub(crate) producers: BTreeMap<ProducerId, ProducerState>,
    next_producer: u64,
}

// Not derived: a derive would ask the chain's marker type for `Default` too.
impl<C: Chain> Default for LogState<C> {
    fn default() -> Self {
        Self {
            lease: None,
            epoch: Epoch::default(),
            blocks: BTreeMap::new(),
            lease_ttl: None,
            producers: BTreeMap::new(),
            next_producer: 0,
        }
    }
}

impl<C: Chain> LogState<C> {
    /// Registers a new producer process.
    pub(crate) fn add_producer(&mut self) -> ProducerId {
        let id = ProducerId(self.next_producer);
        self.next_producer = self.next_producer.saturating_add(1);
        self.producers.insert(id, ProducerState::default());
        id
    }

    /// The producer's state; a handle always has one, from `add_producer` on.
    pub(crate) fn producer(&mut self, id: ProducerId) -> &mut ProducerState {
        self.producers.entry(id).or_default()
    }

    /// The lease unless it has lapsed by `now` (then it is gone from the log).
    pub(crate) fn live_lease(&mut self, now: Instant) -> Option<LeaseHold> {
        if self
            .lease
            .is_some_and(|lease| lease.expires_at.is_some_and(|at| at <= now))
        {
            self.lease = None;
        }
        self.lease
    }

    /// When a lease granted or renewed at `now` lapses; a TTL too long to represent never does.
    fn expiry_from(&self, now: Instant) -> Option<Instant> {
        self.lease_ttl.and_then(|ttl| now.checked_add(ttl))
    }

    /// Renews a held lease, or grants a new leadership with an epoch above the log's and the
    /// producer's floor; `Follower` while another producer holds a live lease.
    pub(crate) fn settle_role(&mut self, id: ProducerId, now: Instant) -> Role {
        let live = self.live_lease(now);
        let expires_at = self.expiry_from(now);
        let producer = self.producer(id);
        match live {
            Some(lease) if lease.owner == id && producer.held == Some(lease.epoch) => {
                self.lease = Some(LeaseHold {
                    expires_at,
                    ..lease
                });
                Role::Leader
            }
            Some(lease) if lease.owner != id => {
                producer.stop_leading();
                Role::Follower
            }
            // Free, lapsed, or this producer's own key from a leadership whose release never
            // arrived: a new leadership, above every epoch the producer used.
            _ => {
                producer.stop_leading();
                let floor = producer.floor;
                let epoch = Epoch::new(self.epoch.max(floor).get().saturating_add(1));
                let producer = self.producer(id);
                producer.held = Some(epoch);
                producer.full_read_pending = true;
                self.epoch = epoch;
                self.lease = Some(LeaseHold {
                    owner: id,
                    epoch,
                    expires_at,
                });
                Role::Leader
            }
        }
    }

    /// The leader's reconciliation: on its first scan (and after a failed publish) the log
    /// must still reach the local head; then the committed blocks above the head.
    pub(crate) fn reconcile_as_leader(
        &mut self,
        id: ProducerId,
        head: ChainHead,
    ) -> Result<Vec<C::SealedBlock>, ReconciliationError> {
        if self.producer(id).full_read_pending && head.height != BlockHeight::GENESIS {
            let log_top = self.top();
            if log_top.is_none_or(|top| top < head.height) {
                return Err(ReconciliationError::LogBehindHead {
                    head: head.height,
                    log_top,
                });
            }
        }
        let blocks = self.blocks_above(head)?;
        self.producer(id).full_read_pending = false;
        Ok(blocks)
    }

    /// The highest height the log holds.
    pub(crate) fn top(&self) -> Option<BlockHeight> {
        self.blocks.last_key_value().map(|(height, _)| *height)
    }

    /// The blocks above `head` that extend it, one after another, as reconciliation hands
    /// them back: a block at the next height that does not extend the head is a divergence,
    /// a missing next height with blocks above it is a gap, and anything else that breaks the
    /// chain further up ends the batch.
    pub(crate) fn blocks_above(
        &self,
        head: ChainHead,
    ) -> Result<Vec<C::SealedBlock>, ReconciliationError> {
        let mut blocks: Vec<C::SealedBlock> = Vec::new();
        let mut parent = head.id;
        let mut next = head.next_height();
        while let Some(height) = next {
            match self.blocks.get(&height) {
                Some(logged) if logged.block.parent_id() == parent => {
                    parent = logged.block.id();
                    blocks.push(logged.block.clone());
                    next = height.next();
                }
                Some(logged) if blocks.is_empty() => {
                    return Err(ReconciliationError::Diverged {
                        height,
                        block: logged.block.id(),
                    });
                }
                None if blocks.is_empty() && self.blocks.range(height..).next().is_some() => {
                    return Err(ReconciliationError::HistoryGap {
                        next_height: height,
                    });
                }
                Some(_) | None => break,
            }
        }
        Ok(blocks)
    }

    /// `write_block`'s checks in order: the owner, a stale epoch, the height already held
    /// (the same block counts as stored), then the append, which renews the lease.
    pub(crate) fn write(
        &mut self,
        id: ProducerId,
        epoch: Epoch,
        block: &C::SealedBlock,
        now: Instant,
    ) -> Result<(), ReconciliationError> {
        let Some(lease) = self.live_lease(now).filter(|lease| lease.owner == id) else {
            return Err(ReconciliationError::Fenced {
                reason: NOT_THE_OWNER.to_owned(),
            });
        };
        if epoch < self.epoch {
            return Err(ReconciliationError::Fenced {
                reason: STALE_EPOCH.to_owned(),
            });
        }
        let height = block.height();
        match self.blocks.get(&height) {
            Some(stored) if stored.block.id() == block.id() => {}
            Some(_) => return Err(ReconciliationError::HeightTaken { height }),
            None => {
                self.blocks.insert(
                    height,
                    LoggedBlock {
                        block: block.clone(),
                        epoch,
                    },
                );
            }
        }
        self.lease = Some(LeaseHold {
            expires_at: self.expiry_from(now),
            ..lease
        });
        Ok(())
    }

    /// Publish, as the real adapter does it for producer `id`: the genesis exemption and the
    /// epoch check first (no I/O), then the armed faults, then the fenced write. A failed
    /// publish makes the next leader scan a full one.
    pub(crate) fn publish(
        &mut self,
        id: ProducerId,
        block: &C::SealedBlock,
        now: Instant,
    ) -> Result<(), ReconciliationError> {
        let producer = self.producer(id);
        let Some(epoch) = producer.held else {
            if block.height() == BlockHeight::GENESIS {
                return Ok(());
            }
            return Err(ReconciliationError::NoEpoch);
        };
        let faults = &mut producer.faults;
        // `||` leaves a refusal armed when a timeout uses up this publish.
        let result = if take(&mut faults.time_out_next_call)
            || take(&mut faults.refuse_next_publish)
        {
            Err(no_quorum("publish"))
        } else {
            if take(&mut faults.lose_lease_before_next_publish)
                && self.lease.is_some_and(|lease| lease.owner == id)
            {
                self.lease = None;
            }
            let written = self.write(id, epoch, block, now);
            let faults = &mut self.producer(id).faults;
            match written {
                Ok(()) if take(&mut faults.lose_next_publish_reply) => Err(no_quorum("publish")),
                written => written,
            }
        };
        if result.is_err() {
            self.producer(id).full_read_pending = true;
        }
        result
    }

    /// Gives up producer `id`'s lease; with `arrives == false` only the producer forgets it
    /// (a release that never reached the log), and the lease stays until it lapses.
    pub(crate) fn release(&mut self, id: ProducerId, arrives: bool) {
        self.producer(id).stop_leading();
        if arrives && self.lease.is_some_and(|lease| lease.owner == id) {
            self.lease = None;
        }
    }
}

/// What a call that no node answered in time returns: nothing is known to be on a quorum.
pub(crate) fn no_quorum(operation: &'static str) -> ReconciliationError {
    ReconciliationError::NoQuorum {
        operation,
        acked: 0,
        needed: QUORUM,
    }
}
