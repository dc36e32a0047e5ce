//! Errors of the service's own API (configuration and the handle). Failures inside a cycle are
//! not errors of the API: they are logged, counted, and reported as a [`crate::CycleOutcome`].

/// Errors of the production service's API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    /// A duration of the configuration is zero.
    #[error("{setting} must be greater than zero")]
    ZeroDuration {
        /// The setting.
        setting: ServiceSetting,
    },
    /// The service has stopped and takes no more requests.
    #[error("the production service has stopped")]
    Stopped,
}

/// A setting of [`crate::ServiceConfig`], as errors name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceSetting {
    /// The interval trigger's `block_time`.
    BlockTime,
    /// `retry_period`: the wait before a follower's or a failed cycle's next cycle.
    RetryPeriod,
    /// `release_timeout`: the longest shutdown waits for the lease release.
    ReleaseTimeout,
}

impl std::fmt::Display for ServiceSetting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::BlockTime => "block_time",
            Self::RetryPeriod => "retry_period",
            Self::ReleaseTimeout => "release_timeout",
        })
    }
}
