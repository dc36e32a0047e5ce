//! [`PeerTransactionRelay`]: passes a transaction accepted by a process that does not lead on to
//! its peers, so it reaches the leader's pool instead of waiting in a follower's pool until that
//! follower leads.
//!
//! A relayed request carries the [`RELAYED_HEADER`], and a process never relays a request that
//! carries it: a transaction travels at most one hop, so relays cannot loop. Each request runs
//! on tokio's blocking pool, bounded by the request timeout; relaying is best effort and never
//! delays the answer to the submitter.

use std::sync::Arc;

use poa_ports::Transaction;
use tracing::debug;

use crate::config::PeerConfig;

/// The header that marks a relayed transaction submission.
pub const RELAYED_HEADER: &str = "x-poa-relayed";

/// Relays transactions to every configured peer.
#[derive(Debug, Clone)]
pub struct PeerTransactionRelay {
    config: Arc<PeerConfig>,
    agent: ureq::Agent,
}

impl PeerTransactionRelay {
    /// Builds the relay; does no I/O.
    pub fn new(config: PeerConfig) -> Self {
        let agent = config.http_agent();
        Self {
            config: Arc::new(config),
            agent,
        }
    }

    /// Sends `transaction` to every peer in the background and returns at once. A peer that
    /// already holds it answers 409, which is as good as accepted.
    pub fn relay(&self, transaction: &Transaction) {
        let body: Arc<[u8]> = transaction.as_bytes().into();
        for peer in &self.config.urls {
            let url = format!("{peer}/transactions");
            let agent = self.agent.clone();
            let body = Arc::clone(&body);
            // Bounded by the agent's global timeout; the handle is not needed.
            drop(tokio::task::spawn_blocking(move || {
                let outcome = agent
                    .post(&url)
                    .header(RELAYED_HEADER, "1")
                    .send(&body[..])
                    .map(|response| response.status().as_u16());
                debug!(node = %url, outcome = ?outcome.map_err(|error| error.to_string()), "transaction relayed");
            }));
        }
    }
}
