//! One production cycle: ask for this cycle's leader state, then follow, import, or produce.
//!
//! The produce path is the hot path and its order is the safety argument: produce, seal,
//! **verify**, **publish** to a quorum, and only then **commit** locally. Any failure before
//! the publish commits nothing and releases the lease so another process can take over at once.
//! The commit of a published block runs while the next cycle produces, verifies and publishes
//! the block above it (`pipeline`): a cycle that finds a commit in flight builds on that block
//! when it leads and may produce, and otherwise lets the commit end before anything else.
//!
//! A process that cannot keep its chain current (its local store fails, it refuses a block of
//! the shared log, the log holds another chain, or the next height is in no source it can
//! reach) releases the lease and stands aside: it only follows, and competes again once it has
//! caught up. Holding the lease while unable to import would halt the whole fleet.

use poa_ports::{
    BlockHeight, Chain, ChainHead, HeaderView, LeaderState, ParentBlock, ReconciliationError,
    SealedBlockView, Timestamp,
};
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use super::handover::Handover;
use super::pipeline::CommitInFlight;
use super::{CycleOutcome, ProductionService, gauge_value};
use crate::status::Role;

/// A block this process published in this cycle: its commit is next.
struct Published<C: Chain> {
    block: C::SealedBlock,
    /// The date its producer was given.
    dated: Timestamp,
}

impl<C: Chain> ProductionService<C> {
    /// Runs one cycle. `may_produce` is false for timer cycles that must not produce (manual
    /// trigger, instant trigger without transactions): they still follow and keep the lease.
    pub(super) async fn cycle(&mut self, may_produce: bool) -> CycleOutcome {
        if let Some(in_flight) = self.in_flight.take() {
            if may_produce && !self.is_standing_down() && self.standing_aside.is_none() {
                return self.cycle_on_committing(in_flight).await;
            }
            // Following or importing needs the committed head: the commit ends first.
            self.in_flight = Some(in_flight);
            if let Some(failed) = self.finish_commit().await {
                return failed;
            }
        }
        let head = match self.read_committed_head().await {
            Ok(head) => head,
            Err(failed) => return failed,
        };
        if head.height().next().is_none() {
            return self.fail(
                "head",
                &"the chain reached the highest representable height",
            );
        }
        let started = Instant::now();
        let chain_head = ChainHead::of(&head);
        let leader_state = if self.is_standing_down() || self.standing_aside.is_some() {
            self.ports.reconciliation.follower_state(chain_head).await
        } else {
            self.ports.reconciliation.leader_state(chain_head).await
        };
        self.metrics.observe_step("leader_state", started.elapsed());
        self.follow_leader_state(head, leader_state, may_produce)
            .await
    }

    /// A cycle that may produce while the commit of the block below runs: it asks for the
    /// leader state on that block, and when it leads produces, verifies and publishes the next
    /// block on it, driving the commit meanwhile. The commit ends before anything else is
    /// committed; when it fails, the block this cycle published is not committed.
    async fn cycle_on_committing(&mut self, in_flight: CommitInFlight<C>) -> CycleOutcome {
        let CommitInFlight {
            block: parent,
            dated,
            mut commit,
        } = in_flight;
        let started = Instant::now();
        let leader_state = commit
            .alongside(
                self.ports
                    .reconciliation
                    .leader_state(ChainHead::of_block(&parent)),
            )
            .await;
        self.metrics.observe_step("leader_state", started.elapsed());
        if !matches!(leader_state, Ok(LeaderState::ReconciledLeader)) {
            // Not producing: the answer is followed on the committed head, once the commit ended.
            let end = commit.end().await;
            if let Some(failed) = self.record_commit(&parent, end).await {
                return failed;
            }
            let head = match self.read_committed_head().await {
                Ok(head) => head,
                Err(failed) => return failed,
            };
            return self.follow_leader_state(head, leader_state, true).await;
        }
        let published = commit
            .alongside(self.produce_and_publish(ParentBlock::Committing(&parent), dated))
            .await;
        // Published or not, the block below is committed first; if its commit fails, nothing
        // above it is (the block just published is on a quorum: it is imported once caught up).
        let end = commit.end().await;
        if let Some(failed) = self.record_commit(&parent, end).await {
            return failed;
        }
        match published {
            Ok(next) => self.begin_commit(next.block, next.dated).await,
            Err(failed) => failed,
        }
    }

