//! One Redis node: its fred client (standalone, never a cluster client), the bounded call of
//! each script, and the per-node bookkeeping (metrics, last outcome, connection reset).
//!
//! Every command is bounded twice: by fred's client-wide default command timeout (which also
//! stops fred from writing a command that is still queued once it timed out) and by an outer
//! `tokio::time::timeout` (fred 10's `eval`/`evalsha` ignore per-call options). Commands are
//! never re-sent (`max_command_attempts = 1`): a re-sent promote would `INCR` twice. A timeout
//! or transport error resets the connection in the background; a domain refusal keeps it.
//! This module decides nothing about quorums: it returns one typed outcome per call.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use fred::bytes::Bytes;
use fred::clients::Client;
use fred::interfaces::{ClientLike, EventInterface, LuaInterface};
use fred::types::{ConnectHandle, Value};
use poa_ports::{BlockHeight, BlockId, Epoch, NodeOutcome, NodeState};
use tokio_util::task::TaskTracker;

use crate::config::{Keys, RedisSecurity, ValidatedConfig, redact_url};
use crate::error::Error;
use crate::membership::MembershipState;
use crate::metrics::{Metrics, NodeLabels, NodeOperationLabels};
use crate::scripts::{
    self, CallError, HeightsRead, LuaScript, NodeError, OwnerOutcome, PromoteOutcome,
    ReleaseOutcome, SCRIPTS, StreamRead, WriteOutcome,
};
use poa_quorum::NodeIndex;

mod call_class;
mod client_config;
mod errors;
mod fleet;
mod identity;
mod membership;
mod reports;
mod state;

use call_class::CallClass;
use client_config::is_refusal;
pub use client_config::node_client;
use errors::ErrorNotes;
pub(crate) use fleet::{DetachedFleet, connect_nodes};
pub(crate) use identity::IdentityCheck;
use identity::ServerIdentity;
use reports::{LatestHeight, ServerClock};
use state::NodeHealth;

/// What every node handle needs to build script arguments, shared by all of them.
#[derive(Debug)]
pub(crate) struct NodeContext {
    pub(crate) keys: Keys,
    /// This process's owner token (random per process start).
    pub(crate) token: String,
    pub(crate) lease_ttl: Duration,
    pub(crate) node_timeout: Duration,
    pub(crate) stream_max_len: u64,
    pub(crate) index_retention: u64,
    /// The largest entry data a read carries ([`crate::RedisConfig::max_entry_bytes`]).
    pub(crate) max_entry_bytes: u64,
    pub(crate) security: RedisSecurity,
    /// The membership this process joined: every checked script carries it.
    pub(crate) membership: Arc<MembershipState>,
}

impl NodeContext {
    pub(crate) fn new(
        config: &ValidatedConfig,
        token: String,
        membership: Arc<MembershipState>,
    ) -> Self {
        Self {
            keys: config.keys.clone(),
            token,
            lease_ttl: config.lease_ttl,
            node_timeout: config.node_timeout,
            stream_max_len: config.stream_max_len,
            index_retention: config.index_retention,
            max_entry_bytes: config.max_entry_bytes,
            security: config.security.clone(),
            membership,
        }
    }

    fn ttl_millis(&self) -> i64 {
        i64::try_from(self.lease_ttl.as_millis()).unwrap_or(i64::MAX)
    }
}

/// A block to write, encoded once and shared by every node's task.
#[derive(Debug, Clone)]
pub(crate) struct BlockWrite {
    pub(crate) epoch: Epoch,
    pub(crate) height: BlockHeight,
    pub(crate) id_hex: String,
    pub(crate) data: Bytes,
    /// Per node, the block this write replaces there (a repair's plan), if any.
    pub(crate) replacing: Vec<(NodeIndex, String)>,
}

impl BlockWrite {
    pub(crate) fn new(epoch: Epoch, height: BlockHeight, id: BlockId, data: Bytes) -> Self {
        Self {
            epoch,
            height,
            id_hex: id.to_hex(),
            data,
            replacing: Vec::new(),
        }
    }

    /// The same write, replacing `replacing`'s block on each of its nodes.
    pub(crate) fn replacing(mut self, replacing: &[(NodeIndex, BlockId)]) -> Self {
        self.replacing = replacing
            .iter()
            .map(|(node, id)| (*node, id.to_hex()))
            .collect();
        self
    }

