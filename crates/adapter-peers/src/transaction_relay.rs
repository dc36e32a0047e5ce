//! [`PeerTransactionRelay`]: passes transactions on to the other `poa-node` processes, so what
//! one process accepts reaches the pool of every other process, whichever of them leads.
//!
//! Each peer has its own bounded queue and one task that drains it in batches
//! (`POST /transactions/relay`, framed by [`crate::relay_batch`]) over the pooled keep-alive
//! client, with a bounded number of requests in flight. [`PeerTransactionRelay::relay`] only
//! puts a transaction on each queue and never waits: a full queue drops the transaction for that
//! peer and counts it, so a frozen or dead peer costs the submit path nothing. After a failed
//! request a peer is left alone for a backoff (doubling up to [`MAX_BACKOFF`]) while its queue
//! fills and overflows; what was dropped or failed is not retried here: [`crate::resend`] sends
//! again what stays pending, and hands everything on when this process stops leading or a
//! peer answers again. A relayed request is never relayed again by its receiver: relays cannot
//! loop.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use poa_ports::{Clock, Timestamp};
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
use crate::resend::{PendingTransactions, ResendTrigger, Resender};

/// The header that marks a relayed transaction submission; its receiver never relays it again.
pub const RELAYED_HEADER: &str = "x-poa-relayed";
/// The path peers accept relay batches on.
pub const RELAY_PATH: &str = "/transactions/relay";
/// The first pause after a failed request to a peer.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest pause after failed requests to a peer.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// The most transactions one hand-on queues: the pool's own bound.
const MAX_HAND_ON: usize = 10_000;
/// Out-of-turn wake-ups of the resend task waiting at once.
const TRIGGER_QUEUE: usize = 64;

/// Relays transactions to every configured peer. Cheap to clone: clones share the queues.
#[derive(Debug, Clone)]
pub struct PeerTransactionRelay {
    shared: Arc<Shared>,
}

struct Shared {
    queues: Vec<PeerQueue>,
    metrics: RelayMetrics,
    closing: CancellationToken,
    tracker: TaskTracker,
    /// The local pool, read to send again what stays pending.
    pending: Arc<dyn PendingTransactions>,
    /// The wall clock first-seen times are on.
    clock: Arc<dyn Clock>,
    /// Whether this process leads (set by the caller from the service's status).
    leading: AtomicBool,
    /// Wakes the resend task out of turn.
    triggers: mpsc::Sender<ResendTrigger>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("queues", &self.queues)
            .field("leading", &self.leading)
            .finish_non_exhaustive()
    }
}

/// The submit side of one peer's queue.
#[derive(Debug)]
struct PeerQueue {
    peer: String,
    sender: mpsc::Sender<RelayedTransaction>,
    queued: Gauge,
}

impl PeerTransactionRelay {
    /// Starts one relay task per peer and the resend task on the current tokio runtime, and
    /// registers the relay's metrics. `pending` is the local pool, read to send again what
    /// stays pending; `clock` is the wall clock its first-seen times are on. Does no I/O until
    /// a transaction is relayed or a sweep finds one pending.
    pub fn start(
        config: &PeerConfig,
        pending: Arc<dyn PendingTransactions>,
        clock: Arc<dyn Clock>,
        registry: &mut Registry,
    ) -> Self {
        let metrics = RelayMetrics::register(registry);
        let client = PeerHttpClient::new(config, config.relay.in_flight);
        let closing = CancellationToken::new();
        let tracker = TaskTracker::new();
        let (triggers, trigger_receiver) = mpsc::channel(TRIGGER_QUEUE);
        let queues = config
            .urls
            .iter()
            .enumerate()
            .map(|(index, peer)| {
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
                        index,
                        triggers: triggers.clone(),
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
        let relay = Self {
            shared: Arc::new(Shared {
                queues,
                metrics,
                closing: closing.clone(),
                tracker: tracker.clone(),
                pending,
                clock,
                leading: AtomicBool::new(false),
                triggers,
            }),
        };
        tracker.spawn(Resender::new(relay.clone(), trigger_receiver, closing).run());
        relay
    }

    /// The peers' base URLs.
    pub fn peers(&self) -> impl Iterator<Item = &str> {
        self.shared.queues.iter().map(|queue| queue.peer.as_str())
    }

    /// Queues `entry` for every peer and returns at once; a peer whose queue is full (or that
    /// is shut down) misses it, counted as `dropped`.
    pub fn relay(&self, entry: &RelayedTransaction) {
        for queue in &self.shared.queues {
            self.enqueue(queue, entry);
        }
    }

    /// Queues `entry` for the peer at `index` only.
    pub(crate) fn relay_to(&self, index: usize, entry: &RelayedTransaction) {
        if let Some(queue) = self.shared.queues.get(index) {
            self.enqueue(queue, entry);
        }
    }

    fn enqueue(&self, queue: &PeerQueue, entry: &RelayedTransaction) {
        queue.queued.inc();
        if queue.sender.try_send(entry.clone()).is_err() {
            queue.queued.dec();
            self.shared.metrics.count(&queue.peer, "dropped", 1);
        }
    }

    /// Tells the relay whether this process leads: a leader includes what it holds and sends
    /// nothing again; when it stops leading (a step-down, a lost lease, a shutdown) it hands
    /// everything pending on to every peer at once.
    pub fn set_leading(&self, leading: bool) {
        let was_leading = self.shared.leading.swap(leading, Ordering::AcqRel);
        if was_leading && !leading {
            // The lease's adapter tells the lost leadership; this line tells the hand-on.
            info!("handing pending transactions on to the peers: this process stopped leading");
            // A full trigger queue already holds a hand-on or will sweep soon.
            let _ = self.shared.triggers.try_send(ResendTrigger::HandOn);
        }
    }

    /// Whether this process leads, as last told.
    pub(crate) fn is_leading(&self) -> bool {
        self.shared.leading.load(Ordering::Acquire)
    }

    /// Queues every pending transaction for every peer now and returns how many were queued:
    /// for a process about to exit, before [`PeerTransactionRelay::shutdown`] sends them.
    pub fn hand_on(&self) -> usize {
        self.hand_on_to(None, "hand_on")
    }

    /// Queues every pending transaction for every peer, or for the peer at `only`, counted
    /// under `reason`.
    pub(crate) fn hand_on_to(&self, only: Option<usize>, reason: &'static str) -> usize {
        let pending = self
            .shared
            .pending
            .first_seen_by(self.wall_clock_now(), MAX_HAND_ON);
        for entry in &pending {
            match only {
                Some(index) => self.relay_to(index, entry),
                None => self.relay(entry),
            }
        }
        self.shared.metrics.resent(reason, pending.len());
        pending.len()
    }

    /// Now, on the clock first-seen times are on.
    pub(crate) fn wall_clock_now(&self) -> Timestamp {
        self.shared.clock.now()
    }

    /// The local pool.
    pub(crate) fn pending(&self) -> &dyn PendingTransactions {
        self.shared.pending.as_ref()
    }

    /// The relay's metrics.
    pub(crate) fn metrics(&self) -> &RelayMetrics {
        &self.shared.metrics
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
    /// The peer's index among the relay's peers.
    index: usize,
    /// Tells the resend task when the peer answers again.
    triggers: mpsc::Sender<ResendTrigger>,
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
                // The peer may have restarted with an empty pool.
                let _ = self
                    .triggers
                    .try_send(ResendTrigger::PeerRecovered(self.index));
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