    /// Acts on the leader state a cycle got for the committed `head`: follow, import, handle a
    /// log that lost blocks or a gap, or produce on the head.
    async fn follow_leader_state(
        &mut self,
        head: C::Header,
        leader_state: Result<LeaderState<C::SealedBlock>, ReconciliationError>,
        may_produce: bool,
    ) -> CycleOutcome {
        match leader_state {
            Err(ReconciliationError::HistoryGap { next_height: gap }) => {
                // Far behind: catch up as a follower, never while holding the lease.
                self.release_to_catch_up().await;
                self.catch_up_from_history(head.height(), gap).await
            }
            Err(
                error @ (ReconciliationError::Diverged { .. }
                | ReconciliationError::ConflictingHistory { .. }),
            ) => self.stand_aside("leader_state", &error).await,
            Err(ReconciliationError::LogBehindHead { log_top, .. }) => {
                self.head_above_the_log(head, log_top).await
            }
            Err(error @ ReconciliationError::UnresolvedBacklog { .. }) => {
                // Only a leader repairs: its repair fell short of a quorum.
                let outcome = self.fail("leader_state", &error);
                self.leading_attempt_failed().await;
                outcome
            }
            Err(error) => self.fail("leader_state", &error),
            Ok(LeaderState::ReconciledFollower) => {
                self.chain_moved_on();
                self.rejoin();
                self.set_role(Role::Follower);
                CycleOutcome::Follower
            }
            Ok(LeaderState::UnreconciledBlocks(blocks)) => {
                self.import_blocks(head.height(), blocks).await
            }
            Ok(LeaderState::ReconciledLeader) if may_produce => {
                let dated = head.timestamp();
                match self
                    .produce_and_publish(ParentBlock::Head(&head), dated)
                    .await
                {
                    Ok(published) => self.begin_commit(published.block, published.dated).await,
                    Err(failed) => failed,
                }
            }
            Ok(LeaderState::ReconciledLeader) => {
                self.set_role(Role::Leader);
                CycleOutcome::Idle
            }
        }
    }

    /// Imports committed blocks in height order, skipping heights the local chain already has.
    /// Stops at the first block that fails verification or commit: every later block builds on
    /// it and would fail too, and the next cycle asks again.
    pub(super) async fn import_blocks(
        &mut self,
        local_height: BlockHeight,
        mut blocks: Vec<C::SealedBlock>,
    ) -> CycleOutcome {
        blocks.sort_by_key(SealedBlockView::height);
        self.set_role(Role::Syncing);
        let mut imported: usize = 0;
        for block in blocks {
            if block.height() <= local_height {
                debug!(height = %block.height(), "skipping reconciled block already held locally");
                continue;
            }
            let height = block.height();
            let id = block.id();
            if let Err(error) = self.ports.importer.verify(&block).await {
                self.metrics.blocks_refused.inc();
                warn!(height = %height, id = %id, error = %error, "refused a block from the shared log");
                return self.stand_aside("import", &error).await;
            }
            if let Err(error) = self.ports.importer.commit(block).await {
                return self.stand_aside("import", &error).await;
            }
            imported = imported.saturating_add(1);
            self.chain_moved_on();
            self.metrics.blocks_imported.inc();
            self.status.send_modify(|status| {
                status.height = height;
                status.head_id = id;
                status.blocks_imported = status.blocks_imported.saturating_add(1);
            });
            self.metrics.height.set(gauge_value(height.get()));
            debug!(height = %height, id = %id, "imported committed block");
        }
        CycleOutcome::Imported { count: imported }
    }

