//! The HTTP listeners (the public API and the admin API): accepts connections under a cap and
//! serves each with hyper's HTTP/1 connection, bounded in time, until told to stop.
//!
//! What a client can hold is bounded, so idle or slow clients cannot take the API down:
//! - a connection must send a request's headers within the header timeout, counted from the
//!   connection or the previous answer (hyper's header-read timer), so a keep-alive connection
//!   idle that long is closed too;
//! - a request must be read and answered within the request timeout (408 otherwise), which bounds
//!   a slow upload;
//! - a connection that moves no byte either way for the idle timeout is closed, which bounds a
//!   client that stops reading its answer;
//! - at most `max_connections` are held: at the cap a new connection closes the one that has
//!   waited longest for a request (never one with a request in flight), so a health probe still
//!   gets in while slow clients hold every slot; when every connection has a request in flight
//!   the new one is closed at once.
//!
//! Connection tasks belong to a task tracker; stopping closes idle connections at once and lets
//! the others finish their answer. Owns no route: the router is given.

mod connection;
mod descriptors;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

pub(crate) use self::descriptors::ensure_descriptors;

/// How long the accept loop pauses after a failed accept (out of descriptors, say).
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);
/// The admin API's connection cap: a few operators and scripts.
pub(crate) const ADMIN_MAX_CONNECTIONS: usize = 32;
/// Descriptors the process needs besides its HTTP connections: Redis and peer connections, the
/// chain database, standard streams, listeners, with room to spare.
const OTHER_DESCRIPTORS: usize = 256;

/// The bounds of one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HttpLimits {
    /// Most connections held at once.
    pub(crate) max_connections: usize,
    /// Time to send a request's headers, from the connection or the previous answer.
    pub(crate) header_timeout: Duration,
    /// Time to read a request's body and produce its answer.
    pub(crate) request_timeout: Duration,
    /// Time a connection may move no byte either way.
    pub(crate) idle_timeout: Duration,
    /// Bulk transfers (raw block answers, relay batches) served at once; 503 past it.
    pub(crate) max_bulk_requests: usize,
}

impl HttpLimits {
    /// The public API's defaults: 1,024 connections, 10 s for headers, 30 s per request,
    /// 30 s without a byte, 16 bulk transfers.
    pub(crate) const DEFAULT: Self = Self {
        max_connections: 1024,
        header_timeout: Duration::from_secs(10),
        request_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(30),
        max_bulk_requests: 16,
    };

    /// The admin API's bounds: these timeouts, [`ADMIN_MAX_CONNECTIONS`] connections.
    pub(crate) fn admin(&self) -> Self {
        Self {
            max_connections: ADMIN_MAX_CONNECTIONS,
            ..*self
        }
    }

    /// Open file descriptors the process needs with these bounds on the public listener.
    pub(crate) fn descriptors_needed(&self) -> u64 {
        let total = self
            .max_connections
            .saturating_add(ADMIN_MAX_CONNECTIONS)
            .saturating_add(OTHER_DESCRIPTORS);
        u64::try_from(total).unwrap_or(u64::MAX)
    }
}

/// Labels of the per-listener metrics.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerLabels {
    /// `http` or `admin`.
    listener: &'static str,
}

/// Labels of the closed-connection counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClosedLabels {
    /// `http` or `admin`.
    listener: &'static str,
    /// `header_timeout`, `idle_timeout`, `evicted` (closed to make room at the cap) or
    /// `refused` (closed at once: the cap was reached and every connection had a request).
    reason: &'static str,
}

/// The listeners' metrics, registered once for both.
#[derive(Debug, Clone)]
pub(crate) struct HttpServerMetrics {
    open: Family<ListenerLabels, Gauge>,
    closed: Family<ClosedLabels, Counter>,
}

impl HttpServerMetrics {
    /// Creates the metrics and registers them on `registry`.
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            open: Family::default(),
            closed: Family::default(),
        };
        registry.register(
            "poa_http_open_connections",
            "Connections an HTTP listener holds",
            metrics.open.clone(),
        );
        registry.register(
            "poa_http_connections_closed",
            "Connections an HTTP listener closed for a bound: header_timeout, idle_timeout, \
             evicted (to make room at the cap), refused (at the cap, every connection busy)",
            metrics.closed.clone(),
        );
        metrics
    }

    fn closed(&self, listener: &'static str, reason: &'static str) {
        self.closed
            .get_or_create(&ClosedLabels { listener, reason })
            .inc();
    }

    fn open(&self, listener: &'static str) -> Gauge {
        self.open
            .get_or_create(&ListenerLabels { listener })
            .clone()
    }
}

/// One connection as the cap sees it.
#[derive(Debug)]
struct Tracked {
    /// Requests in flight on it (from the headers to the end of the answer body).
    in_flight: Arc<AtomicUsize>,
    /// Tells the connection's task to close it.
    evict: Arc<Notify>,
}

