//! Metric handles of the adapter, registered on a registry the caller passes in (never a
//! process global, so tests run in parallel with their own registries).
//!
//! The `poa_*` family follows fuel-core's (reference/fuel-core-behaviour.md section 8) with
//! Prometheus-canonical `_seconds` histogram names; counters are registered without `_total`
//! (the encoder appends it). Owns no I/O and no decisions: callers record what happened.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// fuel-core's "Timing" buckets, in seconds.
const TIMING_BUCKETS: [f64; 11] = [
    0.005, 0.010, 0.025, 0.050, 0.100, 0.250, 0.500, 1.000, 2.500, 5.000, 10.000,
];

fn timing_histogram() -> Histogram {
    Histogram::new(TIMING_BUCKETS)
}

/// Labels of the per-node outcome counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct NodeOperationLabels {
    /// The node's URL without credentials.
    pub(crate) node: String,
    /// The script: `check_owner`, `promote`, `release`, `write_block`, `read_latest`, `read_from`.
    pub(crate) operation: &'static str,
    /// `ok`, `refused`, `timeout` or `error`.
    pub(crate) outcome: &'static str,
}

/// Labels of a per-node counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct NodeLabels {
    /// The node's URL without credentials.
    pub(crate) node: String,
}

/// Labels of the per-node state gauge.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct NodeStateLabels {
    /// The node's URL without credentials.
    pub(crate) node: String,
    /// `unknown`, `ok`, `timed_out`, `refused` or `unreachable`.
    pub(crate) state: &'static str,
}

/// Labels of the quorum latency histogram.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct OperationLabels {
    /// `publish`, `renew`, `reconcile_read`, `promote`, `repair`.
    pub(crate) operation: &'static str,
}

/// Every metric of the adapter.
#[derive(Debug)]
pub(crate) struct Metrics {
    pub(crate) leader_epoch: Gauge,
    pub(crate) is_leader: Gauge,
    pub(crate) epoch_max_drift: Gauge,
    pub(crate) stream_trim_headroom: Gauge,
    pub(crate) lease_validity_remaining: Gauge<f64, AtomicU64>,
    pub(crate) outstanding_publish_tasks: Gauge,
    pub(crate) heights_below_quorum: Gauge,
    pub(crate) write_block_success: Counter,
    pub(crate) write_block_already_stored: Counter,
    pub(crate) write_block_height_exists: Counter,
    pub(crate) write_block_height_trimmed: Counter,
    pub(crate) write_block_fencing_error: Counter,
    pub(crate) write_block_error: Counter,
    pub(crate) epoch_file_errors: Counter,
    pub(crate) log_behind_head: Counter,
    pub(crate) full_scans: Counter,
    pub(crate) leader_checks_skipped: Counter,
    pub(crate) repair_success: Counter,
    pub(crate) repair_failure: Counter,
    pub(crate) anti_entropy_repairs: Counter,
    pub(crate) anti_entropy_passes: Counter,
    pub(crate) promotion_success: Counter,
    pub(crate) promotion_lock_held: Counter,
    pub(crate) promotion_failure: Counter,
    pub(crate) connection_reset: Counter,
    pub(crate) undecodable_entries: Counter,
    pub(crate) refused_entries: Counter,
    pub(crate) membership_readmissions: Counter,
    pub(crate) membership_generation: Gauge,
    pub(crate) membership_refusals: Family<NodeLabels, Counter>,
    pub(crate) node_state: Family<NodeStateLabels, Gauge>,
    pub(crate) promotion_duration: Histogram,
    pub(crate) write_block_duration: Histogram,
    pub(crate) reconciliation_duration: Histogram,
    pub(crate) quorum_latency: Family<OperationLabels, Histogram>,
    pub(crate) node_operations: Family<NodeOperationLabels, Counter>,
}

