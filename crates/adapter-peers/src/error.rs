//! Errors of the peer adapter's own API (configuration). Failures to reach a peer are not
//! errors of the API: they become a [`poa_ports::HistoryError`] or an empty answer.

/// A peer setting is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerConfigError {
    /// A peer URL is not an `http://host:port` base URL.
    #[error("peer url {url} is not usable: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong and how to fix it.
        reason: &'static str,
    },
    /// The same peer is listed twice.
    #[error("peer url {url} is listed twice")]
    Duplicate {
        /// The URL as given.
        url: String,
    },
    /// A bound is zero.
    #[error("{setting} must be larger than zero")]
    Zero {
        /// The setting.
        setting: &'static str,
    },
}
