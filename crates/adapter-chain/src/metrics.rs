//! Metric handles of the local chain store, registered on a registry the caller passes in
//! (never a process global). Owns no I/O and no decisions: the store records what happened.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Labels of the storage failure counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    /// `io`, `corruption` or `file_replaced`.
    kind: &'static str,
}

/// Labels of the reopen counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReopenLabels {
    /// `recovered` or `failed`.
    outcome: &'static str,
}

/// The store's metrics. Cheap to clone: clones share the series.
#[derive(Debug, Clone, Default)]
pub struct StorageMetrics {
    healthy: Gauge,
    failures: Family<FailureLabels, Counter>,
    reopens: Family<ReopenLabels, Counter>,
    index_failures: Counter,
}

impl StorageMetrics {
    /// Metrics registered on `registry`: `poa_chain_storage_healthy` (1 while commits are
    /// accepted, else 0), `poa_chain_storage_failures_total{kind}` (`io`, `corruption`,
    /// `file_replaced`), `poa_chain_storage_reopens_total{outcome}` (`recovered`, `failed`) and
    /// `poa_chain_transaction_index_failures_total` (failures of the transaction index file,
    /// each rebuilt from the chain; none of them changes the health).
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "poa_chain_storage_healthy",
            "1 while the local chain database accepts commits, 0 while it is failing, detached or recovering",
            metrics.healthy.clone(),
        );
        registry.register(
            "poa_chain_storage_failures",
            "Failures of the local chain database by kind (io, corruption, file_replaced)",
            metrics.failures.clone(),
        );
        registry.register(
            "poa_chain_storage_reopens",
            "Attempts to reopen the local chain database after an i/o error, by outcome",
            metrics.reopens.clone(),
        );
        registry.register(
            "poa_chain_transaction_index_failures",
            "Failures of the transaction index file (derived from the chain, so dropped and built again from it; the store stays healthy)",
            metrics.index_failures.clone(),
        );
        metrics.set_healthy(true);
        metrics
    }

    pub(crate) fn set_healthy(&self, healthy: bool) {
        self.healthy.set(i64::from(healthy));
    }

    pub(crate) fn record_failure(&self, kind: &'static str) {
        self.failures.get_or_create(&FailureLabels { kind }).inc();
    }

    pub(crate) fn record_index_failure(&self) {
        self.index_failures.inc();
    }

    pub(crate) fn record_reopen(&self, recovered: bool) {
        let outcome = if recovered { "recovered" } else { "failed" };
        self.reopens.get_or_create(&ReopenLabels { outcome }).inc();
    }
}
