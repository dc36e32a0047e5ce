//! The node's background tasks beside the service and the listeners: the pool's maintenance
//! tick (expiry and its gauges, every second) and telling the transaction relay whether this
//! process leads (from the service's status), so it hands pending transactions on when it stops
//! leading. They belong to one task tracker and end when stopped.

use std::time::Duration;

use adapter_chain::{PoolMaintenance, SystemClock};
use adapter_peers::PeerTransactionRelay;
use poa_core::{Role, ServiceStatus};
use poa_ports::Clock;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How often the pool expires transactions and updates its gauges.
const MAINTENANCE_EVERY: Duration = Duration::from_secs(1);

/// The running background tasks.
pub(crate) struct Background {
    tracker: TaskTracker,
    stop: CancellationToken,
}

impl Background {
    /// Starts the pool's maintenance and, with peers, the relay's view of leadership.
    pub(crate) fn start(
        maintenance: PoolMaintenance,
        relay: Option<PeerTransactionRelay>,
        status: watch::Receiver<ServiceStatus>,
    ) -> Self {
        let tracker = TaskTracker::new();
        let stop = CancellationToken::new();
        tracker.spawn(maintain_pool(maintenance, stop.clone()));
        if let Some(relay) = relay {
            tracker.spawn(follow_leadership(relay, status, stop.clone()));
        }
        tracker.close();
        Self { tracker, stop }
    }

    /// Stops the tasks and waits for them (each stops at its next await).
    pub(crate) async fn stop(self) {
        self.stop.cancel();
        self.tracker.wait().await;
    }
}

async fn maintain_pool(maintenance: PoolMaintenance, stop: CancellationToken) {
    let mut ticks = tokio::time::interval(MAINTENANCE_EVERY);
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => break,
            _ = ticks.tick() => {
                maintenance.tick(SystemClock.now());
            }
        }
    }
}

async fn follow_leadership(
    relay: PeerTransactionRelay,
    mut status: watch::Receiver<ServiceStatus>,
    stop: CancellationToken,
) {
    loop {
        let role = status.borrow_and_update().role;
        if role == Role::Stopped {
            // The exiting node hands everything on itself, once, and tells how many.
            break;
        }
        relay.set_leading(role == Role::Leader);
        tokio::select! {
            biased;
            () = stop.cancelled() => break,
            changed = status.changed() => {
                if changed.is_err() {
                    // The service is gone: this process no longer leads.
                    relay.set_leading(false);
                    break;
                }
            }
        }
    }
}
