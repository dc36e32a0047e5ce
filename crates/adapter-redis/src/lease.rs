//! The lease: acquisition by concurrent promote with Redlock validity, the renewal (an
//! ownership check that re-arms the TTL, run once the local validity falls below the renewal
//! margin, or when a write found a node that no longer holds it) with background acquisition
//! on nodes not yet held, the local validity deadline, release on all nodes, and the bounded
//! release on drop.
//!
//! The rules (quorum, validity, tallies) live in `poa_quorum`; this module gathers outcomes.
//! The epochs live in [`LeaseState`], atomics shared with per-node tasks (never the adapter),
//! so late replies still raise them and no lock or reference count can delay a release. With
//! an epoch file, every epoch this process writes with, and the highest it saw in the log, is
//! recorded there before it is used, so no restart repeats one.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use poa_ports::Epoch;
use rand::Rng;
use tokio_util::task::TaskTracker;

use crate::config::ValidatedConfig;
use crate::epoch_file::EpochFile;
use crate::error::AdapterError;
use crate::fanout::FanOut;
use crate::metrics::Metrics;
use crate::node::NodeHandle;
use poa_quorum::{
    self as quorum, AcquireDecision, NodeIndex, OwnershipDecision, OwnershipTally, PromoteTally,
    Quorum,
};

use crate::scripts::{OwnerOutcome, PromoteOutcome};

/// This process's view of the lease, shared with background per-node tasks.
#[derive(Debug)]
pub(crate) struct LeaseState {
    /// The epoch of the current leadership (`0` for none): raised by every grant and by
    /// epochs found on nodes (atomic max), folded into `highest_led` and cleared when the
    /// leadership ends.
    held_epoch: AtomicU64,
    /// The epoch every new leadership must get above; never lowered: the highest epoch an
    /// earlier leadership of this process held, the highest it saw in the log, and what the
    /// epoch file held at start. Every promote passes it as the floor, so a new leadership
    /// always gets a higher epoch, even where a release never arrived and this process's own
    /// key lingers, or where nodes came back from an old snapshot.
    floor: AtomicU64,
    leading: AtomicBool,
    /// A write found a node where this process's key is gone or outranked: the next leader
    /// cycle renews (and so takes that node back in the background) even while locally valid.
    renewal_due: AtomicBool,
    valid_until: Mutex<Option<Instant>>,
    ttl: Duration,
    drift: Duration,
    metrics: Arc<Metrics>,
    /// Where the floor and every epoch written with survive a restart, if configured.
    epoch_file: Option<EpochFile>,
}

impl LeaseState {
    fn new(
        ttl: Duration,
        drift: Duration,
        metrics: Arc<Metrics>,
        epoch_file: Option<(EpochFile, Epoch)>,
    ) -> Self {
        let (epoch_file, floor) = match epoch_file {
            Some((file, stored)) => (Some(file), stored.get()),
            None => (None, 0),
        };
        Self {
            held_epoch: AtomicU64::new(0),
            floor: AtomicU64::new(floor),
            leading: AtomicBool::new(false),
            renewal_due: AtomicBool::new(false),
            valid_until: Mutex::new(None),
            ttl,
            drift,
            metrics,
            epoch_file,
        }
    }

    /// The epoch held, if this process leads. Grants folded while it does not lead (a late
    /// grant that is released again, a failed attempt) are kept for the next acquisition's
    /// max-fold but never make a non-leader look like an epoch holder.
    pub(crate) fn epoch(&self) -> Option<Epoch> {
        if !self.is_leading() {
            return None;
        }
        match self.held_epoch.load(Ordering::Acquire) {
            0 => None,
            epoch => Some(Epoch::new(epoch)),
        }
    }

    /// The floor every promote carries: the highest epoch an earlier leadership held or the
    /// log showed.
    pub(crate) fn epoch_floor(&self) -> Epoch {
        Epoch::new(self.floor.load(Ordering::Acquire))
    }

