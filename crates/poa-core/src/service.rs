//! The production loop: waits for the next wake-up (trigger, retry period, pending
//! transactions, manual request or shutdown), runs one cycle, and schedules the next.
//!
//! Shutdown is an input to [`ProductionService::run`] and wins every race (`biased` select).
//! A running cycle is not cancelled: every port call inside it is bounded by its adapter, and
//! cancelling between publish and commit would only leave work for the next leader. A commit in
//! flight (`pipeline`) is never abandoned either: the loop drives it while it waits, and
//! shutdown waits for it after releasing the lease.

mod cycle;
mod handover;
mod history;
mod log_loss;
mod pipeline;
mod reporting;
#[cfg(test)]
#[allow(non_snake_case)]
mod tests;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use poa_ports::{
    BlockHeight, BlockHistorySource, BlockId, BlockImporter, BlockProducer,
    BlockReconciliationPort, BlockSigner, Chain, Clock, TransactionPool,
};
use prometheus_client::registry::Registry;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::config::{ServiceConfig, Trigger};
use crate::error::ServiceError;
use crate::metrics::ServiceMetrics;
use crate::status::{Role, ServiceStatus};

/// How many cycles one manual request may spend importing before it produces.
const MAX_CYCLES_PER_MANUAL_REQUEST: usize = 16;

/// The adapters the service works through, for the chain `C` whose blocks it produces.
pub struct Ports<C: Chain> {
    /// Leadership and the shared block log.
    pub reconciliation: Arc<dyn BlockReconciliationPort<C>>,
    /// The local chain.
    pub importer: Arc<dyn BlockImporter<C>>,
    /// Builds blocks from pending transactions.
    pub producer: Arc<dyn BlockProducer<C>>,
    /// Seals blocks.
    pub signer: Arc<dyn BlockSigner<C>>,
    /// Pending transactions (for the instant trigger).
    pub pool: Arc<dyn TransactionPool>,
    /// Wall-clock time for block timestamps.
    pub clock: Arc<dyn Clock>,
}

// Not derived: a derive would ask `C: Clone` of the chain, which is only a name for its types.
impl<C: Chain> Clone for Ports<C> {
    fn clone(&self) -> Self {
        Self {
            reconciliation: Arc::clone(&self.reconciliation),
            importer: Arc::clone(&self.importer),
            producer: Arc::clone(&self.producer),
            signer: Arc::clone(&self.signer),
            pool: Arc::clone(&self.pool),
            clock: Arc::clone(&self.clock),
        }
    }
}

/// What one cycle did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CycleOutcome {
    /// This process produced a block and published it to a quorum; its local commit has begun,
    /// and ends before the commit of any block above it begins. A manual request
    /// ([`ServiceHandle::produce_block`]) is answered once that commit ended.
    Produced {
        /// The new head's height.
        height: BlockHeight,
        /// The new head's id.
        id: BlockId,
        /// How many transactions the block included.
        transactions: usize,
    },
    /// This process imported committed blocks it lacked; it did not produce.
    Imported {
        /// How many blocks were committed (heights already held are skipped, not counted).
        count: usize,
    },
    /// Another process leads.
    Follower,
    /// This process leads but had nothing to produce (instant trigger without transactions, or
    /// a timer cycle of the manual trigger).
    Idle,
    /// The cycle failed at `step`; nothing was committed by the failing step.
    Failed {
        /// `head`, `leader_state`, `history`, `import`, `produce`, `seal`, `verify`, `publish` or
        /// `commit`.
        step: &'static str,
        /// The error, rendered for operators.
        error: String,
    },
}

/// A request from a [`ServiceHandle`].
#[derive(Debug)]
enum Request {
    /// Run a production cycle now and report what it did.
    ProduceBlock(oneshot::Sender<CycleOutcome>),
    /// Release the lease and only follow until the hold-off has passed.
    StepDown {
        hold_off: Duration,
        done: oneshot::Sender<()>,
    },
    /// An operator vouches that no producer holds more than this process's head.
    VouchForHead(oneshot::Sender<()>),
}

/// What woke the loop.
enum Wake {
    /// The commit in flight ended.
    CommitEnded,
    Timer,
    Transactions,
    Request(Request),
}

/// When the loop wakes next.
struct Schedule {
    next_cycle: Instant,
    wake_on_transactions: bool,
}

/// A handle to a running service: observe its status, ask it for a block.
#[derive(Debug, Clone)]
pub struct ServiceHandle {
    status: watch::Receiver<ServiceStatus>,
    requests: mpsc::Sender<Request>,
}

impl ServiceHandle {
    /// The status after the last cycle.
    pub fn status(&self) -> ServiceStatus {
        self.status.borrow().clone()
    }

    /// A receiver that sees every status change.
    pub fn subscribe(&self) -> watch::Receiver<ServiceStatus> {
        self.status.clone()
    }

