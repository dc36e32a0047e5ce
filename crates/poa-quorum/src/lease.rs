//! The lease's rules: Redlock validity and drift, the epoch fold, and the tallies that decide an
//! acquisition attempt and an ownership check from per-node replies.

use std::time::Duration;

use poa_ports::Epoch;

use crate::quorum::Quorum;

/// The clock drift allowance of a lease: `ttl / 100 + 2 ms`, in whole milliseconds.
pub fn drift(ttl: Duration) -> Duration {
    let ttl_millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis((ttl_millis / 100).saturating_add(2))
}

/// Redlock validity: how long a grant observed `elapsed` after the attempt started stays
/// valid, or `None` when `ttl - elapsed - drift` is not positive.
pub fn remaining_validity(ttl: Duration, drift: Duration, elapsed: Duration) -> Option<Duration> {
    ttl.checked_sub(elapsed)
        .and_then(|left| left.checked_sub(drift))
        .filter(|left| !left.is_zero())
}

/// The epoch after observing `seen`: the maximum, never lower than before.
pub fn fold_epoch(current: Option<Epoch>, seen: Epoch) -> Epoch {
    current.map_or(seen, |current| current.max(seen))
}

/// One node's answer to a promote, as the tally needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromoteReply {
    /// The node granted the lease (or already held it for this process) at this epoch.
    Granted(Epoch),
    /// Another owner holds the lease on this node.
    HeldByAnother,
    /// No usable answer: the grant may still have happened.
    Unavailable,
}

impl PromoteReply {
    /// Whether the node may now hold the lease for this process: it granted, or it gave no
    /// usable answer (a timed-out promote may still have run, or may still run). Only a
    /// refusal proves that it does not.
    pub fn may_hold_grant(self) -> bool {
        !matches!(self, Self::HeldByAnother)
    }
}

/// What one lease acquisition attempt decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcquireDecision {
    /// More replies are needed.
    Undecided,
    /// A quorum granted within the validity window; the epoch is the highest granted.
    Acquired {
        /// The highest epoch any granting node returned.
        epoch: Epoch,
        /// Highest minus lowest granted epoch (the drift an election storm left behind).
        epoch_spread: u64,
    },
    /// A quorum answered that another owner holds the lease: no retry this cycle.
    HeldByAnother,
    /// A quorum can no longer be granted in this attempt (or the grants came too late).
    Failed,
}

/// Tally of one promote fan-out.
#[derive(Debug, Clone)]
pub struct PromoteTally {
    quorum: Quorum,
    granted: Vec<Epoch>,
    held: usize,
    unavailable: usize,
}

impl PromoteTally {
    /// An empty tally.
    pub fn new(quorum: Quorum) -> Self {
        Self {
            quorum,
            granted: Vec::new(),
            held: 0,
            unavailable: 0,
        }
    }

    /// Counts one node's reply.
    pub fn record(&mut self, reply: PromoteReply) {
        match reply {
            PromoteReply::Granted(epoch) => self.granted.push(epoch),
            PromoteReply::HeldByAnother => self.held = self.held.saturating_add(1),
            PromoteReply::Unavailable => self.unavailable = self.unavailable.saturating_add(1),
        }
    }

    /// Whether any node may hold a grant of this attempt, so a failed attempt must release:
    /// a node granted, or gave no usable answer (every timeout is an unknown outcome).
    pub fn may_hold_grants(&self) -> bool {
        !self.granted.is_empty() || self.unavailable > 0
    }

    /// The decision given the lease validity left at the moment of the last reply.
    pub fn decision(&self, validity: Option<Duration>) -> AcquireDecision {
        let answered = self
            .granted
            .len()
            .saturating_add(self.held)
            .saturating_add(self.unavailable);
        if self.quorum.reached(self.granted.len()) {
            if validity.is_none() {
                return AcquireDecision::Failed;
            }
            let highest = self.granted.iter().copied().max().unwrap_or_default();
            let lowest = self.granted.iter().copied().min().unwrap_or_default();
            return AcquireDecision::Acquired {
                epoch: highest,
                epoch_spread: highest.get().saturating_sub(lowest.get()),
            };
        }
        if self.quorum.reached(self.held) {
            return AcquireDecision::HeldByAnother;
        }
        let refused = self.held.saturating_add(self.unavailable);
        if self.quorum.impossible(refused) || answered >= self.quorum.nodes() {
            return AcquireDecision::Failed;
        }
        AcquireDecision::Undecided
    }
}

/// One node's answer to an ownership check, as the tally needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerReply {
    /// The node holds this process's token.
    Owner,
    /// The lease is free or held by another token.
    NotOwner,
    /// No usable answer.
    Unavailable,
}

/// What an ownership check decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnershipDecision {
    /// More replies are needed.
    Undecided,
    /// A quorum confirmed this process's token.
    Owned,
    /// A quorum can no longer confirm it.
    NotOwned,
}

/// Tally of one ownership check fan-out.
#[derive(Debug, Clone)]
pub struct OwnershipTally {
    quorum: Quorum,
    confirmed: usize,
    unconfirmed: usize,
}

impl OwnershipTally {
    /// An empty tally.
    pub fn new(quorum: Quorum) -> Self {
        Self {
            quorum,
            confirmed: 0,
            unconfirmed: 0,
        }
    }

    /// Counts one node's reply.
    pub fn record(&mut self, reply: OwnerReply) {
        match reply {
            OwnerReply::Owner => self.confirmed = self.confirmed.saturating_add(1),
            OwnerReply::NotOwner | OwnerReply::Unavailable => {
                self.unconfirmed = self.unconfirmed.saturating_add(1);
            }
        }
    }

    /// How many nodes confirmed so far.
    pub fn confirmed(&self) -> usize {
        self.confirmed
    }

    /// The decision so far.
    pub fn decision(&self) -> OwnershipDecision {
        if self.quorum.reached(self.confirmed) {
            OwnershipDecision::Owned
        } else if self.quorum.impossible(self.unconfirmed) {
            OwnershipDecision::NotOwned
        } else {
            OwnershipDecision::Undecided
        }
    }
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests;