    /// Raises the floor to an epoch seen in the log (a verified block's writer) and records it
    /// in the epoch file; a failure to record is logged, the floor stays raised in memory.
    pub(crate) async fn observe_log_epoch(&self, seen: Epoch) {
        let previous = self.floor.fetch_max(seen.get(), Ordering::AcqRel);
        if seen.get() <= previous {
            return;
        }
        if let Err(reason) = self.record(seen).await {
            tracing::warn!(epoch = %seen, reason = %reason, "the epoch seen in the log is not recorded");
        }
    }

    /// The epoch held, recorded in the epoch file first: what a write must carry. The held
    /// epoch can rise during a leadership (a node that held a higher one), and no write may
    /// carry an epoch a restart could hand out again.
    ///
    /// # Errors
    ///
    /// [`AdapterError::NoEpoch`] when not leading; [`AdapterError::Fenced`] when the epoch
    /// cannot be recorded (this process fences itself).
    pub(crate) async fn epoch_for_write(&self) -> Result<Epoch, AdapterError> {
        let epoch = self.epoch().ok_or(AdapterError::NoEpoch)?;
        self.record(epoch)
            .await
            .map_err(|reason| AdapterError::Fenced {
                reason: format!("epoch {epoch} could not be recorded: {reason}"),
            })?;
        Ok(epoch)
    }

    /// Records `epoch` (and the floor, if higher) in the epoch file, if there is one.
    async fn record(&self, epoch: Epoch) -> Result<(), String> {
        let Some(file) = &self.epoch_file else {
            return Ok(());
        };
        let highest = epoch.max(self.epoch_floor());
        file.raise_to(highest).await.inspect_err(|_| {
            self.metrics.epoch_file_errors.inc();
        })
    }

    /// Raises the epoch to `seen` if that is higher (late replies included).
    pub(crate) fn fold_epoch(&self, seen: Epoch) {
        let fold = |current: u64| {
            let current = (current != 0).then_some(Epoch::new(current));
            Some(quorum::fold_epoch(current, seen).get())
        };
        // The closure always returns Some, so this never fails.
        let _ = self
            .held_epoch
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, fold);
        self.show_epoch();
    }

    /// Sets the epoch gauge to the epoch held (0 when not leading).
    fn show_epoch(&self) {
        let held = self.epoch().map_or(0, Epoch::get);
        self.metrics
            .leader_epoch
            .set(i64::try_from(held).unwrap_or(i64::MAX));
    }

    pub(crate) fn is_leading(&self) -> bool {
        self.leading.load(Ordering::Acquire)
    }

    /// A write (a publish or a repair) was fenced on a node: that node lost this process's key
    /// (restarted empty, the key expired or was taken there) or holds a higher epoch, so the
    /// next leader cycle renews rather than skip, and the renewal takes the node back or finds
    /// the lease lost.
    pub(crate) fn renewal_needed(&self) {
        self.renewal_due.store(true, Ordering::Release);
    }

    /// The lease was granted or renewed on a quorum by an operation started at `started`: a
    /// quorum grant, a renewal, or a publish a quorum stored (every stored or already-stored
    /// reply re-armed the key's TTL on its node after `started`).
    pub(crate) fn renewed(&self, started: Instant) {
        let until = started
            .checked_add(self.ttl.saturating_sub(self.drift))
            .unwrap_or(started);
        let mut valid_until = self
            .valid_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *valid_until = Some(valid_until.map_or(until, |previous| previous.max(until)));
    }

    /// How much longer the lease is valid by the local clock, if this process leads.
    pub(crate) fn valid_for(&self) -> Option<Duration> {
        if !self.is_leading() {
            return None;
        }
        let valid_until = *self
            .valid_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        valid_until.map(|until| until.saturating_duration_since(Instant::now()))
    }

    fn set_leading(&self, leading: bool) {
        if !leading {
            self.floor
                .fetch_max(self.held_epoch.load(Ordering::Acquire), Ordering::AcqRel);
        }
        self.leading.store(leading, Ordering::Release);
        self.metrics.is_leader.set(i64::from(leading));
        self.show_epoch();
    }

    /// Forgets the lease: not leading, no held epoch (it stays the floor), no validity.
    fn clear(&self) {
        self.set_leading(false);
        self.held_epoch.store(0, Ordering::Release);
        self.renewal_due.store(false, Ordering::Release);
        *self
            .valid_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
    }
}

