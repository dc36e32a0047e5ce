//! The commit pipeline: the local commit of a published block runs while the next block is
//! produced, sealed, verified and published on top of it, one commit at a time.
//!
//! The rules (docs/protocol.md, section 7, "One commit in flight"):
//!
//! - a block's commit begins only once the block is on a quorum (published), and only after the
//!   commit of the block below it ended: commits run one at a time, in height order;
//! - while block h's commit runs, block h + 1 may be produced on h, verified on h and published;
//!   it is committed only after h's commit ended well;
//! - a commit that fails stops the pipeline: nothing above it is committed, and the process
//!   stands aside as for any commit failure, until it has caught up from the shared log, which
//!   holds both blocks;
//! - nothing abandons a commit: a failed or refused publish of the next block, a lost lease, a
//!   step-down or a shutdown let it end (shutdown waits for it), since its block is on a
//!   quorum already.
//!
//! The status and the metrics show a block once its commit ended, never before: what this
//! process reports and serves as its chain is what it committed.
//!
//! The commit is a future the service owns and polls (no task of its own): it is polled once
//! at once, so it starts writing right after the publish, then alongside whatever the service
//! awaits next, and by the loop while it waits for a wake-up.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use poa_ports::{Chain, ImportError, SealedBlockView, Timestamp};
use tokio::time::Instant;
use tracing::{debug, error};

use super::{CycleOutcome, ProductionService, gauge_value};

/// One commit into the local chain, as the importer runs it.
type CommitFuture = Pin<Box<dyn Future<Output = Result<(), ImportError>> + Send>>;

/// A published block whose commit into the local chain has begun, and whose end the service
/// has not recorded yet.
pub(super) struct CommitInFlight<C: Chain> {
    /// The block: while its commit runs, the next block is built and verified on it.
    pub(super) block: C::SealedBlock,
    /// The date its producer was given for it: the next block is dated no earlier.
    pub(super) dated: Timestamp,
    /// The commit itself.
    pub(super) commit: RunningCommit,
}

/// A commit, running or ended.
pub(super) struct RunningCommit {
    started: Instant,
    state: CommitState,
}

enum CommitState {
    Running(CommitFuture),
    Ended {
        result: Result<(), ImportError>,
        elapsed: Duration,
    },
}

/// How a commit ended: its result and how long it ran.
pub(super) struct CommitEnd {
    result: Result<(), ImportError>,
    elapsed: Duration,
}

impl RunningCommit {
    /// Begins `commit`, polling it once at once so it starts writing now rather than at the
    /// service's next await.
    async fn begin(mut commit: CommitFuture) -> Self {
        let started = Instant::now();
        let first = std::future::poll_fn(|context| Poll::Ready(commit.as_mut().poll(context)));
        let state = match first.await {
            Poll::Ready(result) => CommitState::Ended {
                result,
                elapsed: started.elapsed(),
            },
            Poll::Pending => CommitState::Running(commit),
        };
        Self { started, state }
    }

    /// Runs `work` while driving the commit, so the commit progresses and its end is noted
    /// meanwhile. Returns `work`'s output; the commit may still run.
    pub(super) async fn alongside<T>(&mut self, work: impl Future<Output = T>) -> T {
        let mut work = std::pin::pin!(work);
        loop {
            let CommitState::Running(commit) = &mut self.state else {
                return work.await;
            };
            let result = tokio::select! {
                biased;
                output = &mut work => return output,
                result = commit.as_mut() => result,
            };
            self.state = CommitState::Ended {
                result,
                elapsed: self.started.elapsed(),
            };
        }
    }

    /// Resolves once the commit ended (at once if it already has). Dropping it before then
    /// leaves the commit as it was, to be driven on later.
    pub(super) async fn until_ended(&mut self) {
        if let CommitState::Running(commit) = &mut self.state {
            let result = commit.as_mut().await;
            self.state = CommitState::Ended {
                result,
                elapsed: self.started.elapsed(),
            };
        }
    }