    /// The block this write replaces on `node`, as the script's argument (empty for none).
    fn replaces_on(&self, node: NodeIndex) -> &str {
        self.replacing
            .iter()
            .find(|(index, _)| *index == node)
            .map_or("", |(_, id)| id.as_str())
    }
}

/// One Redis node. Shared as `Arc<RedisNode>` by the adapter and by per-node background tasks,
/// which therefore never hold the adapter.
#[derive(Debug)]
pub(crate) struct RedisNode {
    index: NodeIndex,
    name: String,
    client: Client,
    context: Arc<NodeContext>,
    metrics: Arc<Metrics>,
    tracker: TaskTracker,
    last_outcome: AtomicU8,
    /// What failing operations answered, until they succeed again.
    errors: ErrorNotes,
    /// The node's state (ok, timed out, refused, unreachable) and why.
    health: NodeHealth,
    resetting: Arc<AtomicBool>,
    connection_task: Mutex<Option<ConnectHandle>>,
    clock: ServerClock,
    /// The highest height the node reported storing (its last `read_latest`).
    latest: LatestHeight,
    /// The server's `run_id`, learnt at the first connection and checked again after
    /// reconnections.
    identity: ServerIdentity,
}

/// A node as background tasks hold it.
pub(crate) type NodeHandle = Arc<RedisNode>;

impl RedisNode {
    /// Builds the node's client without connecting.
    pub(crate) fn build(
        index: NodeIndex,
        url: &str,
        context: Arc<NodeContext>,
        metrics: Arc<Metrics>,
        tracker: TaskTracker,
    ) -> Result<Self, Error> {
        let name = redact_url(url);
        let client = client_config::build_client(
            url,
            &context.security,
            context.node_timeout,
            context.lease_ttl,
        )?;
        let identity = ServerIdentity::new(&client);
        let health = NodeHealth::new(&name, url, &client, &metrics);
        Ok(Self {
            index,
            name,
            client,
            context,
            metrics,
            tracker,
            last_outcome: AtomicU8::new(0),
            errors: ErrorNotes::default(),
            health,
            resetting: Arc::new(AtomicBool::new(false)),
            connection_task: Mutex::new(None),
            clock: ServerClock::default(),
            latest: LatestHeight::default(),
            identity,
        })
    }

    /// Starts the connection task and waits at most `bound` for the first connection. A node
    /// that is not connected by then keeps reconnecting in the background and simply has no
    /// vote until it is.
    pub(crate) async fn connect_within(&self, bound: Duration) -> bool {
        match self.first_connection(bound).await {
            FirstConnection::Connected => true,
            FirstConnection::Refused(error) => {
                // Retrying cannot help until the settings or the server change: the node's
                // state says so loudly, with the reason, as it does for a refusal later on.
                tracing::debug!(node = %self.name, error = %error, "redis node refused the first connection");
                self.health.state();
                false
            }
            FirstConnection::NotYet(error) => {
                tracing::warn!(node = %self.name, error = ?error, "redis node not connected at startup");
                false
            }
        }
    }

    /// Starts the connection task and waits at most `bound` for the first connection, telling
    /// a refusal that needs the operator (certificate, credentials, permissions) from a node
    /// that is merely not reachable yet.
    pub(crate) async fn first_connection(&self, bound: Duration) -> FirstConnection {
        // Subscribed before connecting: with a reconnect policy fred reports a failed attempt
        // only as an error event, never through `wait_for_connect`.
        let mut errors = self.client.error_rx();
        let task = self.client.connect();
        *self
            .connection_task
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(task);
        let mut last_error = None;
        let deadline_at = tokio::time::Instant::now() + bound;
        let deadline = tokio::time::sleep_until(deadline_at);
        tokio::pin!(deadline);
        let connected = self.client.wait_for_connect();
        tokio::pin!(connected);
        loop {
            tokio::select! {
                result = &mut connected => {
                    return match result {
                        Ok(()) => {
                            // Within the same bound: a node that connected but answers slowly
                            // must not hold up startup. Scripts not loaded by then are loaded
                            // on their first NOSCRIPT.
                            let identify_and_load = async {
                                self.identity.record(self.server_run_id().await);
                                self.load_scripts().await;
                            };
                            if tokio::time::timeout_at(deadline_at, identify_and_load)
                                .await
                                .is_err()
                            {
                                tracing::debug!(node = %self.name, "scripts not preloaded within the startup bound");
                            }
                            FirstConnection::Connected
                        }
                        Err(error) => FirstConnection::NotYet(Some(error)),
                    };
                }
                event = errors.recv() => match event {
                    Ok((error, _)) if is_refusal(&error) => return FirstConnection::Refused(error),
                    Ok((error, _)) => last_error = Some(error),
                    // Lagged or closed: the deadline or the connection still decides.
                    Err(_) => {}
                },
                () = &mut deadline => return FirstConnection::NotYet(last_error),
            }
        }
    }

