//! The tally of a write fan-out (a publish, or a repair): which replies count toward the quorum
//! and when the outcome is decided.

use crate::quorum::Quorum;

/// One node's answer to `write_block`, as the tally needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteReply {
    /// The block was appended.
    Written,
    /// This very block was already stored at this height: counts toward the quorum.
    AlreadyStored,
    /// The node refuses the height: another block holds it, or it is below the heights the
    /// node keeps.
    HeightRefused,
    /// The lease is not this writer's on the node, or its epoch is stale.
    Fenced,
    /// The node refuses this writer the command (authentication, ACL): nothing was written.
    Denied,
    /// No usable answer: the write may still land.
    Failed,
}

/// What a publish (or repair) fan-out decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteDecision {
    /// More replies are needed.
    Undecided,
    /// A quorum holds the block (written now, already stored, or held before a repair).
    Stored,
    /// A node fenced the write: the lease is lost or the epoch is stale.
    Fenced,
    /// A quorum can no longer be reached.
    Impossible,
}

/// Counts of a write fan-out, for errors and logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteCounts {
    /// Nodes that hold the block (including nodes known to hold it before the fan-out).
    pub stored: usize,
    /// Nodes that refused the height.
    pub height_refused: usize,
    /// Nodes that fenced the write.
    pub fenced: usize,
    /// Nodes that refused this writer the command (authentication, ACL).
    pub denied: usize,
    /// Nodes that failed or timed out (outcome unknown).
    pub failed: usize,
}

/// Tally of one write fan-out: written and already-stored count toward the quorum; a publish
/// fails early once more than `targets - needed` nodes failed.
#[derive(Debug, Clone)]
pub struct WriteTally {
    quorum: Quorum,
    targets: usize,
    abort_on_fence: bool,
    answered: usize,
    counts: WriteCounts,
}

impl WriteTally {
    /// A publish: every node is a target, nothing is stored yet; a fenced node is one failure
    /// among others (a zombie's write may still be refused by a quorum).
    pub fn publish(quorum: Quorum) -> Self {
        Self {
            quorum,
            targets: quorum.nodes(),
            abort_on_fence: false,
            answered: 0,
            counts: WriteCounts::default(),
        }
    }

    /// A repair: `pre_existing` nodes hold the block already, `targets` nodes are written; the
    /// first fenced node aborts the repair (the lease was lost).
    pub fn repair(quorum: Quorum, pre_existing: usize, targets: usize) -> Self {
        Self {
            quorum,
            targets,
            abort_on_fence: true,
            answered: 0,
            counts: WriteCounts {
                stored: pre_existing,
                ..WriteCounts::default()
            },
        }
    }

    /// Counts one node's reply.
    pub fn record(&mut self, reply: WriteReply) {
        self.answered = self.answered.saturating_add(1);
        let counts = &mut self.counts;
        let slot = match reply {
            WriteReply::Written | WriteReply::AlreadyStored => &mut counts.stored,
            WriteReply::HeightRefused => &mut counts.height_refused,
            WriteReply::Fenced => &mut counts.fenced,
            WriteReply::Denied => &mut counts.denied,
            WriteReply::Failed => &mut counts.failed,
        };
        *slot = slot.saturating_add(1);
    }

    /// The counts so far.
    pub fn counts(&self) -> WriteCounts {
        self.counts
    }

    /// The decision so far.
    pub fn decision(&self) -> WriteDecision {
        let counts = self.counts;
        if self.quorum.reached(counts.stored) {
            return WriteDecision::Stored;
        }
        if self.abort_on_fence && counts.fenced > 0 {
            return WriteDecision::Fenced;
        }
        let reachable = counts
            .stored
            .saturating_add(self.targets.saturating_sub(self.answered));
        if !self.quorum.reached(reachable) {
            return if counts.fenced > 0 {
                WriteDecision::Fenced
            } else {
                WriteDecision::Impossible
            };
        }
        WriteDecision::Undecided
    }
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests;
