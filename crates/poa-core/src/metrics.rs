//! Prometheus metrics of the production service, registered on a registry passed in at
//! construction (never a process global).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Buckets (seconds) for the per-step durations: 100 µs to 10 s.
const STEP_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 10.0,
];

/// The label of a production step.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct StepLabel {
    pub(crate) step: &'static str,
}

/// Handles to the service's metrics.
#[derive(Debug, Clone)]
pub(crate) struct ServiceMetrics {
    pub(crate) height: Gauge,
    pub(crate) is_producing: Gauge,
    pub(crate) standing_aside: Gauge,
    pub(crate) blocks_produced: Counter,
    pub(crate) blocks_imported: Counter,
    pub(crate) blocks_refused: Counter,
    pub(crate) history_gaps: Counter,
    pub(crate) blocks_fetched_from_peers: Counter,
    pub(crate) heads_republished: Counter,
    pub(crate) handovers: Counter,
    pub(crate) cycle_failures: Family<StepLabel, Counter>,
    pub(crate) step_duration: Family<StepLabel, Histogram>,
}

impl ServiceMetrics {
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            height: Gauge::default(),
            is_producing: Gauge::default(),
            standing_aside: Gauge::default(),
            blocks_produced: Counter::default(),
            blocks_imported: Counter::default(),
            blocks_refused: Counter::default(),
            history_gaps: Counter::default(),
            blocks_fetched_from_peers: Counter::default(),
            heads_republished: Counter::default(),
            handovers: Counter::default(),
            cycle_failures: Family::default(),
            step_duration: Family::new_with_constructor(|| Histogram::new(STEP_BUCKETS)),
        };
        registry.register(
            "poa_block_height",
            "Height of the local chain head",
            metrics.height.clone(),
        );
        registry.register(
            "poa_service_producing",
            "1 if the last production cycle held the lease and was reconciled, else 0",
            metrics.is_producing.clone(),
        );
        registry.register(
            "poa_standing_aside",
            "1 while this process does not compete for the lease because it cannot keep its chain current",
            metrics.standing_aside.clone(),
        );
        registry.register(
            "poa_blocks_produced",
            "Blocks produced, published and committed",
            metrics.blocks_produced.clone(),
        );
        registry.register(
            "poa_blocks_imported",
            "Committed blocks imported from the shared block log",
            metrics.blocks_imported.clone(),
        );
        registry.register(
            "poa_blocks_refused",
            "Blocks from the shared block log refused by verification",
            metrics.blocks_refused.clone(),
        );
        registry.register(
            "poa_history_gap",
            "Cycles that found the next height trimmed from the shared block log",
            metrics.history_gaps.clone(),
        );
        registry.register(
            "poa_blocks_fetched_from_peers",
            "Blocks fetched from peers because the shared block log no longer held them",
            metrics.blocks_fetched_from_peers.clone(),
        );
        registry.register(
            "poa_heads_republished",
            "Local heads published to the shared log again because it had lost them",
            metrics.heads_republished.clone(),
        );
        registry.register(
            "poa_leader_handovers",
            "Leaderships handed over because the leader's blocks did not reach a quorum for the hand-over period",
            metrics.handovers.clone(),
        );
        registry.register(
            "poa_cycle_failures",
            "Production cycles that failed, by the step that failed",
            metrics.cycle_failures.clone(),
        );
        registry.register(
            "poa_production_step_duration_seconds",
            "Time spent in each step of producing a block",
            metrics.step_duration.clone(),
        );
        metrics
    }

    pub(crate) fn observe_step(&self, step: &'static str, elapsed: std::time::Duration) {
        self.step_duration
            .get_or_create(&StepLabel { step })
            .observe(elapsed.as_secs_f64());
    }

    pub(crate) fn count_failure(&self, step: &'static str) {
        self.cycle_failures.get_or_create(&StepLabel { step }).inc();
    }
}
