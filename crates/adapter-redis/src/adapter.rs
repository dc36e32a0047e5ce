//! [`RedisReconciliation`]: the `BlockReconciliationPort` over N Redis nodes, composing the
//! lease, the publisher, the reconciler and the anti-entropy sweep, and mapping their errors
//! into the port's error at this boundary. Owns the task tracker of every background task.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use poa_ports::{
    BlockCodec, BlockHeight, BlockReconciliationPort, ChainHead, LeaderState, LeaseStatus,
    NodeStatus, ReconciliationError, SealVerifier, Timestamp,
};
use prometheus_client::registry::Registry;
use tokio_util::task::TaskTracker;

use crate::anti_entropy::AntiEntropy;
use crate::cleanup::NodeRemoval;
use crate::config::RedisConfig;
use crate::epoch_file::EpochFile;
use crate::error::Error;
use crate::lease::{Lease, Role};
use crate::log_read::LogReader;
use crate::membership::{MembershipState, read_and_join, readmit_members};
use crate::metrics::Metrics;
use crate::node::{NodeContext, NodeHandle, connect_nodes};
use crate::publish::{Publisher, QuorumWriter};
use crate::reconcile::Reconciler;
use poa_quorum::Quorum;

/// How many lease TTLs a node's clock reading counts toward the time reference: every cycle
/// of a leader or a follower reads every node's clock, so a reading older than this comes from
/// a node that stopped answering.
const CLOCK_READINGS_KEPT_FOR_TTLS: u32 = 2;

/// How long dropping the adapter lets the background release run.
const DROP_RELEASE_BUDGET: Duration = Duration::from_millis(100);

/// The Redis-backed reconciliation port, for any chain with a codec: it stores each block's
/// encoding under the height and id its header view gives, and counts only blocks the chain's
/// own [`SealVerifier`] accepts. Not `Clone`: dropping it releases the lease.
pub struct RedisReconciliation<C: BlockCodec> {
    nodes: Arc<[NodeHandle]>,
    quorum: Quorum,
    lease: Lease,
    publisher: Publisher,
    reconciler: Reconciler<C>,
    anti_entropy: AntiEntropy<C>,
    verifier: Arc<dyn SealVerifier<C>>,
    /// The membership record this process joined, shared with every node handle.
    membership: Arc<MembershipState>,
    /// This process's owner token: a leader's re-admission is fenced by it.
    token: String,
    metrics: Arc<Metrics>,
    /// How recent a node's clock reading must be to count toward the time reference.
    clock_freshness: Duration,
    tracker: TaskTracker,
}