/// Whether this cycle may produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// This process holds the lease in leadership `generation`.
    Leader { generation: u64 },
    /// Another process holds the lease, or it could not be acquired.
    Follower,
}

/// Whether an attempt still counts the grants its tasks report.
#[derive(Debug, Default)]
struct Attempt {
    gave_up: Mutex<bool>,
}

/// Acquisition, ownership, expansion and release over all nodes.
#[derive(Debug)]
pub(crate) struct Lease {
    nodes: Arc<[NodeHandle]>,
    quorum: Quorum,
    ttl: Duration,
    drift: Duration,
    node_timeout: Duration,
    retry_delay: Duration,
    max_retry_delay_offset: Duration,
    max_attempts: u32,
    /// A leader cycle skips the renewal while the local validity exceeds this: half the TTL,
    /// and never less than the node timeout, so a write sent within the margin lands well
    /// before the lease could expire.
    renewal_margin: Duration,
    state: Arc<LeaseState>,
    tracker: TaskTracker,
    /// Promote tasks that may still release on their own; a new acquisition waits for them
    /// so a late self-release can never delete a grant of the new attempt.
    promote_tasks: Mutex<TaskTracker>,
    generation: AtomicU64,
    /// Whether this process stands back from the lease because fewer than a quorum of nodes
    /// answered its last calls (said once when it starts and once when it ends).
    standing_back: AtomicBool,
    metrics: Arc<Metrics>,
}

impl Lease {
    pub(crate) fn new(
        config: &ValidatedConfig,
        nodes: Arc<[NodeHandle]>,
        tracker: TaskTracker,
        metrics: Arc<Metrics>,
        epoch_file: Option<(EpochFile, Epoch)>,
    ) -> Self {
        Self {
            nodes,
            quorum: config.quorum,
            ttl: config.lease_ttl,
            drift: config.drift,
            node_timeout: config.node_timeout,
            retry_delay: config.retry_delay,
            max_retry_delay_offset: config.max_retry_delay_offset,
            max_attempts: config.max_attempts,
            renewal_margin: (config.lease_ttl / 2).max(config.node_timeout),
            state: Arc::new(LeaseState::new(
                config.lease_ttl,
                config.drift,
                Arc::clone(&metrics),
                epoch_file,
            )),
            tracker,
            promote_tasks: Mutex::new(TaskTracker::new()),
            generation: AtomicU64::new(0),
            standing_back: AtomicBool::new(false),
            metrics,
        }
    }

