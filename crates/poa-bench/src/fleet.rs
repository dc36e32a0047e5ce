//! A fleet of real processes for the measurements that need them (failover, memory): local
//! `redis-server`s and `poa-node` processes on loopback, each node with its own data directory
//! and log under one temporary directory, restartable on the same HTTP port. Nodes are observed
//! only through their HTTP API (and `/proc` by the memory measurement); this module measures
//! nothing itself.
//!
//! The processes are poa-test-support's [`ChildProcess`]es (the chaos runner's too): tied to
//! this process, so not even a SIGKILLed harness leaves producers behind, each with one log
//! across restarts, killed when the fleet is dropped, also on error. Blocking on purpose, and
//! one thread per fleet: [`run_blocking`] runs a measurement on one blocking thread that
//! starts, observes and drops the fleet.

use std::fmt::Display;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitStatus;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use poa_ports::{BlockHeight, Timestamp};
use poa_test_support::{ChildProcess, RedisServer, reserve_loopback_addresses};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::context::BenchContext;

/// How long a started node may take to answer `/status`.
const START_DEADLINE: Duration = Duration::from_secs(20);
/// Bound of one HTTP request to a node: generous, the machine is shared and loaded.
const REQUEST_TIMEOUT: Duration = Duration::from_millis(500);
/// How often waits and observations look again.
pub(crate) const OBSERVE_EVERY: Duration = Duration::from_millis(20);
/// `poa-node` derives its follower poll jitter as the poll interval divided by this
/// (`POLL_JITTER_DIVISOR` in poa-node's settings).
const POLL_JITTER_DIVISOR: u32 = 4;

/// What a fleet is made of and what every node of it runs with.
#[derive(Debug, Clone)]
pub(crate) struct FleetSettings {
    /// `poa-node` processes.
    pub(crate) nodes: usize,
    /// Local `redis-server`s, the lease's Redis nodes.
    pub(crate) redis_nodes: usize,
    /// `--block-time`.
    pub(crate) block_time: Duration,
    /// `--lease-ttl`.
    pub(crate) lease_ttl: Duration,
    /// `--poll-interval`: given explicitly, so the budgets computed from it are the node's.
    pub(crate) poll_interval: Duration,
    /// `--node-timeout`.
    pub(crate) node_timeout: Duration,
    /// `--retry-delay`.
    pub(crate) retry_delay: Duration,
    /// `--max-retry-delay-offset`.
    pub(crate) max_retry_delay_offset: Duration,
    /// `--chain-cache-mib`, when not the node's default.
    pub(crate) chain_cache_mib: Option<u64>,
}

impl FleetSettings {
    /// Three producers on three Redis nodes with fast blocks and a short lease, so a handover
    /// takes about a second (the lease TTL is five block times; docs/operations.md asks for at
    /// least three), and the Redis timeouts of the `poa-node` fleet tests. Measurements adjust
    /// it with struct update syntax.
    pub(crate) const FAST_LOOPBACK: Self = Self {
        nodes: 3,
        redis_nodes: 3,
        block_time: Duration::from_millis(200),
        lease_ttl: Duration::from_secs(1),
        poll_interval: Duration::from_millis(200),
        node_timeout: Duration::from_millis(100),
        retry_delay: Duration::from_millis(50),
        max_retry_delay_offset: Duration::from_millis(50),
        chain_cache_mib: None,
    };

    /// The largest random delay a follower adds to each poll, as `poa-node` derives it.
    pub(crate) fn poll_jitter(&self) -> Duration {
        self.poll_interval / POLL_JITTER_DIVISOR
    }

    /// The flags every node gets, before its own data directory, addresses and Redis URLs.
    fn node_flags(&self) -> Vec<String> {
        let flag = |name: &str, value: Duration| {
            [
                name.to_owned(),
                humantime::format_duration(value).to_string(),
            ]
        };
        [
            flag("--block-time", self.block_time),
            flag("--lease-ttl", self.lease_ttl),
            flag("--poll-interval", self.poll_interval),
            flag("--node-timeout", self.node_timeout),
            flag("--retry-delay", self.retry_delay),
            flag("--max-retry-delay-offset", self.max_retry_delay_offset),
        ]
        .into_iter()
        .flatten()
        .chain(
            self.chain_cache_mib
                .into_iter()
                .flat_map(|mib| ["--chain-cache-mib".to_owned(), mib.to_string()]),
        )
        .collect()
    }

