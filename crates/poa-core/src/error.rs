//! Errors of the service's own API (configuration and the handle). Failures inside a cycle are
//! not errors of the API: they are logged, counted, and reported as a [`crate::CycleOutcome`].

/// Errors of the production service's API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    /// A configuration value is out of range.
    #[error("invalid {setting}: {reason}")]
    InvalidConfig {
        /// The setting.
        setting: &'static str,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// The service has stopped and takes no more requests.
    #[error("the production service has stopped")]
    Stopped,
}