    pub(crate) fn state(&self) -> &Arc<LeaseState> {
        &self.state
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The current leadership generation, if this process leads, its local validity exceeds
    /// the renewal margin and no write asked for a renewal: a leader cycle then needs no
    /// round trip for the lease.
    pub(crate) fn held_beyond_margin(&self) -> Option<u64> {
        if self.state.renewal_due.load(Ordering::Acquire) {
            return None;
        }
        let valid_for = self.state.valid_for()?;
        (valid_for > self.renewal_margin).then(|| self.generation.load(Ordering::Acquire))
    }

    /// Renews the lease if this process leads, else tries to acquire it.
    pub(crate) async fn role(&self) -> Role {
        if self.state.is_leading() {
            let Renewal::NotHeld { acked } = self.renew().await else {
                return Role::Leader {
                    generation: self.generation.load(Ordering::Acquire),
                };
            };
            // The one line of a lost leadership.
            tracing::warn!(
                epoch = ?self.state.epoch(),
                acked,
                quorum = self.quorum.size(),
                "lease no longer held on a quorum"
            );
            self.state.set_leading(false);
        }
        if !self.reaches_a_quorum() {
            return Role::Follower;
        }
        if self.acquire().await {
            Role::Leader {
                generation: self.generation.load(Ordering::Acquire),
            }
        } else {
            Role::Follower
        }
    }

    /// Whether a quorum of nodes answered this process's last call to each (an answer of any
    /// kind, a refusal included; a node not called yet counts): only then does it compete for
    /// the lease. A process that reaches fewer cannot win it, and each promote it sends would
    /// only take a node from a candidate that can, splitting that candidate's acquisition
    /// until its links come back (the cycle's reads, which go to every node, tell when). Said
    /// once when it starts and once when it ends.
    fn reaches_a_quorum(&self) -> bool {
        let reached = self
            .nodes
            .iter()
            .filter(|node| node.answered_last_call())
            .count();
        let reaches = self.quorum.reached(reached);
        let was_standing_back = self.standing_back.swap(!reaches, Ordering::AcqRel);
        if !reaches && !was_standing_back {
            tracing::warn!(
                reached,
                quorum = self.quorum.size(),
                "not competing for the lease: fewer than a quorum of nodes answered the last calls"
            );
        } else if reaches && was_standing_back {
            tracing::info!(
                reached,
                "competing for the lease again: a quorum of nodes answers"
            );
        }
        reaches
    }

    /// `renew_lease` on every node, decided at a quorum: `q` confirmations re-armed the TTL on
    /// a quorum, so the local validity runs again from this call's start. Nodes not confirmed
    /// get a background promote.
    async fn renew(&self) -> Renewal {
        let started = Instant::now();
        self.state.renewal_due.store(false, Ordering::Release);
        let mut replies =
            FanOut::spawn(&self.tracker, self.nodes.iter(), None, |node| async move {
                node.renew_lease().await
            });
        let mut tally = OwnershipTally::new(self.quorum);
        let mut confirmed = vec![false; self.nodes.len()];
        let mut decision = OwnershipDecision::Undecided;
        while decision == OwnershipDecision::Undecided {
            let Some((node, outcome)) = replies.next().await else {
                break;
            };
            confirmed[node] = outcome == OwnerOutcome::Owner;
            tally.record(outcome.reply());
            decision = tally.decision();
        }
        if decision != OwnershipDecision::Owned {
            return Renewal::NotHeld {
                acked: tally.confirmed(),
            };
        }
        self.state.renewed(started);
        self.metrics
            .observe_quorum_latency("renew", replies.elapsed());
        let unheld: Vec<NodeIndex> = (0..self.nodes.len())
            .filter(|node| !confirmed[*node])
            .collect();
        if !unheld.is_empty() {
            self.acquire_lease_on_unheld_nodes(&unheld);
        }
        Renewal::Renewed
    }

    /// Best-effort background promote on nodes the renewal did not confirm, so writes reach
    /// them too and any higher epoch found there is adopted. A grant that lands after this
    /// process stopped leading is released again (no resurrection).
    fn acquire_lease_on_unheld_nodes(&self, unheld: &[NodeIndex]) {
        let tasks = self.current_promote_tasks();
        let state = Arc::clone(&self.state);
        let floor = self.state.epoch_floor();
        for node in unheld.iter().filter_map(|index| self.nodes.get(*index)) {
            let node = NodeHandle::clone(node);
            let state = Arc::clone(&state);
            self.tracker.spawn(tasks.track_future(async move {
                let outcome = node.promote(floor).await;
                if let PromoteOutcome::Granted(epoch) = outcome {
                    state.fold_epoch(epoch);
                }
                if outcome.may_hold_grant() && !state.is_leading() {
                    node.release().await;
                }
            }));
        }
    }

    fn current_promote_tasks(&self) -> TaskTracker {
        self.promote_tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Waits (bounded) for promote tasks of earlier attempts and expansions to finish, then
    /// starts a fresh set.
    async fn settle_promote_tasks(&self) -> TaskTracker {
        let previous = {
            let mut tasks = self
                .promote_tasks
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            std::mem::replace(&mut *tasks, TaskTracker::new())
        };
        previous.close();
        // promote then release, each bounded by the node timeout and the outer guard
        let bound = self.node_timeout.saturating_mul(2) + Duration::from_millis(100);
        let _ = tokio::time::timeout(bound, previous.wait()).await;
        self.current_promote_tasks()
    }

    /// Acquisition with retries. Returns whether this process leads.
    async fn acquire(&self) -> bool {
        let started = Instant::now();
        for attempt in 1..=self.max_attempts {
            match self.acquire_once().await {
                AcquireDecision::Acquired {
                    epoch,
                    epoch_spread,
                } => {
                    self.metrics.promotion_success.inc();
                    self.metrics
                        .epoch_max_drift
                        .set(i64::try_from(epoch_spread).unwrap_or(i64::MAX));
                    self.metrics
                        .promotion_duration
                        .observe(started.elapsed().as_secs_f64());
                    let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
                    tracing::info!(epoch = %epoch, generation, "lease acquired");
                    return true;
                }
                AcquireDecision::HeldByAnother => {
                    self.metrics.promotion_lock_held.inc();
                    self.metrics
                        .promotion_duration
                        .observe(started.elapsed().as_secs_f64());
                    return false;
                }
                AcquireDecision::Failed | AcquireDecision::Undecided => {
                    if attempt < self.max_attempts {
                        tokio::time::sleep(self.retry_delay_with_jitter()).await;
                    }
                }
            }
        }
        self.metrics.promotion_failure.inc();
        self.metrics
            .promotion_duration
            .observe(started.elapsed().as_secs_f64());
        tracing::warn!(
            attempts = self.max_attempts,
            "lease acquisition failed; cannot produce"
        );
        false
    }

    async fn acquire_once(&self) -> AcquireDecision {
        let tasks = self.settle_promote_tasks().await;
        let attempt = Arc::new(Attempt::default());
        let state = Arc::clone(&self.state);
        let floor = self.state.epoch_floor();
        let started = Instant::now();
        let (sender, mut replies) = tokio::sync::mpsc::unbounded_channel();
        for node in self.nodes.iter() {
            let node = NodeHandle::clone(node);
            let attempt = Arc::clone(&attempt);
            let state = Arc::clone(&state);
            let sender = sender.clone();
            self.tracker.spawn(tasks.track_future(async move {
                let outcome = node.promote(floor).await;
                let may_hold_grant = outcome.may_hold_grant();
                if let PromoteOutcome::Granted(epoch) = outcome {
                    state.fold_epoch(epoch);
                }
                let counted = {
                    let gave_up = attempt
                        .gave_up
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner);
                    !*gave_up && sender.send((node.index(), outcome)).is_ok()
                };
                // A grant nobody counts must not strand the lease on this node, and neither
                // may a promote whose reply timed out: it may have run all the same.
                if may_hold_grant && !counted && !state.is_leading() {
                    tracing::debug!(
                        node = node.name(),
                        "releasing a grant that arrived late or timed out"
                    );
                    node.release().await;
                }
            }));
        }
        drop(sender);
        let mut tally = PromoteTally::new(self.quorum);
        let mut decision = AcquireDecision::Undecided;
        while decision == AcquireDecision::Undecided {
            let Some((_, outcome)) = replies.recv().await else {
                break;
            };
            tally.record(outcome.reply());
            let validity = quorum::remaining_validity(self.ttl, self.drift, started.elapsed());
            decision = tally.decision(validity);
        }
        self.metrics
            .observe_quorum_latency("promote", started.elapsed());
        if let AcquireDecision::Acquired { epoch, .. } = decision {
            self.state.fold_epoch(epoch);
            match self.state.record(epoch).await {
                Ok(()) => {
                    self.state.set_leading(true);
                    self.state.renewed(started);
                    return decision;
                }
                Err(reason) => {
                    tracing::error!(
                        epoch = %epoch,
                        reason = %reason,
                        "the lease was granted but its epoch cannot be recorded: not leading"
                    );
                    *attempt
                        .gave_up
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner) = true;
                    self.release_on_all_nodes().await;
                    return AcquireDecision::Failed;
                }
            }
        }
        *attempt
            .gave_up
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = true;
        // Grants sent before the attempt gave up are counted here and released below.
        while let Ok((_, outcome)) = replies.try_recv() {
            tally.record(outcome.reply());
        }
        if tally.may_hold_grants() {
            self.release_on_all_nodes().await;
        }
        decision
    }