    /// Loads every script up front, so the first write to this node is one round trip and
    /// a write whose reply is lost cannot have been a NOSCRIPT that never ran. Best effort:
    /// a node that lost its scripts later still answers NOSCRIPT and is reloaded then.
    async fn load_scripts(&self) {
        for script in SCRIPTS.all() {
            if let Err(error) = self
                .bounded(self.client.script_load::<Value, _>(script.lua()))
                .await
            {
                tracing::debug!(node = %self.name, script = script.name, error = ?error, "script not preloaded");
                return;
            }
        }
    }

    pub(crate) fn index(&self) -> NodeIndex {
        self.index
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The outcome of the last completed call, for the status page.
    pub(crate) fn last_outcome(&self) -> NodeOutcome {
        CallClass::from_code(self.last_outcome.load(Ordering::Relaxed))
    }

    /// The node's state and why, from its calls and its client's connection attempts.
    pub(crate) fn state(&self) -> (NodeState, Option<String>) {
        self.health.state()
    }

    /// Whether the node answered the last completed call (a refusal is an answer), or was not
    /// called yet: neither a timeout nor a failure.
    pub(crate) fn answered_last_call(&self) -> bool {
        !matches!(
            self.last_outcome(),
            NodeOutcome::TimedOut | NodeOutcome::Failed
        )
    }

    /// What the node answered the last time an operation failed, per family of operations,
    /// until one of that family succeeds again.
    pub(crate) fn last_error(&self) -> Option<String> {
        self.errors.summary()
    }

    /// Whether this process's token holds the lease on this node; if it does, its TTL is
    /// re-armed (the leader's renewal).
    pub(crate) async fn renew_lease(&self) -> OwnerOutcome {
        let scripts = &*SCRIPTS;
        let keys = vec![self.context.keys.lease.clone()];
        let args = vec![
            Value::from(self.context.token.as_str()),
            Value::Integer(self.context.ttl_millis()),
        ];
        let outcome =
            scripts::decode_renew_lease(self.call(&scripts.renew_lease, keys, args).await);
        let class = match &outcome {
            OwnerOutcome::Owner | OwnerOutcome::NotOwner => CallClass::Ok,
            OwnerOutcome::Unavailable(error) => self.failed(error),
        };
        self.observe(scripts.renew_lease.name, class);
        outcome
    }

    /// Takes the lease on this node for a new leadership, or continues this process's current
    /// one; `floor` is the highest epoch this process led with before it.
    pub(crate) async fn promote(&self, floor: Epoch) -> PromoteOutcome {
        let scripts = &*SCRIPTS;
        let keys = vec![
            self.context.keys.lease.clone(),
            self.context.keys.epoch.clone(),
        ];
        let args = vec![
            Value::from(self.context.token.as_str()),
            Value::Integer(self.context.ttl_millis()),
            Value::from(floor.get().to_string()),
        ];
        let outcome = scripts::decode_promote(self.call(&scripts.promote, keys, args).await);
        let class = match &outcome {
            PromoteOutcome::Granted(_) => CallClass::Ok,
            PromoteOutcome::HeldByAnother => CallClass::Refused,
            PromoteOutcome::Unavailable(error) => self.failed(error),
        };
        self.observe(scripts.promote.name, class);
        outcome
    }

    /// Deletes the lease on this node if this process's token holds it.
    pub(crate) async fn release(&self) -> ReleaseOutcome {
        let scripts = &*SCRIPTS;
        let keys = vec![self.context.keys.lease.clone()];
        let args = vec![Value::from(self.context.token.as_str())];
        let outcome =
            scripts::decode_release(self.call_unchecked(&scripts.release, keys, args).await);
        let class = match &outcome {
            ReleaseOutcome::Released | ReleaseOutcome::NotOwner => CallClass::Ok,
            ReleaseOutcome::Failed(error) => self.failed(error),
        };
        self.observe(scripts.release.name, class);
        outcome
    }

    /// The fenced, height-unique write of one block; an appended block's entry id also
    /// records how far the server's clock is from this process's.
    pub(crate) async fn write_block(&self, block: &BlockWrite) -> WriteOutcome {
        let scripts = &*SCRIPTS;
        let keys = &self.context.keys;
        let keys = vec![
            keys.lease.clone(),
            keys.epoch.clone(),
            keys.stream.clone(),
            keys.index.clone(),
            keys.trim_floor.clone(),
        ];
        let args = vec![
            Value::from(block.epoch.get().to_string()),
            Value::from(self.context.token.as_str()),
            Value::from(block.height.get().to_string()),
            Value::from(block.id_hex.as_str()),
            Value::Bytes(block.data.clone()),
            Value::Integer(self.context.ttl_millis()),
            Value::from(self.context.stream_max_len.to_string()),
            Value::from(self.context.index_retention.to_string()),
            Value::from(block.replaces_on(self.index)),
        ];
        let started = Instant::now();
        let reply = self.call(&scripts.write_block, keys, args).await;
        // The new entry's id starts with the server's clock: a leader that reads nothing per
        // block keeps its clock readings (the time reference) fresh through its writes.
        if let Some(server_millis) = reply.as_ref().ok().and_then(scripts::entry_id_millis) {
            self.clock.record(server_millis);
        }
        let outcome = scripts::decode_write_block(reply);
        self.metrics
            .write_block_duration
            .observe(started.elapsed().as_secs_f64());
        let metrics = &self.metrics;
        let class = match &outcome {
            WriteOutcome::Written => {
                metrics.write_block_success.inc();
                CallClass::Ok
            }
            WriteOutcome::AlreadyStored => {
                metrics.write_block_already_stored.inc();
                CallClass::Ok
            }
            WriteOutcome::HeightTaken => {
                metrics.write_block_height_exists.inc();
                tracing::debug!(node = %self.name, height = %block.height, "height holds another block");
                CallClass::Refused
            }
            WriteOutcome::HeightTrimmed => {
                metrics.write_block_height_trimmed.inc();
                tracing::debug!(node = %self.name, height = %block.height, "height is below the heights the node keeps");
                CallClass::Refused
            }
            WriteOutcome::Fenced { reason } => {
                // One node that fences every write (another owner's key there) would log once
                // per block: the counter carries it, and a fenced publish is logged where the
                // quorum decides.
                metrics.write_block_fencing_error.inc();
                tracing::debug!(node = %self.name, height = %block.height, reason = %reason, "write fenced");
                CallClass::Refused
            }
            WriteOutcome::Failed(error) => {
                metrics.write_block_error.inc();
                self.failed(error)
            }
        };
        self.observe(scripts.write_block.name, class);
        outcome
    }

    /// The highest height stored on this node; records how far the server's clock is from
    /// this process's.
    pub(crate) async fn read_latest(&self) -> Result<Option<BlockHeight>, NodeError> {
        self.read_latest_passing_over(&[]).await
    }

    /// The highest height stored on this node, passing over the index members of the stream
    /// entries `invalid` names (entries a full read found invalid); records how far the
    /// server's clock is from this process's.
    pub(crate) async fn read_latest_passing_over(
        &self,
        invalid: &[String],
    ) -> Result<Option<BlockHeight>, NodeError> {
        let scripts = &*SCRIPTS;
        let keys = vec![self.context.keys.index.clone()];
        let args = invalid
            .iter()
            .map(|entry| Value::from(entry.as_str()))
            .collect();
        let outcome =
            scripts::decode_read_latest(self.call(&scripts.read_latest, keys, args).await);
        let class = match &outcome {
            Ok(read) => {
                self.clock.record(read.server_millis);
                self.latest.record(read.height);
                CallClass::Ok
            }
            Err(error) => self.failed(error),
        };
        self.observe(scripts.read_latest.name, class);
        outcome.map(|read| read.height)
    }

    /// The highest height this node reported at its last `read_latest`, if that was within
    /// `fresh_within` (`Some(None)`: it was empty).
    pub(crate) fn latest_height(&self, fresh_within: Duration) -> Option<Option<BlockHeight>> {
        self.latest.height(fresh_within)
    }

    /// This node's clock now (milliseconds since the Unix epoch), extrapolated by the monotonic
    /// clock from its last answer that carried it, if that was within `fresh_within`.
    pub(crate) fn server_clock_now(&self, fresh_within: Duration) -> Option<u64> {
        self.clock.now(fresh_within)
    }

    /// The server's `run_id` as last reported.
    pub(crate) fn run_id(&self) -> Option<String> {
        self.identity.run_id()
    }

    /// Whether the client connected again since the last call (the first connection counts):
    /// the server may have restarted. Never waits.
    pub(crate) fn connected_since_last_asked(&self) -> bool {
        self.identity.connected_since_last_asked()
    }

    /// Fetches the server's `run_id` again (bounded) and compares it with the one reported
    /// before: a restarted server, emptied or restored from a snapshot, reports a new one.
    pub(crate) async fn check_identity(&self) -> IdentityCheck {
        self.identity.record(self.server_run_id().await)
    }

    /// The server's `run_id` (`INFO server`), if it answers: what tells two URLs of one server
    /// apart.
    pub(crate) async fn server_run_id(&self) -> Option<String> {
        let info = self
            .bounded(
                self.client
                    .info::<String>(Some(fred::types::InfoKind::Server)),
            )
            .await
            .ok()?;
        info.lines()
            .find_map(|line| line.strip_prefix("run_id:"))
            .map(|id| id.trim().to_owned())
    }

    /// Stream entries at or above `min_height`, lowest heights first, at most `max_entries`,
    /// with the node's highest entry and how far the read reaches.
    pub(crate) async fn read_from(
        &self,
        min_height: BlockHeight,
        max_entries: u64,
    ) -> Result<StreamRead, NodeError> {
        let scripts = &*SCRIPTS;
        let keys = vec![
            self.context.keys.stream.clone(),
            self.context.keys.index.clone(),
        ];
        let args = vec![
            Value::from(min_height.get().to_string()),
            Value::from(max_entries.to_string()),
            Value::from(self.context.max_entry_bytes.to_string()),
        ];
        let outcome = scripts::decode_read_from(self.call(&scripts.read_from, keys, args).await);
        let class = match &outcome {
            Ok(read) => {
                self.clock.record(read.server_millis);
                CallClass::Ok
            }
            Err(error) => self.failed(error),
        };
        self.observe(scripts.read_from.name, class);
        outcome
    }

    /// Which block this node's heights index names at each height from `lowest` to
    /// `highest` (no payloads), examining at most `examine_at_most` members.
    pub(crate) async fn read_heights(
        &self,
        lowest: BlockHeight,
        highest: BlockHeight,
        examine_at_most: u64,
    ) -> Result<HeightsRead, NodeError> {
        let scripts = &*SCRIPTS;
        let keys = vec![self.context.keys.index.clone()];
        let args = vec![
            Value::from(lowest.get().to_string()),
            Value::from(highest.get().to_string()),
            Value::from(examine_at_most.to_string()),
        ];
        let outcome =
            scripts::decode_read_heights(self.call(&scripts.read_heights, keys, args).await);
        let class = match &outcome {
            Ok(_) => CallClass::Ok,
            Err(error) => self.failed(error),
        };
        self.observe(scripts.read_heights.name, class);
        outcome
    }

    /// Removes the stream entries `entry_ids` at `height`, and the index members there that do
    /// not parse. Only for entries proven invalid.
    pub(crate) async fn remove_entries(
        &self,
        height: BlockHeight,
        entry_ids: &[String],
    ) -> Result<u64, NodeError> {
        let scripts = &*SCRIPTS;
        let keys = vec![
            self.context.keys.stream.clone(),
            self.context.keys.index.clone(),
        ];
        let args = std::iter::once(Value::from(height.get().to_string()))
            .chain(entry_ids.iter().map(|id| Value::from(id.as_str())))
            .collect();
        let outcome =
            scripts::decode_remove_entries(self.call(&scripts.remove_entries, keys, args).await);
        let class = match &outcome {
            Ok(_) => CallClass::Ok,
            Err(error) => self.failed(error),
        };
        self.observe(scripts.remove_entries.name, class);
        outcome
    }

    /// Runs a script of the protocol behind the membership check: the server id this process
    /// expects here and the digest of the record it joined go first (empty while it joined
    /// none, which every node refuses).
    async fn call(
        &self,
        script: &LuaScript,
        keys: Vec<String>,
        args: Vec<Value>,
    ) -> Result<Value, CallError> {
        let (expected_id, digest) = self.context.membership.credentials(self.index);
        let membership_keys = &self.context.keys;
        let keys = [
            membership_keys.server_id.clone(),
            membership_keys.membership.clone(),
        ]
        .into_iter()
        .chain(keys)
        .collect();
        let args = [Value::from(expected_id), Value::from(digest)]
            .into_iter()
            .chain(args)
            .collect();
        self.call_unchecked(script, keys, args).await
    }

    /// Runs a script by SHA, loading it once more if the node lost it (a restart or
    /// `SCRIPT FLUSH`). Every command is individually bounded.
    async fn call_unchecked(
        &self,
        script: &LuaScript,
        keys: Vec<String>,
        args: Vec<Value>,
    ) -> Result<Value, CallError> {
        let sha = script.script.sha1().clone();
        let first = self
            .bounded(
                self.client
                    .evalsha::<Value, _, _, _>(sha.clone(), keys.clone(), args.clone()),
            )
            .await;
        match first {
            Err(CallError::Client(error)) if scripts::is_noscript(&error) => {
                tracing::debug!(node = %self.name, script = script.name, "reloading script");
                self.bounded(self.client.script_load::<Value, _>(script.lua()))
                    .await?;
                self.bounded(self.client.evalsha::<Value, _, _, _>(sha, keys, args))
                    .await
            }
            other => other,
        }
    }

    /// Bounds one client call by the outer guard. fred's own command timeout (the node
    /// timeout) fires first; the guard only catches a client that does not honour it.
    async fn bounded<T>(
        &self,
        call: impl Future<Output = Result<T, fred::error::Error>>,
    ) -> Result<T, CallError> {
        let guard = self.context.node_timeout.saturating_add(OUTER_GUARD_MARGIN);
        match tokio::time::timeout(guard, call).await {
            Ok(Ok(value)) => Ok(value),
            // fred's own command timeout is the node timeout: say so, rather than "no reply
            // within 0ns".
            Ok(Err(error)) if *error.kind() == fred::error::ErrorKind::Timeout => {
                Err(CallError::TimedOut(self.context.node_timeout))
            }
            Ok(Err(error)) => Err(CallError::Client(error)),
            Err(_) => Err(CallError::TimedOut(guard)),
        }
    }

    /// Classifies a failed call and resets the connection when the failure calls for it.
    fn failed(&self, error: &NodeError) -> CallClass {
        tracing::debug!(node = %self.name, error = %error, "redis node call failed");
        if error.is_membership() {
            self.metrics
                .membership_refusals
                .get_or_create(&NodeLabels {
                    node: self.name.clone(),
                })
                .inc();
            self.context.membership.refused_at(self.index);
        }
        self.errors.failing(error);
        self.health.failing(error);
        if error.needs_reset() {
            self.reset_connection();
        }
        self.health.class_of(error)
    }

    fn observe(&self, operation: &'static str, class: CallClass) {
        self.last_outcome.store(class.code(), Ordering::Relaxed);
        self.errors.note(&self.name, operation, class);
        self.health.note(operation, class);
        self.metrics
            .node_operations
            .get_or_create(&NodeOperationLabels {
                node: self.name.clone(),
                operation,
                outcome: class.label(),
            })
            .inc();
    }

    /// Drops the node's connection and reconnects in the background, so the next call does
    /// not queue behind a connection that stopped answering. At most one reset runs at a time.
    fn reset_connection(&self) {
        if self.resetting.swap(true, Ordering::AcqRel) {
            return;
        }
        self.metrics.connection_reset.inc();
        tracing::debug!(node = %self.name, "resetting redis node connection");
        let client = self.client.clone();
        let resetting = Arc::clone(&self.resetting);
        let bound = self.context.node_timeout.saturating_mul(2);
        self.tracker.spawn(async move {
            let _ = tokio::time::timeout(bound, client.force_reconnection()).await;
            resetting.store(false, Ordering::Release);
        });
    }
}

impl Drop for RedisNode {
    /// The last handle is gone: stop the connection task, which closes the socket.
    fn drop(&mut self) {
        if let Some(task) = self
            .connection_task
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            task.abort();
        }
    }
}

/// How the first connection attempt to a node ended.
#[derive(Debug)]
pub(crate) enum FirstConnection {
    /// Connected, handshake done.
    Connected,
    /// The node refused this client: certificate, credentials or permissions. It keeps being
    /// retried, but only a change of settings or of the server can help.
    Refused(fred::error::Error),
    /// Not reachable within the bound (down, half-alive, slow), with the connection error if
    /// there was one; reconnects in the background.
    NotYet(Option<fred::error::Error>),
}

/// Margin of the outer guard over fred's own command timeout.
const OUTER_GUARD_MARGIN: Duration = Duration::from_millis(20);

#[cfg(test)]
#[allow(non_snake_case)]
mod tests;
