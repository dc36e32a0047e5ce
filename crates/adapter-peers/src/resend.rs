//! Sending again what stays pending, so a transaction any process accepted reaches whichever
//! process leads next, even when its first relay failed or was dropped, or went to a process
//! that has since died or restarted with an empty pool.
//!
//! While this process does not lead, a sweep every [`SWEEP_EVERY`] queues for every peer each
//! pending transaction first seen more than [`RESEND_AFTER`] ago, then again after a pause that
//! doubles up to [`MAX_RESEND_PAUSE`] for as long as it stays pending (until a block includes
//! it, or it expires). A leader does not sweep: it includes what it holds. When this process
//! stops leading it hands everything pending on at once, and when a peer answers again after
//! failures everything pending goes to that peer at once. Receivers refuse what their chain
//! committed and what they already hold, so sending again never includes anything twice.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use poa_ports::{Timestamp, TransactionId};
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::relay_batch::RelayedTransaction;
use crate::transaction_relay::PeerTransactionRelay;

/// How often a process that does not lead looks for transactions to send again.
pub const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// How long a transaction stays pending before it is sent again: a couple of block times of
/// the default trigger, well past one relay round trip.
pub const RESEND_AFTER: Duration = Duration::from_secs(3);
/// The longest pause between two sends of one transaction that stays pending.
pub const MAX_RESEND_PAUSE: Duration = Duration::from_secs(10);
/// The most transactions one sweep looks at: the pool's own bound.
const MAX_SWEEP: usize = 10_000;

/// What the relay reads from the local pool.
pub trait PendingTransactions: Send + Sync {
    /// Up to `max` pending transactions first seen at or before `cutoff`, each with that time.
    fn first_seen_by(&self, cutoff: Timestamp, max: usize) -> Vec<RelayedTransaction>;
}

/// Why the resend task wakes out of turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResendTrigger {
    /// This process stopped leading: hand everything pending on to every peer.
    HandOn,
    /// The peer at this index answered again after failures: send it everything pending.
    PeerRecovered(usize),
}

/// When one transaction is sent next.
#[derive(Debug, Clone, Copy)]
struct Schedule {
    sends: u32,
    next: Instant,
}

/// The resend task.
pub(crate) struct Resender {
    relay: PeerTransactionRelay,
    triggers: mpsc::Receiver<ResendTrigger>,
    closing: CancellationToken,
    schedule: HashMap<TransactionId, Schedule>,
}

impl Resender {
    pub(crate) fn new(
        relay: PeerTransactionRelay,
        triggers: mpsc::Receiver<ResendTrigger>,
        closing: CancellationToken,
    ) -> Self {
        Self {
            relay,
            triggers,
            closing,
            schedule: HashMap::new(),
        }
    }

    /// Sweeps and answers triggers until the relay shuts down.
    pub(crate) async fn run(mut self) {
        let mut sweeps = tokio::time::interval(SWEEP_EVERY);
        sweeps.set_missed_tick_behavior(MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                biased;
                () = self.closing.cancelled() => break,
                Some(trigger) = self.triggers.recv() => match trigger {
                    ResendTrigger::HandOn => {
                        self.relay.hand_on_to(None, "hand_on");
                    }
                    ResendTrigger::PeerRecovered(index) if !self.relay.is_leading() => {
                        self.relay.hand_on_to(Some(index), "peer_recovered");
                    }
                    ResendTrigger::PeerRecovered(_) => {}
                },
                _ = sweeps.tick() => {
                    if self.relay.is_leading() {
                        self.schedule.clear();
                    } else {
                        self.sweep(Instant::now(), self.relay.wall_clock_now());
                    }
                }
            }
        }
    }

    /// Queues again every transaction pending since before [`RESEND_AFTER`] whose pause is
    /// over; forgets those no longer pending.
    fn sweep(&mut self, now: Instant, wall_now: Timestamp) {
        let cutoff = Timestamp::from_unix_millis(
            wall_now
                .as_unix_millis()
                .saturating_sub(millis(RESEND_AFTER)),
        );
        let stuck = self.relay.pending().first_seen_by(cutoff, MAX_SWEEP);
        let mut still_pending = HashSet::with_capacity(stuck.len());
        let mut sent = 0;
        for entry in &stuck {
            let id = entry.transaction.id();
            still_pending.insert(id);
            let schedule = self.schedule.entry(id).or_insert(Schedule {
                sends: 0,
                next: now,
            });
            if schedule.next <= now {
                self.relay.relay(entry);
                schedule.sends = schedule.sends.saturating_add(1);
                schedule.next = now + pause_after(schedule.sends);
                sent += 1;
            }
        }
        self.schedule.retain(|id, _| still_pending.contains(id));
        self.relay.metrics().resent("stuck", sent);
    }
}

/// The pause after a transaction's `sends`-th send: [`RESEND_AFTER`], doubling, at most
/// [`MAX_RESEND_PAUSE`].
fn pause_after(sends: u32) -> Duration {
    RESEND_AFTER
        .saturating_mul(2_u32.saturating_pow(sends.saturating_sub(1).min(16)))
        .min(MAX_RESEND_PAUSE)
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests {
    use super::*;

    #[test]
    fn pause_after__when_a_transaction_stays_pending__then_doubles_up_to_the_maximum() {
        let pauses: Vec<u64> = (1..=5).map(|sends| millis(pause_after(sends))).collect();
        assert_eq!(pauses, vec![3_000, 6_000, 10_000, 10_000, 10_000]);
        assert_eq!(pause_after(u32::MAX), MAX_RESEND_PAUSE);
    }
}