    fn retry_delay_with_jitter(&self) -> Duration {
        let max_offset = u64::try_from(self.max_retry_delay_offset.as_millis()).unwrap_or(0);
        let offset = rand::thread_rng().gen_range(0..=max_offset);
        self.retry_delay
            .saturating_add(Duration::from_millis(offset))
    }

    /// Releases the lease on every node (each call bounded) and forgets it locally.
    /// Idempotent; starts no expansion, so it never resurrects the lease.
    pub(crate) async fn release(&self) {
        let was_leading = self.state.is_leading();
        self.state.clear();
        self.release_on_all_nodes().await;
        if was_leading {
            tracing::info!("lease released");
        }
    }

    async fn release_on_all_nodes(&self) {
        FanOut::spawn(&self.tracker, self.nodes.iter(), None, |node| async move {
            node.release().await
        })
        .all()
        .await;
    }

    /// Forgets the lease and hands a release bounded by `budget` to the runtime, without
    /// waiting for it and without waiting for any background task (drop path).
    pub(crate) fn release_in_background(&self, budget: Duration) {
        self.state.clear();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!("adapter dropped outside a tokio runtime; the lease expires on its own");
            return;
        };
        let nodes = Arc::clone(&self.nodes);
        runtime.spawn(async move {
            let mut releases = tokio::task::JoinSet::new();
            for node in nodes.iter() {
                let node = NodeHandle::clone(node);
                releases.spawn(async move { node.release().await });
            }
            let all = async { while releases.join_next().await.is_some() {} };
            if tokio::time::timeout(budget, all).await.is_err() {
                tracing::error!("lease release on drop timed out; the lease expires on its own");
            }
        });
    }
}

