//! [`PeerTransactionRelay`]: passes transactions on to the other `poa-node` processes, so what
//! one process accepts reaches the pool of whichever process leads.
//!
//! Each peer has its own bounded queue and one task that drains it in batches
//! (`POST /transactions/relay`, framed by [`crate::relay_batch`]) over the pooled keep-alive
//! client, with a bounded number of requests in flight. [`PeerTransactionRelay::relay`] only
//! puts a transaction on each queue and never waits: a full queue drops the transaction for that
//! peer and counts it, so a frozen or dead peer costs the submit path nothing. After a failed
//! request a peer is left alone for a backoff (doubling up to [`MAX_BACKOFF`]) while its queue
//! fills and overflows; what was dropped or failed is not retried here (the caller sends again
//! what stays pending). A relayed request is never relayed again by its receiver: relays cannot
//! loop.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::config::{PeerConfig, RelayBounds};
use crate::http_client::PeerHttpClient;
use crate::metrics::RelayMetrics;
use crate::relay_batch::{RelayedTransaction, encode_relay_batch};

/// The header that marks a relayed transaction submission; its receiver never relays it again.
pub const RELAYED_HEADER: &str = "x-poa-relayed";
/// The path peers accept relay batches on.
pub const RELAY_PATH: &str = "/transactions/relay";
/// The first pause after a failed request to a peer.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest pause after failed requests to a peer.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Relays transactions to every configured peer. Cheap to clone: clones share the queues.
#[derive(Debug, Clone)]
pub struct PeerTransactionRelay {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    queues: Vec<PeerQueue>,
    metrics: RelayMetrics,
    closing: CancellationToken,
    tracker: TaskTracker,
}

/// The submit side of one peer's queue.
#[derive(Debug)]
struct PeerQueue {
    peer: String,
    sender: mpsc::Sender<RelayedTransaction>,
    queued: Gauge,
}

impl PeerTransactionRelay {
    /// Starts one relay task per peer on the current tokio runtime and registers the relay's
    /// metrics. Does no I/O until a transaction is relayed.
    pub fn start(config: &PeerConfig, registry: &mut Registry) -> Self {
        let metrics = RelayMetrics::register(registry);
        let client = PeerHttpClient::new(config, config.relay.in_flight);
        let closing = CancellationToken::new();
        let tracker = TaskTracker::new();
        let queues = config
            .urls
            .iter()
            .map(|peer| {
                let (sender, receiver) = mpsc::channel(config.relay.queue);
                let queued = metrics.queued(peer);
                let link = PeerLink {
                    receiver,
                    queued: queued.clone(),
                    bounds: config.relay,
                    closing: closing.clone(),
                    tracker: tracker.clone(),
                    batches: Arc::new(BatchSender {
                        peer: peer.clone(),
                        url: format!("{peer}{RELAY_PATH}"),
                        client: client.clone(),
                        metrics: metrics.clone(),
                        closing: closing.clone(),
                        failures: AtomicU32::new(0),
                    }),
                };
                tracker.spawn(link.run());
                PeerQueue {
                    peer: peer.clone(),
                    sender,
                    queued,
                }
            })
            .collect();
        Self {
            shared: Arc::new(Shared {
                queues,
                metrics,
                closing,
                tracker,
            }),
        }
    }

    /// The peers' base URLs.
    pub fn peers(&self) -> impl Iterator<Item = &str> {
        self.shared.queues.iter().map(|queue| queue.peer.as_str())
    }

    /// Queues `entry` for every peer and returns at once; a peer whose queue is full (or that
    /// is shut down) misses it, counted as `dropped`.
    pub fn relay(&self, entry: &RelayedTransaction) {
        for queue in &self.shared.queues {
            queue.queued.inc();
            if queue.sender.try_send(entry.clone()).is_err() {
                queue.queued.dec();
                self.shared.metrics.count(&queue.peer, "dropped", 1);
            }
        }
    }