impl<C: BlockCodec> RedisReconciliation<C> {
    /// Validates `config`, registers the metrics on `registry` when one is given (the `poa_*`
    /// family of `docs/protocol.md`; without one they are kept but exposed nowhere), builds one
    /// client per node and connects them concurrently. Returns within about two node timeouts even when nodes are
    /// down or half-alive: those keep reconnecting in the background and have no vote until
    /// they answer. `verifier` is the chain's own check of a block: reconciliation counts only
    /// blocks of the log that pass it.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an invalid setting, [`Error::Client`] for a URL the client
    /// rejects, [`Error::NoRuntime`] outside a tokio runtime.
    pub async fn connect(
        config: RedisConfig,
        verifier: Arc<dyn SealVerifier<C>>,
        registry: Option<&mut Registry>,
    ) -> Result<Self, Error> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::NoRuntime);
        }
        let config = config.validate()?;
        let epoch_file = config
            .epoch_file
            .as_deref()
            .map(EpochFile::open)
            .transpose()?;
        let metrics = Arc::new(match registry {
            Some(registry) => Metrics::register(registry),
            None => Metrics::register(&mut Registry::default()),
        });
        let tracker = TaskTracker::new();
        let token = format!("{:032x}", rand::random::<u128>());
        let membership = Arc::new(MembershipState::new(
            config.quorum,
            config.budget,
            config.node_timeout,
            Arc::clone(&metrics),
        ));
        let context = Arc::new(NodeContext::new(
            &config,
            token.clone(),
            Arc::clone(&membership),
        ));
        let started = tokio::time::Instant::now();
        let (nodes, connected) = connect_nodes(&config, &context, &metrics, &tracker).await?;
        // Within what is left of the startup bound (two node timeouts): a process that has not
        // joined by then reads again at its first cycle.
        let startup_bound = config.node_timeout.saturating_mul(2);
        let joined = tokio::time::timeout_at(
            started + startup_bound,
            read_and_join(&nodes, &tracker, &membership),
        )
        .await;
        if joined.is_err() {
            tracing::debug!(
                "membership not read within the startup bound: the first cycle reads it"
            );
        }
        tracing::info!(
            connected,
            nodes = nodes.len(),
            quorum = config.quorum.size(),
            "redis reconciliation adapter started"
        );
        if let Some((file, floor)) = &epoch_file {
            tracing::info!(path = %file.path().display(), floor = %floor, "epoch floor recorded by earlier runs");
        }
        let lease = Lease::new(
            &config,
            Arc::clone(&nodes),
            tracker.clone(),
            Arc::clone(&metrics),
            epoch_file,
        );
        let writer = QuorumWriter::new(
            Arc::clone(&nodes),
            config.quorum,
            Arc::clone(lease.state()),
            tracker.clone(),
            Arc::clone(&metrics),
        );
        // One reader, one memory of the refused entries already reported, for both.
        let reader = Arc::new(LogReader::new(
            &config,
            Arc::clone(&nodes),
            tracker.clone(),
            Arc::clone(&metrics),
            Arc::clone(&verifier),
        ));
        Ok(Self {
            membership,
            token,
            metrics: Arc::clone(&metrics),
            reconciler: Reconciler::new(&config, &writer, Arc::clone(&reader)),
            anti_entropy: AntiEntropy::new(&config, &writer, reader),
            publisher: Publisher::new(writer, config.max_entry_bytes),
            verifier,
            clock_freshness: config
                .lease_ttl
                .saturating_mul(CLOCK_READINGS_KEPT_FOR_TTLS),
            quorum: config.quorum,
            nodes,
            lease,
            tracker,
        })
    }

    /// The number of nodes and the quorum size.
    pub fn quorum(&self) -> Quorum {
        self.quorum
    }

    /// Removes, on every node, the entries at `height` that are proven invalid (they do not
    /// decode, or fail the chain's verification) and the index members there that do not
    /// parse: the way out of a height blocked by garbage
    /// ([`poa_ports::ReconciliationError::HeightBlocked`]). Never removes a valid block.
    pub async fn remove_invalid_entries(&self, height: BlockHeight) -> Vec<NodeRemoval> {
        crate::cleanup::remove_invalid_entries(&self.nodes, &self.verifier, height).await
    }

    /// Whether a quorum of nodes gave a clock reading within the last TTL (half the time a
    /// reading counts toward the time reference).
    fn clock_readings_recent(&self) -> bool {
        let recent = self.clock_freshness / CLOCK_READINGS_KEPT_FOR_TTLS;
        let fresh = self
            .nodes
            .iter()
            .filter(|node| node.server_clock_now(recent).is_some())
            .count();
        self.quorum.reached(fresh)
    }

    /// Shows the local validity left on the gauge (0 when not leading).
    fn show_validity(&self) {
        let valid_for = self.lease.state().valid_for().unwrap_or_default();
        self.lease
            .metrics()
            .lease_validity_remaining
            .set(valid_for.as_secs_f64());
    }

    /// Reads the membership again when a node refused it (or none is joined), and, for a
    /// process that may lead, re-admits the members the reading found without their id and
    /// brings forward those that lag. Fails closed while the node list matches no record.
    async fn keep_membership(&self, may_lead: bool) -> Result<(), ReconciliationError> {
        if self.membership.reading_due() {
            read_and_join(&self.nodes, &self.tracker, &self.membership).await;
        }
        if may_lead && self.membership.has_pending() {
            readmit_members(
                &self.nodes,
                &self.tracker,
                &self.membership,
                &self.token,
                &self.metrics,
            )
            .await;
            if self.membership.reading_due() {
                read_and_join(&self.nodes, &self.tracker, &self.membership).await;
            }
        }
        match self.membership.problem() {
            None => Ok(()),
            Some(detail) => {
                self.anti_entropy.not_leading();
                if self.lease.state().is_leading() {
                    self.lease.release().await;
                }
                Err(ReconciliationError::Membership { detail })
            }
        }
    }

    /// How many per-node tasks are still running in the background: the stragglers of
    /// fan-outs that returned at a quorum, anti-entropy steps, connection resets. Every call
    /// this adapter makes to a node outside an awaited operation is one of them, so zero means
    /// that none is in flight (a test that breaks a node's link waits for zero, so the fault
    /// meets only the calls it makes next).
    pub fn background_tasks(&self) -> usize {
        self.tracker.len()
    }

    /// Releases the lease and waits (at most `bound`) for background per-node tasks to end.
    pub async fn shutdown(&self, bound: Duration) {
        self.lease.release().await;
        self.tracker.close();
        let _ = tokio::time::timeout(bound, self.tracker.wait()).await;
    }
}

