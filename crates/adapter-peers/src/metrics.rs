//! Metric handles of the transaction relay, registered on a registry the caller passes in
//! (never a process global). Counters are registered without `_total` (the encoder appends
//! it). Owns no I/O and no decisions: callers record what happened.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Labels of the per-peer transaction counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RelayOutcomeLabels {
    /// The peer's base URL.
    pub(crate) peer: String,
    /// `delivered` (the peer answered the batch), `failed` (the request failed or was refused)
    /// or `dropped` (the peer's queue was full or closed: never sent).
    pub(crate) outcome: &'static str,
}

/// Labels of the per-peer queue gauge.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct PeerLabels {
    /// The peer's base URL.
    pub(crate) peer: String,
}

/// Labels of the resend counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ResendLabels {
    /// `stuck` (pending longer than the resend delay, on a process that does not lead),
    /// `hand_on` (this process stopped leading or is exiting) or `peer_recovered` (a peer
    /// answered again after failures).
    pub(crate) reason: &'static str,
}

/// Every metric of the relay.
#[derive(Debug, Clone)]
pub(crate) struct RelayMetrics {
    transactions: Family<RelayOutcomeLabels, Counter>,
    queued: Family<PeerLabels, Gauge>,
    resent: Family<ResendLabels, Counter>,
}

impl RelayMetrics {
    /// Creates every metric and registers it on `registry`.
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            transactions: Family::default(),
            queued: Family::default(),
            resent: Family::default(),
        };
        registry.register(
            "poa_relay_transactions",
            "Transactions relayed to a peer, by outcome (delivered, failed, dropped)",
            metrics.transactions.clone(),
        );
        registry.register(
            "poa_relay_queued_transactions",
            "Transactions waiting to be relayed to a peer",
            metrics.queued.clone(),
        );
        registry.register(
            "poa_relay_resent_transactions",
            "Pending transactions queued again for the peers, by reason (stuck, hand_on, peer_recovered)",
            metrics.resent.clone(),
        );
        metrics
    }

    /// Counts `count` pending transactions queued again for `reason`.
    pub(crate) fn resent(&self, reason: &'static str, count: usize) {
        if count > 0 {
            self.resent
                .get_or_create(&ResendLabels { reason })
                .inc_by(u64::try_from(count).unwrap_or(u64::MAX));
        }
    }

    /// Counts `count` transactions for `peer` with `outcome`.
    pub(crate) fn count(&self, peer: &str, outcome: &'static str, count: usize) {
        self.transactions
            .get_or_create(&RelayOutcomeLabels {
                peer: peer.to_owned(),
                outcome,
            })
            .inc_by(u64::try_from(count).unwrap_or(u64::MAX));
    }

    /// The queue gauge of `peer`.
    pub(crate) fn queued(&self, peer: &str) -> Gauge {
        self.queued
            .get_or_create(&PeerLabels {
                peer: peer.to_owned(),
            })
            .clone()
    }
}