/// What a renewal found.
enum Renewal {
    /// A quorum confirmed this process's token: the TTL is re-armed there.
    Renewed,
    /// Fewer than a quorum confirmed it: this process no longer leads.
    NotHeld {
        /// The nodes that confirmed it.
        acked: usize,
    },
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests {
    use prometheus_client::registry::Registry;

    use super::*;

    #[test]
    fn fold_epoch__when_many_threads_fold_concurrently__then_keeps_the_global_maximum() {
        // given
        let metrics = Arc::new(Metrics::register(&mut Registry::default()));
        let state = Arc::new(LeaseState::new(
            Duration::from_secs(2),
            Duration::from_millis(22),
            metrics,
            None,
        ));
        state.set_leading(true);

        // when: 8 threads fold interleaved ascending and descending candidates
        let threads: Vec<_> = (0..8u64)
            .map(|thread| {
                let state = Arc::clone(&state);
                std::thread::spawn(move || {
                    for step in 0..200u64 {
                        let candidate = if step % 2 == 0 {
                            step * 8 + thread + 1
                        } else {
                            1600 - step
                        };
                        let before = state.epoch();
                        state.fold_epoch(Epoch::new(candidate));
                        assert!(state.epoch() >= before, "epoch went down");
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }

        // then
        assert_eq!(state.epoch(), Some(Epoch::new(1599)));
    }

    #[test]
    fn valid_for__when_not_leading_or_renewed__then_none_or_at_most_ttl_minus_drift() {
        // given
        let metrics = Arc::new(Metrics::register(&mut Registry::default()));
        let state = LeaseState::new(
            Duration::from_secs(2),
            Duration::from_millis(22),
            metrics,
            None,
        );

        // when / then
        state.renewed(Instant::now());
        assert_eq!(state.valid_for(), None);
        state.set_leading(true);
        let valid = state.valid_for().unwrap();
        assert!(valid <= Duration::from_millis(1978) && valid > Duration::from_millis(1500));
        state.clear();
        assert_eq!(state.valid_for(), None);
        assert_eq!(state.epoch(), None);
    }
}