    /// The settings as the report states them.
    pub(crate) fn describe(&self) -> String {
        let millis = |value: Duration| value.as_millis();
        format!(
            "{} `poa-node` processes on {} local `redis-server`s, block time {} ms, lease TTL \
             {} ms, poll interval {} ms (+ up to {} ms jitter), node timeout {} ms",
            self.nodes,
            self.redis_nodes,
            millis(self.block_time),
            millis(self.lease_ttl),
            millis(self.poll_interval),
            millis(self.poll_jitter()),
            millis(self.node_timeout)
        )
    }
}

/// What a node's `/status` says, reduced to what the measurements use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NodeStatus {
    /// Height of the local chain head.
    pub(crate) height: BlockHeight,
    /// Whether the node leads with a valid lease.
    pub(crate) is_leader: bool,
    /// Blocks this process produced since it started.
    pub(crate) blocks_produced: u64,
}

impl NodeStatus {
    /// Reads the fields from a `/status` body; `None` when one is missing.
    fn from_json(body: &Value) -> Option<Self> {
        Some(Self {
            height: BlockHeight::new(body.get("height")?.as_u64()?),
            is_leader: body.get("is_leader")?.as_bool()?,
            blocks_produced: body.get("blocks_produced")?.as_u64()?,
        })
    }
}

/// One `poa-node` process, restartable on the same data directory and HTTP port.
pub(crate) struct NodeProcess {
    /// `node 1`, `node 2`, ... as the report names it.
    pub(crate) name: String,
    http: SocketAddr,
    admin: SocketAddr,
    process: ChildProcess,
    agent: ureq::Agent,
}

impl NodeProcess {
    /// Starts the process (again, killing it first if it runs) and waits until it answers
    /// `/status`.
    ///
    /// # Errors
    /// Fails when it exits or does not answer within the start deadline; the message quotes
    /// its log.
    pub(crate) fn restart(&mut self) -> Result<()> {
        self.process.start()?;
        let (agent, http) = (self.agent.clone(), self.http);
        self.process
            .wait_until_ready(START_DEADLINE, || status_of(&agent, http).is_some())
            .with_context(|| format!("{} on {}", self.name, self.http))
    }

    /// The node's HTTP API address.
    pub(crate) fn http(&self) -> SocketAddr {
        self.http
    }

    /// Asks the node to step down (`POST /admin/step-down` on its admin listener); the HTTP
    /// status, or `None` when it did not answer.
    pub(crate) fn step_down(&self) -> Option<u16> {
        if !self.is_running() {
            return None;
        }
        let response = self
            .agent
            .post(&format!("http://{}/admin/step-down", self.admin))
            .send_empty()
            .ok()?;
        Some(response.status().as_u16())
    }

    /// Whether the process was started and has not been seen to exit.
    pub(crate) fn is_running(&self) -> bool {
        self.process.is_running()
    }

    /// The process id, while it runs.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// The node's status; `None` when it does not answer (or is not running).
    pub(crate) fn status(&self) -> Option<NodeStatus> {
        if !self.is_running() {
            return None;
        }
        status_of(&self.agent, self.http)
    }

    /// When the producer built the block at `height`, if this node holds it.
    pub(crate) fn block_timestamp(&self, height: BlockHeight) -> Option<Timestamp> {
        if !self.is_running() {
            return None;
        }
        let (200, block) = get(&self.agent, self.http, &format!("/blocks/{}", height.get()))?
        else {
            return None;
        };
        block
            .get("timestamp")?
            .as_u64()
            .map(Timestamp::from_unix_millis)
    }

    /// Submits a transaction; the HTTP status, or `None` when the node did not answer.
    pub(crate) fn submit_transaction(&self, body: &[u8]) -> Option<u16> {
        let response = self
            .agent
            .post(&format!("http://{}/transactions", self.http))
            .send(body)
            .ok()?;
        Some(response.status().as_u16())
    }

    /// SIGKILL, as a crash would, and reap the process.
    pub(crate) fn kill(&mut self) {
        self.process.kill();
    }

    /// Sends SIGTERM and returns at once; [`Self::try_reap`] or [`Self::wait_for_exit`] see it go.
    ///
    /// # Errors
    /// Fails when the process is not running or the signal cannot be sent.
    pub(crate) fn terminate(&self) -> Result<()> {
        Ok(self.process.terminate()?)
    }