impl Metrics {
    /// Creates every metric and registers it on `registry`.
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            leader_epoch: Gauge::default(),
            is_leader: Gauge::default(),
            epoch_max_drift: Gauge::default(),
            stream_trim_headroom: Gauge::default(),
            lease_validity_remaining: Gauge::default(),
            outstanding_publish_tasks: Gauge::default(),
            heights_below_quorum: Gauge::default(),
            write_block_success: Counter::default(),
            write_block_already_stored: Counter::default(),
            write_block_height_exists: Counter::default(),
            write_block_height_trimmed: Counter::default(),
            write_block_fencing_error: Counter::default(),
            write_block_error: Counter::default(),
            epoch_file_errors: Counter::default(),
            log_behind_head: Counter::default(),
            full_scans: Counter::default(),
            leader_checks_skipped: Counter::default(),
            repair_success: Counter::default(),
            repair_failure: Counter::default(),
            anti_entropy_repairs: Counter::default(),
            anti_entropy_passes: Counter::default(),
            promotion_success: Counter::default(),
            promotion_lock_held: Counter::default(),
            promotion_failure: Counter::default(),
            connection_reset: Counter::default(),
            undecodable_entries: Counter::default(),
            refused_entries: Counter::default(),
            membership_readmissions: Counter::default(),
            membership_generation: Gauge::default(),
            membership_refusals: Family::default(),
            node_state: Family::default(),
            promotion_duration: timing_histogram(),
            write_block_duration: timing_histogram(),
            reconciliation_duration: timing_histogram(),
            quorum_latency: Family::new_with_constructor(timing_histogram),
            node_operations: Family::default(),
        };
        let gauges: [(&str, &str, &Gauge); 7] = [
            (
                "poa_membership_generation",
                "Generation of the membership record this process joined (0 while its node list matches none: it does not lead)",
                &metrics.membership_generation,
            ),
            (
                "poa_leader_epoch",
                "Current fencing epoch held by this process",
                &metrics.leader_epoch,
            ),
            (
                "poa_is_leader",
                "1 if this process holds the lease, 0 otherwise",
                &metrics.is_leader,
            ),
            (
                "poa_epoch_max_drift",
                "Highest minus lowest epoch granted in the last successful promotion",
                &metrics.epoch_max_drift,
            ),
            (
                "poa_stream_trim_headroom",
                "Lowest height read from the streams minus the local chain height",
                &metrics.stream_trim_headroom,
            ),
            (
                "poa_outstanding_publish_tasks",
                "Per-node write tasks currently in flight (drains to 0)",
                &metrics.outstanding_publish_tasks,
            ),
            (
                "poa_heights_below_quorum",
                "Heights of the window below the head that the last anti-entropy pass left below a quorum (0 in steady state)",
                &metrics.heights_below_quorum,
            ),
        ];
        for (name, help, gauge) in gauges {
            registry.register(name, help, gauge.clone());
        }
        registry.register_with_unit(
            "poa_lease_validity_remaining",
            "Local estimate of how long the lease stays valid",
            Unit::Seconds,
            metrics.lease_validity_remaining.clone(),
        );
        let counters: [(&str, &str, &Counter); 21] = [
            (
                "poa_membership_readmissions",
                "Nodes this process re-admitted as leader after they lost their server id",
                &metrics.membership_readmissions,
            ),
            (
                "poa_write_block_success",
                "write_block calls that appended the block",
                &metrics.write_block_success,
            ),
            (
                "poa_write_block_already_stored",
                "write_block calls that found the same block already stored",
                &metrics.write_block_already_stored,
            ),
            (
                "poa_write_block_height_exists",
                "write_block refusals because another block holds the height",
                &metrics.write_block_height_exists,
            ),
            (
                "poa_write_block_height_trimmed",
                "write_block refusals because the height is below the heights the node keeps",
                &metrics.write_block_height_trimmed,
            ),
            (
                "poa_full_scans",
                "reads of every node's window of the log (a new leadership, a backlog, a follower behind)",
                &metrics.full_scans,
            ),
            (
                "poa_leader_checks_skipped",
                "leader cycles answered without a round trip: the lease locally valid beyond the renewal margin and the head the log's top",
                &metrics.leader_checks_skipped,
            ),
            (
                "poa_log_behind_head",
                "new leaderships that found a quorum of nodes below the local head: the log lost committed blocks",
                &metrics.log_behind_head,
            ),
            (
                "poa_epoch_file_errors",
                "failures to record an epoch in the epoch file (a lease not taken, a write not made)",
                &metrics.epoch_file_errors,
            ),
            (
                "poa_write_block_fencing_error",
                "write_block refusals because the lease or epoch is not ours",
                &metrics.write_block_fencing_error,
            ),
            (
                "poa_write_block_error",
                "write_block calls that timed out or failed",
                &metrics.write_block_error,
            ),
            (
                "poa_repair_success",
                "Sub-quorum blocks repaired to a quorum",
                &metrics.repair_success,
            ),
            (
                "poa_repair_failure",
                "Repairs that ended below a quorum",
                &metrics.repair_failure,
            ),
            (
                "poa_anti_entropy_repairs",
                "Heights below the head brought back to a quorum by anti-entropy",
                &metrics.anti_entropy_repairs,
            ),
            (
                "poa_anti_entropy_passes",
                "Complete anti-entropy passes over the window below the head",
                &metrics.anti_entropy_passes,
            ),
            (
                "poa_promotion_success",
                "Lease acquisitions that reached a quorum",
                &metrics.promotion_success,
            ),
            (
                "poa_promotion_lock_held",
                "Lease acquisitions that found a quorum held by another process",
                &metrics.promotion_lock_held,
            ),
            (
                "poa_promotion_failure",
                "Lease acquisitions that exhausted their attempts",
                &metrics.promotion_failure,
            ),
            (
                "poa_connection_reset",
                "Node connections reset after a timeout or transport error",
                &metrics.connection_reset,
            ),
            (
                "poa_undecodable_entries",
                "Stream entries skipped because they did not decode",
                &metrics.undecodable_entries,
            ),
            (
                "poa_refused_entries",
                "Stream entries skipped because they failed the chain's verification",
                &metrics.refused_entries,
            ),
        ];
        for (name, help, counter) in counters {
            registry.register(name, help, counter.clone());
        }
        let histograms: [(&str, &str, &Histogram); 3] = [
            (
                "poa_promotion_duration",
                "Time to complete a lease acquisition, retries included",
                &metrics.promotion_duration,
            ),
            (
                "poa_write_block_duration",
                "Time per write_block call including the round trip",
                &metrics.write_block_duration,
            ),
            (
                "poa_reconciliation_duration",
                "Time to complete a leader's reconciliation",
                &metrics.reconciliation_duration,
            ),
        ];
        for (name, help, histogram) in histograms {
            registry.register_with_unit(name, help, Unit::Seconds, histogram.clone());
        }
        registry.register_with_unit(
            "poa_quorum_latency",
            "Time from a fan-out's start until a quorum answered, by operation",
            Unit::Seconds,
            metrics.quorum_latency.clone(),
        );
        registry.register(
            "poa_membership_refusals",
            "Script calls a node refused with MEMBERSHIP (its server id or record is not the one this process joined), per node",
            metrics.membership_refusals.clone(),
        );
        registry.register(
            "poa_node_state",
            "1 for each node's state (ok, timed_out, refused, unreachable, unknown), 0 for the others",
            metrics.node_state.clone(),
        );
        registry.register(
            "poa_node_operations",
            "Script calls per node by operation and outcome",
            metrics.node_operations.clone(),
        );
        metrics
    }

    /// Observes the time a fan-out took to reach its quorum.
    pub(crate) fn observe_quorum_latency(&self, operation: &'static str, elapsed: Duration) {
        self.quorum_latency
            .get_or_create(&OperationLabels { operation })
            .observe(elapsed.as_secs_f64());
    }
}

