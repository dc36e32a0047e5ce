//! The peers to ask and the bounds of every request, validated once at construction.

use std::time::Duration;

use crate::error::PeerConfigError;

/// How long one request to one peer may take, unless configured otherwise.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// The most bytes one peer answer may carry: a batch the server caps at 8 MiB plus one block.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 16 * 1024 * 1024;
/// How long an idle keep-alive connection to a peer stays in the client's pool. Below the
/// default `--http-header-timeout` of the peer, which closes a connection that waits longer
/// than that for its next request, so the client rarely reuses a connection the peer is closing.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(5);

/// Bounds of the transaction relay to one peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayBounds {
    /// Transactions waiting for one peer; past it a transaction is dropped for that peer (and
    /// counted), never waited for.
    pub queue: usize,
    /// Requests in flight to one peer at once; also the idle connections kept for it.
    pub in_flight: usize,
    /// Most transactions in one relay request.
    pub batch_transactions: usize,
    /// A relay request stops taking transactions once it carries this many bytes.
    pub batch_bytes: usize,
}

impl RelayBounds {
    /// 10,000 queued transactions per peer (the pool's own bound), 2 requests in flight,
    /// batches of up to 512 transactions or 1 MiB.
    pub const fn standard() -> Self {
        Self {
            queue: 10_000,
            in_flight: 2,
            batch_transactions: 512,
            batch_bytes: 1024 * 1024,
        }
    }
}

/// The peers and the request bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    /// Base URLs of other `poa-node` HTTP APIs (`http://host:port`), without a trailing slash.
    pub urls: Vec<String>,
    /// Bound of one request to one peer, connection included.
    pub request_timeout: Duration,
    /// The most bytes read from one answer; a larger answer counts as a failed request.
    pub max_response_bytes: u64,
    /// Bounds of the transaction relay to each peer.
    pub relay: RelayBounds,
}

impl PeerConfig {
    /// Validates `urls` (each `http://host[:port]`, no path, listed once) with the default
    /// bounds.
    ///
    /// # Errors
    ///
    /// [`PeerConfigError`] naming the first unusable URL.
    pub fn new(urls: Vec<String>) -> Result<Self, PeerConfigError> {
        let mut normalized: Vec<String> = Vec::with_capacity(urls.len());
        for url in urls {
            let base = validate_url(&url)?;
            if normalized.contains(&base) {
                return Err(PeerConfigError::Duplicate { url });
            }
            normalized.push(base);
        }
        Ok(Self {
            urls: normalized,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            relay: RelayBounds::standard(),
        })
    }

    /// Sets the bound of one request.
    ///
    /// # Errors
    ///
    /// [`PeerConfigError::Zero`] for a zero timeout.
    pub fn with_request_timeout(mut self, timeout: Duration) -> Result<Self, PeerConfigError> {
        if timeout.is_zero() {
            return Err(PeerConfigError::Zero {
                setting: "peer request timeout",
            });
        }
        self.request_timeout = timeout;
        Ok(self)
    }

    /// Sets the bounds of the transaction relay.
    ///
    /// # Errors
    ///
    /// [`PeerConfigError::Zero`] naming the first zero bound.
    pub fn with_relay_bounds(mut self, relay: RelayBounds) -> Result<Self, PeerConfigError> {
        for (value, setting) in [
            (relay.queue, "relay queue"),
            (relay.in_flight, "relay requests in flight"),
            (relay.batch_transactions, "relay batch transactions"),
            (relay.batch_bytes, "relay batch bytes"),
        ] {
            if value == 0 {
                return Err(PeerConfigError::Zero { setting });
            }
        }
        self.relay = relay;
        Ok(self)
    }
}

/// Checks one base URL and returns it without a trailing slash.
fn validate_url(url: &str) -> Result<String, PeerConfigError> {
    let invalid = |reason| PeerConfigError::InvalidUrl {
        url: url.to_owned(),
        reason,
    };
    let Some(authority) = url.strip_prefix("http://") else {
        return Err(invalid("it must start with http://"));
    };
    let authority = authority.trim_end_matches('/');
    if authority.is_empty() {
        return Err(invalid("it names no host"));
    }
    if authority.contains(['/', '?', '#', '@']) || authority.contains(char::is_whitespace) {
        return Err(invalid(
            "it must be http://host:port, without path, query or credentials",
        ));
    }
    Ok(format!("http://{authority}"))
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests {
    use super::*;

    #[test]
    fn new__when_urls_are_base_urls__then_keeps_them_without_trailing_slash() {
        // given
        let urls = vec![
            "http://127.0.0.1:4001/".to_owned(),
            "http://peer:80".to_owned(),
        ];

        // when
        let config = PeerConfig::new(urls).unwrap();

        // then
        assert_eq!(config.urls, vec!["http://127.0.0.1:4001", "http://peer:80"]);
    }

    #[test]
    fn new__when_a_url_is_unusable__then_names_it() {
        for url in [
            "127.0.0.1:4001",
            "https://peer",
            "http://",
            "http://peer/blocks",
            "http://u:p@peer",
        ] {
            // when
            let error = PeerConfig::new(vec![url.to_owned()]).unwrap_err();

            // then
            assert!(
                matches!(&error, PeerConfigError::InvalidUrl { url: named, .. } if named == url),
                "{url}: {error:?}"
            );
        }
    }

    #[test]
    fn new__when_a_peer_is_listed_twice__then_refuses_it() {
        // given
        let urls = vec!["http://peer:1".to_owned(), "http://peer:1/".to_owned()];

        // when
        let error = PeerConfig::new(urls).unwrap_err();

        // then
        assert_eq!(
            error,
            PeerConfigError::Duplicate {
                url: "http://peer:1/".to_owned()
            }
        );
    }
}