    /// The exit status if the process has exited (it is then reaped and no longer running).
    pub(crate) fn try_reap(&mut self) -> Option<ExitStatus> {
        self.process.try_reap()
    }

    /// Waits up to `deadline` for the process to exit, then kills it; `None` when it had to be
    /// killed (or was not running).
    pub(crate) fn wait_for_exit(&mut self, deadline: Duration) -> Option<ExitStatus> {
        self.process.wait_for_exit(deadline)
    }
}

/// A node's status at `http`; `None` when it does not answer.
fn status_of(agent: &ureq::Agent, http: SocketAddr) -> Option<NodeStatus> {
    let (200, body) = get(agent, http, "/status")? else {
        return None;
    };
    NodeStatus::from_json(&body)
}

/// `GET path` on the node at `http`: the status code and the body as JSON (`Null` when it is
/// not JSON); `None` when it did not answer.
fn get(agent: &ureq::Agent, http: SocketAddr, path: &str) -> Option<(u16, Value)> {
    let mut response = agent.get(&format!("http://{http}{path}")).call().ok()?;
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_string().ok()?;
    Some((status, serde_json::from_str(&body).unwrap_or(Value::Null)))
}

/// Local Redis nodes and the producers sharing them.
pub(crate) struct Fleet {
    nodes: Vec<NodeProcess>,
    settings: FleetSettings,
    // Field order: dropped after the nodes, so no node outlives its Redis nodes, and the
    // directory last.
    _redis: Vec<RedisServer>,
    dir: tempfile::TempDir,
}

impl Fleet {
    /// Starts the Redis nodes, then every node, and waits until each answers.
    ///
    /// # Errors
    /// Fails when a port, the directory or a node cannot be had; the message quotes the log.
    pub(crate) fn start(binary: &Path, settings: &FleetSettings) -> Result<Self> {
        Self::start_with_peers(binary, settings, None, &[])
    }

    /// Like [`Fleet::start`], and every node names every other node as a `--peer`, then each of
    /// `extra_peers` (e.g. a frozen listener).
    ///
    /// # Errors
    /// As [`Fleet::start`].
    pub(crate) fn start_meshed(
        binary: &Path,
        settings: &FleetSettings,
        extra_peers: &[String],
    ) -> Result<Self> {
        Self::start_with_peers(binary, settings, Some(extra_peers), &[])
    }

    /// Like [`Fleet::start_meshed`] without extra peers, and every node runs with `environment`
    /// added to its own (e.g. an allocator setting).
    ///
    /// # Errors
    /// As [`Fleet::start`].
    pub(crate) fn start_meshed_with_environment(
        binary: &Path,
        settings: &FleetSettings,
        environment: &[(String, String)],
    ) -> Result<Self> {
        Self::start_with_peers(binary, settings, Some(&[]), environment)
    }

