//! Errors of the model crate: only an invalid configuration can fail (checking itself never errors,
//! it reports counterexamples as discoveries).

/// Why a [`crate::ModelConfig`] cannot be checked.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ModelError {
    /// The quorum cannot be met or two quorums would not overlap.
    #[error("quorum {quorum} is not a majority of {nodes} nodes")]
    QuorumNotMajority {
        /// Configured quorum.
        quorum: u8,
        /// Configured number of Redis nodes.
        nodes: u8,
    },
    /// Node sets are bit masks in a `u8`, producers index small arrays.
    #[error("{nodes} nodes and {producers} producers exceed the model's limits (1..=8 each)")]
    TooLarge {
        /// Configured number of Redis nodes.
        nodes: u8,
        /// Configured number of producers.
        producers: u8,
    },
}
