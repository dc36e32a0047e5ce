//! The cheap check of a reconciled leader or a follower: does any of a quorum of answers hold a
//! height at or above the next one?

use crate::quorum::Quorum;

/// What the cheap "latest height on a quorum" check decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatestDecision {
    /// More replies are needed.
    Undecided,
    /// A quorum answered and none of them holds anything at or above the next height.
    InSync,
    /// A quorum answered and at least one holds a height at or above the next height.
    Backlog,
    /// A quorum of replies can no longer be collected.
    NoQuorum,
}

/// Tally of one `read_latest` fan-out against the next height.
#[derive(Debug, Clone)]
pub struct LatestTally {
    quorum: Quorum,
    in_sync: usize,
    backlog: usize,
    failed: usize,
}

impl LatestTally {
    /// An empty tally.
    pub fn new(quorum: Quorum) -> Self {
        Self {
            quorum,
            in_sync: 0,
            backlog: 0,
            failed: 0,
        }
    }

    /// Records one node's answer: `Some(at_or_above_next)` or `None` for a failed read.
    pub fn record(&mut self, has_backlog: Option<bool>) {
        let slot = match has_backlog {
            Some(true) => &mut self.backlog,
            Some(false) => &mut self.in_sync,
            None => &mut self.failed,
        };
        *slot = slot.saturating_add(1);
    }

    /// How many nodes answered.
    pub fn answered(&self) -> usize {
        self.in_sync.saturating_add(self.backlog)
    }

    /// The decision so far.
    pub fn decision(&self) -> LatestDecision {
        if self.backlog > 0 && self.quorum.reached(self.answered()) {
            LatestDecision::Backlog
        } else if self.quorum.reached(self.in_sync) {
            LatestDecision::InSync
        } else if self.quorum.impossible(self.failed) {
            LatestDecision::NoQuorum
        } else {
            LatestDecision::Undecided
        }
    }
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests;