    /// Asks the service to run a production cycle now (any trigger). The service first imports
    /// what the local chain lacks, then produces if it leads, and answers once the block it
    /// produced is committed (a failed commit is answered as the failed cycle).
    ///
    /// # Errors
    ///
    /// [`ServiceError::Stopped`] when the service no longer runs.
    pub async fn produce_block(&self) -> Result<CycleOutcome, ServiceError> {
        let (reply, outcome) = oneshot::channel();
        self.requests
            .send(Request::ProduceBlock(reply))
            .await
            .map_err(|_| ServiceError::Stopped)?;
        outcome.await.map_err(|_| ServiceError::Stopped)
    }

    /// Asks the service to release the lease and only follow for `hold_off` (at most
    /// [`LONGEST_HOLD_OFF`]; a longer one stands down that long), so another process takes over
    /// (for a rolling upgrade). Returns once the lease is released.
    ///
    /// # Errors
    ///
    /// [`ServiceError::Stopped`] when the service no longer runs.
    pub async fn step_down(&self, hold_off: Duration) -> Result<(), ServiceError> {
        let (done, released) = oneshot::channel();
        self.requests
            .send(Request::StepDown { hold_off, done })
            .await
            .map_err(|_| ServiceError::Stopped)?;
        released.await.map_err(|_| ServiceError::Stopped)
    }

    /// An operator's word that no producer of the fleet holds a block above this process's
    /// head: when the shared log lost blocks (nodes emptied or restored beyond the budget) and
    /// a peer cannot confirm it, the next leadership republishes this head and produces on it.
    /// Check every producer's `GET /blocks/latest` first: vouching for a head below another
    /// producer's forks the chain.
    ///
    /// # Errors
    ///
    /// [`ServiceError::Stopped`] when the service no longer runs.
    pub async fn vouch_for_head(&self) -> Result<(), ServiceError> {
        let (done, noted) = oneshot::channel();
        self.requests
            .send(Request::VouchForHead(done))
            .await
            .map_err(|_| ServiceError::Stopped)?;
        noted.await.map_err(|_| ServiceError::Stopped)
    }
}

/// The longest a [`ServiceHandle::step_down`] stands down: a year, far beyond any upgrade, and
/// representable on every clock (a longer request is not an error, and never becomes none).
pub const LONGEST_HOLD_OFF: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// The block production service for the chain `C`. Construct with [`ProductionService::new`],
/// then drive it with [`ProductionService::run`].
pub struct ProductionService<C: Chain> {
    config: ServiceConfig,
    ports: Ports<C>,
    metrics: ServiceMetrics,
    status: watch::Sender<ServiceStatus>,
    requests: mpsc::Receiver<Request>,
    // Keeps the request channel open while no handle exists, so `recv` never spins on `None`.
    _requests_sender: mpsc::Sender<Request>,
    last_produced_at: Option<Instant>,
    /// While set and in the future, cycles only follow (after a step-down).
    standing_down_until: Option<Instant>,
    /// Since when this leader's attempts at the next height have failed short of a quorum,
    /// with nothing committed since (see `handover`).
    stuck_since: Option<Instant>,
    /// While set, cycles only follow: this process cannot keep its chain current (the reason),
    /// so it does not compete for the lease until it has caught up with the shared log.
    standing_aside: Option<String>,
    /// Where blocks trimmed from the shared log come from; `None` = nowhere.
    history: Option<Arc<dyn BlockHistorySource<C>>>,
    /// An operator vouched that no producer holds more than the local head: the next
    /// leadership that finds the log behind it republishes it without asking the peers.
    head_vouched_by_operator: bool,
    /// What the loop has said in the log, so lasting conditions are said once.
    reporting: reporting::Reporting,
    /// The commit of the last block this process published, while it has not been recorded
    /// as ended: at most one at a time.
    in_flight: Option<pipeline::CommitInFlight<C>>,
}

impl<C: Chain> ProductionService<C> {
    /// Builds the service and its handle and registers the service's metrics. Does no I/O: the
    /// local head is read by the first cycle.
    pub fn new(
        config: ServiceConfig,
        ports: Ports<C>,
        registry: &mut Registry,
    ) -> (Self, ServiceHandle) {
        let (status, status_receiver) = watch::channel(ServiceStatus::starting(
            BlockHeight::GENESIS,
            BlockId::default(),
        ));
        let (requests_sender, requests) = mpsc::channel(16);
        let service = Self {
            config,
            ports,
            metrics: ServiceMetrics::register(registry),
            status,
            requests,
            _requests_sender: requests_sender.clone(),
            last_produced_at: None,
            standing_down_until: None,
            stuck_since: None,
            standing_aside: None,
            history: None,
            head_vouched_by_operator: false,
            reporting: reporting::Reporting::new(),
            in_flight: None,
        };
        let handle = ServiceHandle {
            status: status_receiver,
            requests: requests_sender,
        };
        (service, handle)
    }