/// Holds one unit of `poa_outstanding_publish_tasks` from creation (before the task is
/// spawned) until dropped (when the task exits, panics or is cancelled).
#[derive(Debug)]
pub(crate) struct OutstandingTask {
    gauge: Gauge,
}

impl OutstandingTask {
    pub(crate) fn start(gauge: &Gauge) -> Self {
        gauge.inc();
        Self {
            gauge: gauge.clone(),
        }
    }
}

impl Drop for OutstandingTask {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests {
    use prometheus_client::encoding::text::encode;

    use super::*;

    #[test]
    fn register__when_encoded__then_exposes_the_poa_family_with_seconds_and_total_suffixes() {
        // given
        let mut registry = Registry::default();
        let metrics = Metrics::register(&mut registry);
        metrics.write_block_success.inc();
        metrics.observe_quorum_latency("publish", Duration::from_millis(3));

        // when
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();

        // then
        for name in [
            "poa_write_block_success_total 1",
            "poa_promotion_duration_seconds_bucket",
            "poa_quorum_latency_seconds_count{operation=\"publish\"} 1",
            "poa_outstanding_publish_tasks 0",
            "poa_heights_below_quorum 0",
            "poa_anti_entropy_repairs_total 0",
            "poa_lease_validity_remaining_seconds",
        ] {
            assert!(text.contains(name), "missing {name} in\n{text}");
        }
    }

    #[test]
    fn outstanding_task__when_dropped_even_by_a_panic__then_gauge_returns_to_zero() {
        // given
        let gauge = Gauge::default();

        // when
        let guard = OutstandingTask::start(&gauge);
        assert_eq!(gauge.get(), 1);
        let result = std::panic::catch_unwind(move || {
            let _guard = guard;
            panic!("task failed");
        });

        // then
        assert!(result.is_err());
        assert_eq!(gauge.get(), 0);
    }
}
