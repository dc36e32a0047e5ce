//! Errors of the peer adapter: its configuration, a relay batch that does not decode, and one
//! request to one peer. Failures to reach a peer are not errors of the adapter's API: they
//! become a [`poa_ports::HistoryError`], an empty answer, or a relay metric.

use std::time::Duration;

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

/// A relay batch whose framing is broken; nothing of it is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed relay batch: entry {entry} {reason}")]
pub struct RelayBatchError {
    /// Index of the first bad entry.
    pub entry: usize,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// One request to one peer failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PeerRequestError {
    /// The URL built from the peer's base URL is not a valid URI (never for validated peers).
    #[error("invalid request url {url}")]
    InvalidUrl {
        /// The URL.
        url: String,
    },
    /// Connecting, sending or reading failed.
    #[error("request failed: {reason}")]
    Failed {
        /// The client's error.
        reason: String,
    },
    /// The whole exchange, answer body included, took longer than the request timeout.
    #[error("no complete answer within {timeout:?}")]
    TimedOut {
        /// The request timeout.
        timeout: Duration,
    },
    /// The answer is larger than the adapter reads.
    #[error("answer larger than {limit} bytes")]
    TooLarge {
        /// The most bytes read from one answer.
        limit: u64,
    },
}