impl<C: BlockCodec> std::fmt::Debug for RedisReconciliation<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisReconciliation")
            .field("quorum", &self.quorum)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl<C: BlockCodec> BlockReconciliationPort<C> for RedisReconciliation<C> {
    async fn leader_state(
        &self,
        head: ChainHead,
    ) -> Result<LeaderState<C::SealedBlock>, ReconciliationError> {
        self.keep_membership(true).await?;
        // The steady state of a leader: the lease is locally valid beyond the renewal margin and
        // the head is the log's top this leadership knows. No round trip: the write of the next
        // block checks the owner, the epoch and the height where it lands, and a refusal sends
        // this process back to the full path below (docs/protocol.md, "The cheap check and the
        // lease").
        if let Some(generation) = self.lease.held_beyond_margin()
            && self.reconciler.in_sync(head, generation)
        {
            self.lease.metrics().leader_checks_skipped.inc();
            self.anti_entropy.leading(head, generation);
            self.show_validity();
            return Ok(LeaderState::ReconciledLeader);
        }
        // Held throughout if the local validity has not run out before this renewal: then a
        // renewal that succeeds continues the same unbroken tenure, and the cheap check adds
        // nothing, unless the clock readings it also takes (the time reference) are getting
        // old: an idle leader writes none.
        let valid_before = self
            .lease
            .state()
            .valid_for()
            .is_some_and(|left| !left.is_zero());
        let result = match self.lease.role().await {
            Role::Leader { generation } => {
                let result = if valid_before
                    && self.clock_readings_recent()
                    && self.reconciler.in_sync(head, generation)
                {
                    Ok(LeaderState::ReconciledLeader)
                } else {
                    self.reconciler.leader(head, generation).await
                };
                // Only once the local head is the log's: the heights below it are then the
                // committed chain the sweep keeps on a quorum.
                if matches!(result, Ok(LeaderState::ReconciledLeader)) {
                    self.anti_entropy.leading(head, generation);
                }
                result
            }
            Role::Follower => {
                self.anti_entropy.not_leading();
                self.reconciler.follower(head).await
            }
        };
        self.show_validity();
        result.map_err(ReconciliationError::from)
    }

    async fn follower_state(
        &self,
        head: ChainHead,
    ) -> Result<LeaderState<C::SealedBlock>, ReconciliationError> {
        self.keep_membership(false).await?;
        self.reconciler
            .follower(head)
            .await
            .map_err(ReconciliationError::from)
    }

    async fn release(&self) -> Result<(), ReconciliationError> {
        self.lease.release().await;
        Ok(())
    }

    async fn publish_produced_block(
        &self,
        block: &C::SealedBlock,
    ) -> Result<(), ReconciliationError> {
        match self.publisher.publish::<C>(block).await {
            Ok(()) => {
                self.reconciler.published(block);
                Ok(())
            }
            Err(error) => {
                // Refused (fenced, height taken) or unknown: the next leader cycle renews and
                // reads every node before this process produces again.
                self.reconciler.publish_failed();
                Err(ReconciliationError::from(error))
            }
        }
    }

    fn time_reference(&self) -> Option<Timestamp> {
        let fresh_within = self.clock_freshness;
        let mut clocks: Vec<u64> = self
            .nodes
            .iter()
            .filter_map(|node| node.server_clock_now(fresh_within))
            .collect();
        if !self.quorum.reached(clocks.len()) {
            return None;
        }
        clocks.sort_unstable();
        clocks
            .get(clocks.len() / 2)
            .copied()
            .map(Timestamp::from_unix_millis)
    }

    fn lease_status(&self) -> LeaseStatus {
        let state = self.lease.state();
        LeaseStatus {
            epoch: state.epoch(),
            valid_for: state.valid_for(),
            nodes: self
                .nodes
                .iter()
                .map(|node| {
                    let (state, state_reason) = node.state();
                    NodeStatus {
                        node: node.name().to_owned(),
                        state,
                        state_reason,
                        last_outcome: node.last_outcome(),
                        last_error: node.last_error(),
                    }
                })
                .collect(),
            waiting_for: self.reconciler.waiting_for(),
            membership: self.membership.problem(),
        }
    }
}

impl<C: BlockCodec> Drop for RedisReconciliation<C> {
    /// Hands a release bounded by 100 ms to the runtime and returns at once; background
    /// per-node tasks hold node handles, not the adapter, so nothing here waits for them.
    fn drop(&mut self) {
        self.lease.release_in_background(DROP_RELEASE_BUDGET);
        self.tracker.close();
    }
}