/// What making room for a new connection did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Room {
    /// The listener was under its cap.
    Free,
    /// The oldest connection without a request in flight was told to close.
    Evicted,
    /// Every held connection has a request in flight: the new one must be closed.
    Refused,
}

/// The connections a listener holds, oldest first (ids only grow).
#[derive(Debug, Default)]
struct Connections {
    held: Mutex<BTreeMap<u64, Tracked>>,
}

impl Connections {
    /// Makes room for one more connection under `cap`, closing the oldest one without a
    /// request in flight if needed.
    fn make_room(&self, cap: usize) -> Room {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        if held.len() < cap {
            return Room::Free;
        }
        let victim = held
            .iter()
            .find(|(_, tracked)| tracked.in_flight.load(Ordering::Acquire) == 0)
            .map(|(id, _)| *id);
        match victim.and_then(|id| held.remove(&id)) {
            Some(tracked) => {
                tracked.evict.notify_one();
                Room::Evicted
            }
            None => Room::Refused,
        }
    }

    fn insert(&self, id: u64, tracked: Tracked) {
        self.held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, tracked);
    }

    fn remove(&self, id: u64) {
        self.held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
    }
}

/// Serves `router` on `listener` within `limits` until `stop` is cancelled, then waits up to
/// `drain` for the connections to finish their answers.
pub(crate) async fn serve(
    name: &'static str,
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    metrics: HttpServerMetrics,
    stop: CancellationToken,
    drain: Duration,
) {
    let connections = Arc::new(Connections::default());
    let tracker = TaskTracker::new();
    let open = metrics.open(name);
    let mut next_id: u64 = 0;
    let mut accept_failing = false;
    loop {
        let accepted = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                if !accept_failing {
                    warn!(server = name, error = %error, "http accept failing");
                    accept_failing = true;
                }
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        if accept_failing {
            info!(server = name, "http accept works again");
            accept_failing = false;
        }
        match connections.make_room(limits.max_connections) {
            Room::Free => {}
            Room::Evicted => metrics.closed(name, "evicted"),
            Room::Refused => {
                metrics.closed(name, "refused");
                debug!(
                    server = name,
                    "connection cap reached with every connection busy"
                );
                drop(stream);
                continue;
            }
        }
        let id = next_id;
        next_id = next_id.saturating_add(1);
        let in_flight = Arc::new(AtomicUsize::new(0));
        let evict = Arc::new(Notify::new());
        connections.insert(
            id,
            Tracked {
                in_flight: Arc::clone(&in_flight),
                evict: Arc::clone(&evict),
            },
        );
        open.inc();
        let task = connection::ConnectionTask {
            name,
            stream,
            router: router.clone(),
            limits,
            in_flight,
            evict,
            stop: stop.clone(),
        };
        let (connections, metrics, open) =
            (Arc::clone(&connections), metrics.clone(), open.clone());
        tracker.spawn(async move {
            if let Some(reason) = task.run().await {
                metrics.closed(name, reason);
            }
            connections.remove(id);
            open.dec();
        });
    }
    drop(listener);
    tracker.close();
    if tokio::time::timeout(drain, tracker.wait()).await.is_err() {
        warn!(server = name, "http connections did not drain in time");
    }
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests {
    use super::*;

    fn tracked(in_flight: usize) -> (Tracked, Arc<Notify>) {
        let evict = Arc::new(Notify::new());
        (
            Tracked {
                in_flight: Arc::new(AtomicUsize::new(in_flight)),
                evict: Arc::clone(&evict),
            },
            evict,
        )
    }

    #[test]
    fn make_room__when_at_the_cap__then_evicts_the_oldest_connection_without_a_request() {
        // given: three connections, the oldest busy
        let connections = Connections::default();
        let (busy, _) = tracked(1);
        let (idle, idle_evict) = tracked(0);
        let (newer, _) = tracked(0);
        connections.insert(1, busy);
        connections.insert(2, idle);
        connections.insert(3, newer);

        // when
        let room = connections.make_room(3);

        // then
        assert_eq!(room, Room::Evicted);
        let held: Vec<u64> = connections.held.lock().unwrap().keys().copied().collect();
        assert_eq!(held, vec![1, 3]);
        assert!(
            futures_ready(idle_evict.notified()),
            "the evicted connection was not told"
        );
    }

    #[test]
    fn make_room__when_every_connection_is_busy__then_refuses() {
        // given
        let connections = Connections::default();
        connections.insert(1, tracked(1).0);

        // when / then
        assert_eq!(connections.make_room(1), Room::Refused);
        assert_eq!(connections.make_room(2), Room::Free);
    }

    /// Whether `future` is ready at its first poll.
    fn futures_ready(future: impl std::future::Future<Output = ()>) -> bool {
        let mut future = std::pin::pin!(future);
        let waker = std::task::Waker::noop();
        let mut context = std::task::Context::from_waker(waker);
        future.as_mut().poll(&mut context).is_ready()
    }
}