    /// Runs the production loop until `shutdown` resolves, then releases the lease (bounded by
    /// the configured release timeout), waits for the commit in flight, if any, and marks the
    /// status stopped.
    pub async fn run<F: Future<Output = ()>>(mut self, shutdown: F) {
        tokio::pin!(shutdown);
        // The embedding process logs its start with its addresses: one line per event.
        debug!(trigger = %self.config.trigger(), "production service started");
        let mut schedule = Schedule {
            next_cycle: Instant::now(),
            wake_on_transactions: false,
        };
        loop {
            let pool = Arc::clone(&self.ports.pool);
            let wake = tokio::select! {
                biased;
                () = &mut shutdown => break,
                Some(request) = self.requests.recv() => Wake::Request(request),
                () = pipeline::until_commit_ended(&mut self.in_flight) => Wake::CommitEnded,
                // A cycle due now runs now: the runtime's timer fires on its next millisecond
                // tick, in which the commit in flight would end and the next block would no
                // longer overlap it. Only cycles that made progress are due at once.
                () = std::future::ready(()), if schedule.next_cycle <= Instant::now() => Wake::Timer,
                () = tokio::time::sleep_until(schedule.next_cycle) => Wake::Timer,
                () = pool.wait_for_pending(), if schedule.wake_on_transactions => Wake::Transactions,
            };
            let outcome = match wake {
                Wake::CommitEnded => {
                    let included = self.transactions_in_flight();
                    match self.finish_commit().await {
                        // The pool no longer counts the block's transactions: transactions
                        // wake an instant leader again (unless the block was empty, which
                        // would spin on transactions that are already committed).
                        None => {
                            schedule.wake_on_transactions |=
                                self.config.trigger() == Trigger::Instant && included > 0;
                            continue;
                        }
                        Some(failed) => failed,
                    }
                }
                Wake::Timer => {
                    let may_produce = self.timer_may_produce();
                    self.cycle(may_produce).await
                }
                Wake::Transactions => {
                    let may_produce = self.timer_may_produce();
                    self.cycle(may_produce).await
                }
                Wake::Request(Request::ProduceBlock(reply)) => {
                    let mut outcome = self.manual_cycles().await;
                    // Answered once the block is committed, so the requester can read it.
                    if let Some(failed) = self.finish_commit().await {
                        outcome = failed;
                    }
                    // The requester may have given up; the block is committed either way.
                    let _ = reply.send(outcome.clone());
                    outcome
                }
                Wake::Request(Request::StepDown { hold_off, done }) => {
                    self.step_down(hold_off).await;
                    let _ = done.send(());
                    CycleOutcome::Follower
                }
                Wake::Request(Request::VouchForHead(done)) => {
                    info!(
                        "an operator vouched for the local head: it is republished if the shared log lost it"
                    );
                    self.head_vouched_by_operator = true;
                    self.standing_down_until = None;
                    self.end_standing_aside();
                    let _ = done.send(());
                    self.cycle(true).await
                }
            };
            let height = self.status.borrow().height;
            self.reporting.cycle_ended(&outcome, height);
            schedule = self.schedule_after(&outcome);
        }
        self.release_on_shutdown().await;
    }

    /// Whether a timer or transaction wake-up may produce: on an interval once the block is
    /// due (a wake-up before that only renews the lease), with pending transactions when
    /// instant (more than the block whose commit is in flight includes, which the pool may
    /// still count), never when manual (timer cycles then only follow and keep the lease).
    fn timer_may_produce(&self) -> bool {
        match self.config.trigger() {
            Trigger::Interval { block_time } => self
                .last_produced_at
                .and_then(|last| last.checked_add(block_time))
                .is_none_or(|due| Instant::now() >= due),
            Trigger::Instant => self.ports.pool.pending_count() > self.transactions_in_flight(),
            Trigger::Manual => false,
        }
    }

    /// Runs cycles for a manual request until one does something other than import.
    async fn manual_cycles(&mut self) -> CycleOutcome {
        let mut outcome = self.cycle(true).await;
        for _ in 1..MAX_CYCLES_PER_MANUAL_REQUEST {
            match outcome {
                CycleOutcome::Imported { count } if count > 0 => outcome = self.cycle(true).await,
                _ => break,
            }
        }
        outcome
    }

