//! Errors of the model crate: only an invalid configuration can fail (checking itself never
//! errors, it reports counterexamples as discoveries).

/// Why a [`crate::ModelConfig`] cannot be checked.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ModelError {
    /// Node sets are bit masks in a `u8`, producers index small arrays.
    #[error("{nodes} nodes and {producers} producers exceed the model's limits (1..=8 each)")]
    TooLarge {
        /// Configured number of Redis nodes.
        nodes: u8,
        /// Configured number of producers.
        producers: u8,
    },
    /// The quorum `majority + budget` would need more nodes than there are.
    #[error(
        "disruption budget {budget} needs more than the {nodes} nodes: use a smaller budget or more nodes"
    )]
    BudgetTooLarge {
        /// Configured disruption budget.
        budget: u8,
        /// Configured number of Redis nodes.
        nodes: u8,
    },
    /// A node must keep, and a read must ask for, at least one height.
    #[error("kept heights {kept_heights} and read window {read_window} must both be at least 1")]
    EmptyWindow {
        /// Configured heights each node keeps.
        kept_heights: u8,
        /// Configured entries per read.
        read_window: u8,
    },
    /// The start's history is written for a particular cluster.
    #[error("the {start} start needs {needs}")]
    StartNeeds {
        /// Which start.
        start: &'static str,
        /// What it needs.
        needs: &'static str,
    },
    /// The membership change cannot be planned by `poa_quorum`'s rules, or is not one the
    /// model runs.
    #[error("the membership change cannot be checked: {reason}")]
    Change {
        /// Why.
        reason: String,
    },
    /// A step of the start's history was not enabled (the model changed under it).
    #[error("step {step} of the {start} start is not enabled: {action}")]
    StartUnreachable {
        /// Which start.
        start: &'static str,
        /// The 0-based step.
        step: usize,
        /// The step, rendered.
        action: String,
    },
}
