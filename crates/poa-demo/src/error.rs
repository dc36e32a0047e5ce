//! Why the demo could not run to the end.

/// A demo failure, reported on stderr with exit code 1.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DemoError {
    /// A process could not be started or did not become ready.
    #[error("cannot start {what}: {reason}")]
    Start {
        /// Which process.
        what: String,
        /// Why.
        reason: String,
    },
    /// No leader appeared, or no survivor took over in time.
    #[error("{what} did not happen within {waited_ms} ms")]
    Timeout {
        /// What was awaited.
        what: &'static str,
        /// How long the demo waited.
        waited_ms: u128,
    },
    /// Two nodes hold different blocks at one height.
    #[error("fork at height {height}: {ids}")]
    Fork {
        /// The height.
        height: u64,
        /// Every node's block id there.
        ids: String,
    },
}
