//! Fan-out of one operation to many nodes: one spawned task per node, outcomes streamed back
//! in arrival order, so the caller can stop at a quorum (or at impossibility) while slower
//! nodes' tasks finish in the background, each bounded by the node timeouts.
//!
//! Tasks belong to the adapter's [`TaskTracker`] and hold only a per-node handle, never the
//! adapter. Decisions are not made here: the caller hands each outcome to a tally in `quorum`.

use std::future::Future;
use std::time::{Duration, Instant};

use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;

use crate::metrics::OutstandingTask;
use crate::node::NodeHandle;
use poa_quorum::NodeIndex;

/// Outcomes of one fan-out, in the order nodes answered.
#[derive(Debug)]
pub(crate) struct FanOut<T> {
    outcomes: mpsc::UnboundedReceiver<(NodeIndex, T)>,
    started: Instant,
}

impl<T: Send + 'static> FanOut<T> {
    /// Spawns `operation` once per node. With a `gauge`, each task holds one unit of it from
    /// before it is spawned until it exits (normally, by panic or by cancellation).
    pub(crate) fn spawn<'a, F, Fut>(
        tracker: &TaskTracker,
        nodes: impl IntoIterator<Item = &'a NodeHandle>,
        gauge: Option<&Gauge>,
        operation: F,
    ) -> Self
    where
        F: Fn(NodeHandle) -> Fut,
        Fut: Future<Output = T> + Send + 'static,
    {
        let (sender, outcomes) = mpsc::unbounded_channel();
        for node in nodes {
            let guard = gauge.map(OutstandingTask::start);
            let index = node.index();
            let work = operation(NodeHandle::clone(node));
            let sender = sender.clone();
            tracker.spawn(async move {
                let _guard = guard;
                let outcome = work.await;
                // The caller may have decided already; the outcome then only fed metrics.
                let _ = sender.send((index, outcome));
            });
        }
        Self {
            outcomes,
            started: Instant::now(),
        }
    }

    /// The next outcome, or `None` once every task has reported.
    pub(crate) async fn next(&mut self) -> Option<(NodeIndex, T)> {
        self.outcomes.recv().await
    }

    /// Time since the tasks were spawned.
    pub(crate) fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Waits for every task's outcome (each bounded by its node's timeouts).
    pub(crate) async fn all(mut self) -> Vec<(NodeIndex, T)> {
        let mut all = Vec::new();
        while let Some(outcome) = self.next().await {
            all.push(outcome);
        }
        all
    }
}