    /// Sends what is queued, then stops every relay task; waits at most `deadline`. Returns
    /// whether everything queued was sent (delivered or failed) in time. Transactions relayed
    /// after this call are dropped.
    pub async fn shutdown(&self, deadline: Duration) -> bool {
        self.shared.closing.cancel();
        self.shared.tracker.close();
        tokio::time::timeout(deadline, self.shared.tracker.wait())
            .await
            .is_ok()
    }
}

/// The task side of one peer's queue.
struct PeerLink {
    receiver: mpsc::Receiver<RelayedTransaction>,
    queued: Gauge,
    bounds: RelayBounds,
    closing: CancellationToken,
    tracker: TaskTracker,
    batches: Arc<BatchSender>,
}

impl PeerLink {
    /// Takes batches off the queue while fewer than `in_flight` requests run, until shut down
    /// and drained.
    async fn run(mut self) {
        let in_flight = Arc::new(Semaphore::new(self.bounds.in_flight));
        loop {
            let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else {
                break;
            };
            let Some(first) = self.next_entry().await else {
                break;
            };
            let batch = self.fill_batch(first);
            self.queued
                .dec_by(i64::try_from(batch.len()).unwrap_or(i64::MAX));
            let batches = Arc::clone(&self.batches);
            self.tracker.spawn(async move {
                batches.send(batch).await;
                drop(permit);
            });
        }
    }

    /// The next queued transaction; once shutting down, only what is already queued.
    async fn next_entry(&mut self) -> Option<RelayedTransaction> {
        tokio::select! {
            biased;
            entry = self.receiver.recv() => entry,
            () = self.closing.cancelled() => self.receiver.try_recv().ok(),
        }
    }

    /// `first` and whatever else is queued, within the batch bounds.
    fn fill_batch(&mut self, first: RelayedTransaction) -> Vec<RelayedTransaction> {
        let mut bytes = first.framed_len();
        let mut batch = vec![first];
        while batch.len() < self.bounds.batch_transactions && bytes < self.bounds.batch_bytes {
            let Ok(entry) = self.receiver.try_recv() else {
                break;
            };
            bytes = bytes.saturating_add(entry.framed_len());
            batch.push(entry);
        }
        batch
    }
}

/// Sends batches to one peer and keeps its failure streak.
struct BatchSender {
    peer: String,
    url: String,
    client: PeerHttpClient,
    metrics: RelayMetrics,
    closing: CancellationToken,
    /// Consecutive failed requests.
    failures: AtomicU32,
}

impl BatchSender {
    /// One relay request; after a failure, waits out the backoff before returning, so the
    /// caller's request slot stays taken.
    async fn send(&self, batch: Vec<RelayedTransaction>) {
        let count = batch.len();
        let body = Bytes::from(encode_relay_batch(&batch));
        drop(batch);
        let outcome = self
            .client
            .post(&self.url, vec![(RELAYED_HEADER, "1")], body)
            .await;
        let failure = match outcome {
            Ok(response) if (200..300).contains(&response.status) => None,
            Ok(response) => Some(format!("answered http {}", response.status)),
            Err(error) => Some(error.to_string()),
        };
        let Some(error) = failure else {
            self.metrics.count(&self.peer, "delivered", count);
            let failed = self.failures.swap(0, Ordering::Relaxed);
            if failed > 0 {
                info!(node = %self.peer, failed_requests = failed, "peer relay recovered");
            }
            return;
        };
        self.metrics.count(&self.peer, "failed", count);
        let failed = self.failures.fetch_add(1, Ordering::Relaxed);
        if failed == 0 {
            warn!(node = %self.peer, error = %error, count, "peer relay failing");
        } else {
            debug!(node = %self.peer, error = %error, count, "peer relay request failed");
        }
        let backoff = FIRST_BACKOFF
            .saturating_mul(2_u32.saturating_pow(failed.min(16)))
            .min(MAX_BACKOFF);
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = self.closing.cancelled() => {}
        }
    }
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests;