    /// Produces, seals, verifies and publishes the block on top of `parent` (dated
    /// `parent_dated`); its commit is the caller's. A failure is the failed cycle, with the
    /// lease released or kept as the step calls for.
    async fn produce_and_publish(
        &mut self,
        parent: ParentBlock<'_, C>,
        parent_dated: Timestamp,
    ) -> Result<Published<C>, CycleOutcome> {
        // The interval is anchored to the start of production, so blocks do not drift later
        // by the time each one takes.
        let cycle_started = Instant::now();
        if let Some(problem) = self.clock_problem(Some(parent_dated)) {
            return Err(self.stand_aside("clock", &problem).await);
        }
        self.set_role(Role::Leader);
        // Never earlier than the parent: timestamps are monotonic along the chain.
        let timestamp = self.ports.clock.now().max(parent_dated);

        let started = Instant::now();
        let block = match self.ports.producer.produce_block(parent, timestamp).await {
            Ok(block) => block,
            Err(error) => return Err(self.fail_and_release("produce", &error).await),
        };
        self.metrics.observe_step("produce", started.elapsed());

        let started = Instant::now();
        let sealed = match self.ports.signer.seal(block) {
            Ok(sealed) => sealed,
            Err(error) => return Err(self.fail_and_release("seal", &error).await),
        };
        self.metrics.observe_step("seal", started.elapsed());

        // Verify before publishing: a block that reaches a quorum must never fail local commit
        // for a validation reason.
        let started = Instant::now();
        let verified = match parent {
            ParentBlock::Head(_) => self.ports.importer.verify(&sealed).await,
            ParentBlock::Committing(committing) => {
                self.ports
                    .importer
                    .verify_on_committing(&sealed, committing)
                    .await
            }
        };
        if let Err(error) = verified {
            error!(height = %sealed.height(), error = %error, "produced block failed verification");
            return Err(self.fail_and_release("verify", &error).await);
        }
        self.metrics.observe_step("verify", started.elapsed());

        let started = Instant::now();
        match self
            .ports
            .reconciliation
            .publish_produced_block(&sealed)
            .await
        {
            Ok(()) => {}
            // A quorum refused the height while the lease held: another process cannot take
            // it over any better, so this one keeps the lease and reconciles again next cycle
            // (releasing would only make the processes take turns at the same refusal).
            Err(error @ ReconciliationError::HeightTaken { .. }) => {
                return Err(self.fail("publish", &error));
            }
            // A quorum refuses this process's credentials: releasing at every cycle would only
            // take a new epoch per cycle. It keeps the lease, and the hand-over period gives
            // another process (whose credentials may be right) its turn.
            Err(error @ ReconciliationError::Denied { .. }) => {
                let outcome = self.fail("publish", &error);
                self.leading_attempt_failed().await;
                return Err(outcome);
            }
            // The lease is released once: by the hand-over when it is due, here otherwise.
            Err(error) => {
                let outcome = self.fail_with("publish", &error, true);
                if self.leading_attempt_failed().await == Handover::NotDue {
                    self.release_after_failed_step().await;
                }
                return Err(outcome);
            }
        }
        self.metrics.observe_step("publish", started.elapsed());
        self.last_produced_at = Some(cycle_started);
        Ok(Published {
            block: sealed,
            dated: timestamp,
        })
    }

    /// Records a failed production step and releases the lease, so a follower can take over
    /// without waiting for the lease to expire.
    pub(super) async fn fail_and_release(
        &mut self,
        step: &'static str,
        error: &(dyn std::fmt::Display + Sync),
    ) -> CycleOutcome {
        let outcome = self.fail_with(step, error, true);
        self.release_after_failed_step().await;
        outcome
    }

    /// Releases the lease after a failed production step; a failed release is only logged
    /// (the lease expires on its own).
    async fn release_after_failed_step(&mut self) {
        if let Err(release_error) = self.ports.reconciliation.release().await {
            warn!(error = %release_error, "lease release after a failed production step failed");
        }
    }

    /// Records a failed cycle after which this process cannot keep its chain current: it
    /// releases the lease (if it competes for it) and stands aside, only following, until a
    /// cycle finds it caught up with the shared log. Each reason is said once when it starts,
    /// in the log, the status and a metric; the failure counter carries the repetitions.
    pub(super) async fn stand_aside(
        &mut self,
        step: &'static str,
        error: &(dyn std::fmt::Display + Sync),
    ) -> CycleOutcome {
        let competing = self.standing_aside.is_none();
        let outcome = self.fail_with(step, error, competing);
        if competing && let Err(release_error) = self.ports.reconciliation.release().await {
            warn!(error = %release_error, "lease release for standing aside failed: it will expire on its own");
        }
        let reason = format!("{step}: {error}");
        if self.standing_aside.as_deref() != Some(reason.as_str()) {
            error!(
                step,
                error = %error,
                "cannot keep the local chain current: standing aside from the lease until caught up"
            );
            self.metrics.standing_aside.set(1);
            self.status
                .send_modify(|status| status.standing_aside = Some(reason.clone()));
            self.standing_aside = Some(reason);
        }
        outcome
    }