    fn start_with_peers(
        binary: &Path,
        settings: &FleetSettings,
        mesh: Option<&[String]>,
        environment: &[(String, String)],
    ) -> Result<Self> {
        let redis: Vec<RedisServer> = (0..settings.redis_nodes)
            .map(|_| RedisServer::start())
            .collect();
        let dir = tempfile::Builder::new()
            .prefix("poa-bench-fleet-")
            .tempdir()
            .context("cannot create the fleet directory")?;
        // A node keeps its ports across restarts. The first half are the public APIs, the
        // second the admin listeners.
        let addresses = reserve_loopback_addresses(settings.nodes * 2)
            .context("cannot reserve the nodes' ports")?;
        let (addresses, admins) = addresses.split_at(settings.nodes);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(REQUEST_TIMEOUT))
            .http_status_as_error(false)
            .build()
            .into();
        let mut fleet = Self {
            nodes: Vec::with_capacity(settings.nodes),
            settings: settings.clone(),
            _redis: Vec::new(),
            dir,
        };
        for (index, (&http, &admin)) in addresses.iter().zip(admins).enumerate() {
            let number = index + 1;
            let mut args = vec![
                "--data-dir".to_owned(),
                fleet
                    .dir
                    .path()
                    .join(format!("node-{number}"))
                    .display()
                    .to_string(),
                "--http".to_owned(),
                http.to_string(),
                "--admin-http".to_owned(),
                admin.to_string(),
            ];
            args.extend(settings.node_flags());
            for server in &redis {
                args.extend(["--redis-url".to_owned(), server.url()]);
            }
            if let Some(extra_peers) = mesh {
                let others = addresses
                    .iter()
                    .filter(|other| **other != http)
                    .map(|other| format!("http://{other}"));
                for peer in others.chain(extra_peers.iter().cloned()) {
                    args.extend(["--peer".to_owned(), peer]);
                }
            }
            let mut process = ChildProcess::new(
                format!("node {number}"),
                binary,
                &fleet.dir.path().join(format!("node-{number}.log")),
            )
            .with_args(args)
            .with_env("RUST_LOG", "warn,poa_node=info")
            .with_env("NO_COLOR", "1");
            for (name, value) in environment {
                process = process.with_env(name, value);
            }
            fleet.nodes.push(NodeProcess {
                name: format!("node {number}"),
                http,
                admin,
                process,
                agent: agent.clone(),
            });
        }
        fleet._redis = redis;
        for node in &mut fleet.nodes {
            node.restart()?;
        }
        Ok(fleet)
    }

    /// What the fleet was started with.
    pub(crate) fn settings(&self) -> &FleetSettings {
        &self.settings
    }

    /// The nodes, in start order.
    pub(crate) fn nodes(&self) -> &[NodeProcess] {
        &self.nodes
    }

    /// The node at `index`.
    ///
    /// # Errors
    /// Fails when there is no such node.
    pub(crate) fn node_mut(&mut self, index: usize) -> Result<&mut NodeProcess> {
        self.nodes
            .get_mut(index)
            .ok_or_else(|| anyhow!("the fleet has no node {}", index + 1))
    }

    /// Every node's status, in node order; `None` for a node that does not answer.
    pub(crate) fn statuses(&self) -> Vec<Option<NodeStatus>> {
        self.nodes.iter().map(NodeProcess::status).collect()
    }

    /// Waits until the fleet runs steadily: every running node answers, exactly one leads, it
    /// has produced `blocks` blocks since this wait began, and every other running node is
    /// within two blocks of it. Returns the leader's index.
    ///
    /// # Errors
    /// Fails when that does not happen within `deadline`, saying what was last seen.
    pub(crate) fn wait_for_steady_leader(&self, blocks: u64, deadline: Duration) -> Result<usize> {
        let started = Instant::now();
        let mut first_seen: Vec<Option<u64>> = vec![None; self.nodes.len()];
        let mut last: Vec<Option<NodeStatus>> = Vec::new();
        while started.elapsed() < deadline {
            last = self.statuses();
            for (seen, status) in first_seen.iter_mut().zip(&last) {
                if seen.is_none() {
                    *seen = status.map(|status| status.blocks_produced);
                }
            }
            let running: Vec<bool> = self.nodes.iter().map(NodeProcess::is_running).collect();
            if let Some(leader) = steady_leader(&last, &running, &first_seen, blocks) {
                return Ok(leader);
            }
            thread::sleep(OBSERVE_EVERY);
        }
        bail!("the fleet found no steady leader within {deadline:?}; last statuses: {last:?}")
    }
}

/// The index of the one leader if the fleet is steady (see [`Fleet::wait_for_steady_leader`]).
/// `running[i]` says whether node `i` runs (a node that does not is ignored, one that runs
/// but does not answer makes the fleet unsteady); `first_seen[i]` is its production count when
/// the wait began.
fn steady_leader(
    statuses: &[Option<NodeStatus>],
    running: &[bool],
    first_seen: &[Option<u64>],
    blocks: u64,
) -> Option<usize> {
    let running: Vec<(usize, NodeStatus)> = statuses
        .iter()
        .zip(running)
        .enumerate()
        .filter(|(_, (_, running))| **running)
        .map(|(index, (status, _))| status.map(|status| (index, status)))
        .collect::<Option<_>>()?;
    let mut leaders = running.iter().filter(|(_, status)| status.is_leader);
    let (leader, leading) = *leaders.next()?;
    if leaders.next().is_some() {
        return None;
    }
    let produced_since = leading
        .blocks_produced
        .saturating_sub(first_seen.get(leader).copied().flatten()?);
    let followers_close = running
        .iter()
        .all(|(_, status)| status.height.get().saturating_add(2) >= leading.height.get());
    (produced_since >= blocks && followers_close).then_some(leader)
}