    /// Releases the lease and follows without acquiring it until `hold_off` has passed.
    async fn step_down(&mut self, hold_off: Duration) {
        let now = Instant::now();
        let hold_off = hold_off.min(LONGEST_HOLD_OFF);
        // A year past a monotonic clock's reading always fits: `now` is never the fallback.
        self.standing_down_until = Some(now.checked_add(hold_off).unwrap_or(now));
        info!(
            hold_off_ms = duration_millis(hold_off),
            "stepping down: releasing the lease"
        );
        if let Err(error) = self.ports.reconciliation.release().await {
            warn!(error = %error, "lease release for the step-down failed: it will expire on its own");
        }
        self.metrics.is_producing.set(0);
        self.status
            .send_modify(|status| status.role = Role::Follower);
    }

    /// Whether this process is standing down after a step-down request.
    pub(super) fn is_standing_down(&mut self) -> bool {
        match self.standing_down_until {
            Some(until) if Instant::now() < until => true,
            Some(_) => {
                self.standing_down_until = None;
                info!("step-down hold-off over: competing for the lease again");
                false
            }
            None => false,
        }
    }

    /// The retry period plus a random jitter, so followers do not poll in lockstep.
    fn jittered_retry_period(&self) -> Duration {
        let jitter = self.config.retry_jitter();
        let extra = if jitter.is_zero() {
            Duration::ZERO
        } else {
            rand::Rng::gen_range(&mut rand::thread_rng(), Duration::ZERO..=jitter)
        };
        self.config.retry_period().saturating_add(extra)
    }

    /// When to wake next, given what the last cycle did.
    fn schedule_after(&self, outcome: &CycleOutcome) -> Schedule {
        let now = Instant::now();
        let retry = now.checked_add(self.jittered_retry_period()).unwrap_or(now);
        // A leader's lease is renewed in its cycles, so it never waits longer than the renewal
        // period, whatever the block time or the poll interval.
        let renewal = self
            .config
            .lease_renewal()
            .and_then(|period| now.checked_add(period));
        let leader_retry = renewal.map_or(retry, |renewal| retry.min(renewal));
        let trigger = self.config.trigger();
        match outcome {
            // An instant block that included nothing (its transactions were dropped as already
            // committed) must not re-arm the transaction wake-up, or the leader would spin.
            CycleOutcome::Produced {
                transactions: 0, ..
            } if trigger == Trigger::Instant => Schedule {
                next_cycle: leader_retry,
                wake_on_transactions: false,
            },
            // The block's commit runs: the next block comes at once when more transactions
            // than it includes are pending; otherwise transactions wake the leader once the
            // commit ended (until then the pool may still count the block's own).
            CycleOutcome::Produced { .. } if trigger == Trigger::Instant => Schedule {
                next_cycle: if self.timer_may_produce() {
                    now
                } else {
                    leader_retry
                },
                wake_on_transactions: self.in_flight.is_none(),
            },
            CycleOutcome::Produced { .. } | CycleOutcome::Idle => match trigger {
                Trigger::Interval { block_time } => {
                    let due = self
                        .last_produced_at
                        .unwrap_or(now)
                        .checked_add(block_time)
                        .unwrap_or(now);
                    Schedule {
                        next_cycle: renewal.map_or(due, |renewal| due.min(renewal)),
                        wake_on_transactions: false,
                    }
                }
                Trigger::Instant => Schedule {
                    next_cycle: leader_retry,
                    wake_on_transactions: true,
                },
                Trigger::Manual => Schedule {
                    next_cycle: leader_retry,
                    wake_on_transactions: false,
                },
            },
            // More committed blocks may be waiting: look again at once.
            CycleOutcome::Imported { count } if *count > 0 => Schedule {
                next_cycle: now,
                wake_on_transactions: false,
            },
            // A follower, a failure, or an import that committed nothing waits one retry period,
            // so a follower never spins on the coordination nodes.
            CycleOutcome::Imported { .. }
            | CycleOutcome::Follower
            | CycleOutcome::Failed { .. } => Schedule {
                next_cycle: retry,
                wake_on_transactions: false,
            },
        }
    }

    async fn release_on_shutdown(&mut self) {
        // The embedding process tells why it stops; the reconciliation port tells a release
        // of a lease it held. Either at `info` here would tell one event twice.
        debug!("production service stopping: releasing the lease");
        match tokio::time::timeout(
            self.config.release_timeout(),
            self.ports.reconciliation.release(),
        )
        .await
        {
            Ok(Ok(())) => debug!("lease release done"),
            Ok(Err(error)) => {
                warn!(error = %error, "lease release failed: it will expire on its own")
            }
            Err(_) => warn!(
                elapsed_ms = duration_millis(self.config.release_timeout()),
                "lease release timed out: it will expire on its own"
            ),
        }
        // The block is on a quorum already: its commit is never abandoned.
        self.finish_commit_at_shutdown().await;
        self.metrics.is_producing.set(0);
        self.status
            .send_modify(|status| status.role = Role::Stopped);
    }
}

/// A value for a gauge, saturating.
pub(crate) fn gauge_value(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Milliseconds of a duration for log fields, saturating.
pub(crate) fn duration_millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