    /// Waits for the commit to end, and says how it ended.
    pub(super) async fn end(self) -> CommitEnd {
        match self.state {
            CommitState::Ended { result, elapsed } => CommitEnd { result, elapsed },
            CommitState::Running(commit) => {
                let result = commit.await;
                CommitEnd {
                    result,
                    elapsed: self.started.elapsed(),
                }
            }
        }
    }
}

/// Resolves once the commit in flight ended; never when there is none. What the production
/// loop waits on beside its wake-ups, so a commit's end is recorded while the loop idles.
pub(super) async fn until_commit_ended<C: Chain>(in_flight: &mut Option<CommitInFlight<C>>) {
    match in_flight {
        Some(in_flight) => in_flight.commit.until_ended().await,
        None => std::future::pending().await,
    }
}

impl<C: Chain> ProductionService<C> {
    /// Begins the commit of `block`, which this process just published (dated `dated`), and
    /// reports it produced. No commit may be in flight: the one below it has ended.
    pub(super) async fn begin_commit(
        &mut self,
        block: C::SealedBlock,
        dated: Timestamp,
    ) -> CycleOutcome {
        let importer = Arc::clone(&self.ports.importer);
        let committed = block.clone();
        let commit =
            RunningCommit::begin(Box::pin(async move { importer.commit(committed).await })).await;
        let outcome = CycleOutcome::Produced {
            height: block.height(),
            id: block.id(),
            transactions: block.transaction_count(),
        };
        debug!(height = %block.height(), id = %block.id(), "published block: its local commit began");
        self.in_flight = Some(CommitInFlight {
            block,
            dated,
            commit,
        });
        outcome
    }

    /// Waits for the commit in flight, if any, to end and records it. `Some` with the failed
    /// cycle when it failed: the process then stands aside.
    pub(super) async fn finish_commit(&mut self) -> Option<CycleOutcome> {
        let in_flight = self.in_flight.take()?;
        let end = in_flight.commit.end().await;
        self.record_commit(&in_flight.block, end).await
    }

    /// Records how the commit of `block` ended. A failed commit stands aside (the block is on
    /// a quorum: the chain has it, this process imports it once it caught up) and returns the
    /// failed cycle; nothing above the block may be committed before that.
    pub(super) async fn record_commit(
        &mut self,
        block: &C::SealedBlock,
        end: CommitEnd,
    ) -> Option<CycleOutcome> {
        let height = block.height();
        if let Err(error) = end.result {
            error!(height = %height, error = %error, "published block failed to commit locally");
            return Some(self.stand_aside("commit", &error).await);
        }
        self.record_committed(block, end.elapsed);
        None
    }

    /// Waits for the commit in flight, if any, at shutdown: the lease is released already, so a
    /// failure is only said.
    pub(super) async fn finish_commit_at_shutdown(&mut self) {
        let Some(in_flight) = self.in_flight.take() else {
            return;
        };
        debug!(height = %in_flight.block.height(), "waiting for the local commit in flight before stopping");
        let end = in_flight.commit.end().await;
        match end.result {
            Ok(()) => self.record_committed(&in_flight.block, end.elapsed),
            Err(error) => error!(
                height = %in_flight.block.height(),
                error = %error,
                "published block failed to commit locally"
            ),
        }
    }

    /// Shows a committed block of this process's own in the metrics and the status.
    fn record_committed(&mut self, block: &C::SealedBlock, elapsed: Duration) {
        let height = block.height();
        let id = block.id();
        self.metrics.observe_step("commit", elapsed);
        self.chain_moved_on();
        self.metrics.blocks_produced.inc();
        self.metrics.height.set(gauge_value(height.get()));
        self.status.send_modify(|status| {
            status.height = height;
            status.head_id = id;
            status.blocks_produced = status.blocks_produced.saturating_add(1);
        });
        debug!(height = %height, id = %id, transactions = block.transaction_count(), "produced block");
    }

    /// How many transactions the block whose commit is in flight includes: the pool may still
    /// count them as pending.
    pub(super) fn transactions_in_flight(&self) -> usize {
        self.in_flight
            .as_ref()
            .map_or(0, |in_flight| in_flight.block.transaction_count())
    }
}