/// Progress lines from a fleet thread, printed by the case as [`BenchContext::progress`] lines.
#[derive(Debug, Clone)]
pub(crate) struct Progress {
    sender: mpsc::UnboundedSender<String>,
}

impl Progress {
    /// Prints one progress line (from any thread).
    pub(crate) fn say(&self, message: impl Display) {
        // The receiver only goes away with the case: nothing is left to tell then.
        let _ = self.sender.send(message.to_string());
    }
}

/// Runs `job` on one blocking thread (which owns every fleet the job starts, see the module
/// docs) and prints its progress lines under `case` while it runs.
///
/// Never cancels `job`: every wait inside it must be bounded.
///
/// # Errors
/// The job's error, or a failure of its thread (a panic, e.g. a `redis-server` that cannot start).
pub(crate) async fn run_blocking<T, F>(context: &BenchContext, case: &str, job: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(&Progress) -> Result<T> + Send + 'static,
{
    let (sender, mut messages) = mpsc::unbounded_channel();
    let progress = Progress { sender };
    let mut job = tokio::task::spawn_blocking(move || job(&progress));
    loop {
        tokio::select! {
            Some(message) = messages.recv() => context.progress(case, message),
            joined = &mut job => {
                while let Ok(message) = messages.try_recv() {
                    context.progress(case, message);
                }
                return joined.map_err(|error| anyhow!("the fleet thread failed: {error}"))?;
            }
        }
    }
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn node_status__when_status_body_is_complete__then_reads_height_leadership_and_production() {
        // given
        let body =
            json!({ "height": 42, "is_leader": true, "blocks_produced": 7, "role": "leader" });

        // when
        let status = NodeStatus::from_json(&body);

        // then
        assert_eq!(
            status,
            Some(NodeStatus {
                height: BlockHeight::new(42),
                is_leader: true,
                blocks_produced: 7,
            })
        );
    }

    #[test]
    fn node_status__when_a_field_is_missing__then_none() {
        // given
        let body = json!({ "height": 42, "is_leader": true });

        // when
        let status = NodeStatus::from_json(&body);

        // then
        assert_eq!(status, None);
    }

    fn status(height: u64, is_leader: bool, blocks_produced: u64) -> Option<NodeStatus> {
        Some(NodeStatus {
            height: BlockHeight::new(height),
            is_leader,
            blocks_produced,
        })
    }

    #[test]
    fn steady_leader__when_one_leader_produced_enough_and_followers_are_close__then_its_index() {
        // given
        let statuses = [
            status(20, false, 0),
            status(21, true, 21),
            status(19, false, 3),
        ];

        // when
        let leader = steady_leader(&statuses, &[true; 3], &[Some(0), Some(15), Some(3)], 5);

        // then
        assert_eq!(leader, Some(1));
    }

    #[test]
    fn steady_leader__when_unsteady__then_none() {
        // given: a follower three blocks behind, two leaders, a silent running node, too few blocks
        let behind = [status(18, false, 0), status(21, true, 21)];
        let two = [status(21, true, 1), status(21, true, 21)];
        let silent = [None, status(21, true, 21)];
        let seen = [Some(0), Some(0)];

        // when / then
        assert_eq!(steady_leader(&behind, &[true; 2], &seen, 5), None);
        assert_eq!(steady_leader(&two, &[true; 2], &seen, 5), None);
        assert_eq!(steady_leader(&silent, &[true; 2], &seen, 5), None);
        assert_eq!(steady_leader(&behind[1..], &[true], &[Some(19)], 5), None);
    }

    #[test]
    fn steady_leader__when_a_node_is_not_running__then_it_is_ignored() {
        // given
        let statuses = [None, status(21, true, 21)];

        // when
        let leader = steady_leader(&statuses, &[false, true], &[None, Some(0)], 5);

        // then
        assert_eq!(leader, Some(1));
    }

    #[test]
    fn node_flags__when_built__then_durations_are_humantime_values() {
        // given
        let settings = FleetSettings {
            lease_ttl: Duration::from_secs(1),
            poll_interval: Duration::from_millis(200),
            ..FleetSettings::FAST_LOOPBACK
        };

        // when
        let flags = settings.node_flags();

        // then
        let position = flags.iter().position(|flag| flag == "--lease-ttl").unwrap();
        assert_eq!(flags[position + 1], "1s");
        assert_eq!(settings.poll_jitter(), Duration::from_millis(50));
    }
}