    /// Releases the lease before catching up from a history source, so a far-behind process
    /// never holds it through a long catch-up; it stands aside until caught up.
    async fn release_to_catch_up(&mut self) {
        if self.standing_aside.is_some() {
            return;
        }
        let reason = "catching up: the next height is no longer in the shared log".to_owned();
        info!("far behind the shared log: releasing the lease while catching up");
        if let Err(error) = self.ports.reconciliation.release().await {
            warn!(error = %error, "lease release for the catch-up failed: it will expire on its own");
        }
        self.metrics.standing_aside.set(1);
        self.status
            .send_modify(|status| status.standing_aside = Some(reason.clone()));
        self.standing_aside = Some(reason);
    }

    /// Why this process must not date a block now, if it must not: its clock is further from
    /// the coordination nodes' than the allowed skew, or the block it builds on is dated
    /// (`parent_dated`) beyond its clock plus the skew.
    fn clock_problem(&self, parent_dated: Option<Timestamp>) -> Option<String> {
        let skew = self.config.max_clock_skew()?;
        let skew_millis = u64::try_from(skew.as_millis()).unwrap_or(u64::MAX);
        let now = self.ports.clock.now().as_unix_millis();
        if let Some(reference) = self.ports.reconciliation.time_reference() {
            let reference = reference.as_unix_millis();
            if now.abs_diff(reference) > skew_millis {
                let direction = if now > reference {
                    "ahead of"
                } else {
                    "behind"
                };
                return Some(format!(
                    "the local clock is {} ms {direction} the coordination nodes' clocks (at most {skew_millis} ms allowed): fix the clock (NTP)",
                    now.abs_diff(reference)
                ));
            }
        }
        let head = parent_dated?.as_unix_millis();
        (head > now.saturating_add(skew_millis)).then(|| {
            format!(
                "the chain's head is dated {} ms ahead of the local clock (at most {skew_millis} ms allowed)",
                head.saturating_sub(now)
            )
        })
    }

    /// Ends standing aside once a follower cycle finds the chain caught up and the clock sane,
    /// and any hold-off that came with the reason is over.
    fn rejoin(&mut self) {
        if self.standing_aside.is_some()
            && (self.clock_problem(None).is_some()
                || self
                    .standing_down_until
                    .is_some_and(|until| Instant::now() < until))
        {
            return;
        }
        if self.standing_aside.is_some() {
            info!("caught up with the shared log: competing for the lease again");
            self.end_standing_aside();
        }
    }

    /// Competes for the lease again: forgets why it stood aside.
    pub(super) fn end_standing_aside(&mut self) {
        if self.standing_aside.take().is_some() {
            self.metrics.standing_aside.set(0);
            self.status
                .send_modify(|status| status.standing_aside = None);
        }
    }

    /// Records a failed cycle that keeps the lease.
    pub(super) fn fail(
        &mut self,
        step: &'static str,
        error: &dyn std::fmt::Display,
    ) -> CycleOutcome {
        self.fail_with(step, error, false)
    }

    /// Records a failed cycle: metrics, status and a log line saying whether the lease is being
    /// given up because of it.
    fn fail_with(
        &mut self,
        step: &'static str,
        error: &dyn std::fmt::Display,
        releasing_lease: bool,
    ) -> CycleOutcome {
        self.metrics.count_failure(step);
        let rendered = error.to_string();
        self.reporting.failed(step, &rendered, releasing_lease);
        self.status.send_modify(|status| {
            status.role = Role::Degraded;
            status.last_error = Some(format!("{step}: {rendered}"));
        });
        self.metrics.is_producing.set(0);
        CycleOutcome::Failed {
            step,
            error: rendered,
        }
    }

    pub(super) fn set_role(&mut self, role: Role) {
        self.metrics
            .is_producing
            .set(i64::from(role == Role::Leader));
        self.status.send_modify(|status| {
            status.role = role;
            if role != Role::Degraded {
                status.last_error = None;
            }
        });
    }

    /// The committed head, recorded in the status and the metrics; when it cannot be read the
    /// process stands aside, and `Err` is that cycle's outcome.
    async fn read_committed_head(&mut self) -> Result<C::Header, CycleOutcome> {
        match self.ports.importer.latest_header().await {
            Ok(head) => {
                self.record_head(&head);
                Ok(head)
            }
            Err(error) => Err(self.stand_aside("head", &error).await),
        }
    }

    fn record_head(&mut self, head: &C::Header) {
        let height = head.height();
        let id = head.id();
        self.metrics.height.set(gauge_value(height.get()));
        self.status.send_if_modified(|status| {
            let changed = status.height != height || status.head_id != id;
            status.height = height;
            status.head_id = id;
            changed
        });
    }
}
