//! The cluster under test: `redis-server` processes, one fault proxy per (node, Redis) link and
//! `poa-node` processes, all on loopback, all killed when the cluster is dropped (also during a
//! panic), with process-death signals so not even a SIGKILL of the harness leaves them behind.
//!
//! It owns processes and proxies and the primitive actions on them (kill, restart, freeze,
//! thaw, set a proxy mode). It does not decide when to act (that is the fault schedule) and it
//! does not talk HTTP beyond waiting for a node to answer.

use std::fs::{File, OpenOptions};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::time::Duration;

/// The environment variable whose value, when set, is every node's `RUST_LOG` (default `info`),
/// for a post-mortem of a seed: `POA_CHAOS_NODE_LOG=info,adapter_redis=debug`.
const NODE_LOG_FILTER: &str = "POA_CHAOS_NODE_LOG";

use anyhow::{Context, Result, bail};
use poa_test_support::spawner::{command_tied_to_process, spawn};
use poa_test_support::{ChildProcess, FaultProxy, RedisServer, reserve_loopback_addresses};

use crate::cli::Peers;
use crate::client::Client;

/// Environment variable naming the `poa-node` binary; by default the one next to this binary.
pub(crate) const NODE_BINARY_ENV: &str = "POA_CHAOS_NODE_BIN";
/// `--node-timeout` of every node: the bound of one call to one Redis server.
pub(crate) const NODE_TIMEOUT: Duration = Duration::from_millis(100);
/// How long a started node may take to answer HTTP.
const NODE_READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a node stopped with SIGTERM may take to hand its pending transactions on, release
/// its lease and exit before it is killed.
const TERMINATE_TIMEOUT: Duration = Duration::from_secs(5);

/// What every node and Redis server is started with.
#[derive(Debug, Clone)]
pub(crate) struct NodeSettings {
    /// Block time.
    pub(crate) block_time: Duration,
    /// Lease TTL.
    pub(crate) lease_ttl: Duration,
    /// `--stream-max-len` of every node; `None` keeps the node's default.
    pub(crate) stream_max_len: Option<u64>,
    /// `stream-node-max-entries` of every Redis server; `None` keeps the Redis default.
    pub(crate) stream_node_max_entries: Option<u32>,
    /// `--quorum-disruption-budget` of every node.
    pub(crate) quorum_disruption_budget: usize,
    /// Which nodes are given `--peer`s.
    pub(crate) peers: Peers,
}

/// Redis servers, proxies and nodes of one run.
pub(crate) struct Cluster {
    /// The Redis servers, by index: a server a membership change retired keeps its index.
    pub(crate) redis: Vec<RedisServer>,
    /// `proxies[node][redis]`: the link from a node to a Redis server.
    pub(crate) proxies: Vec<Vec<FaultProxy>>,
    /// The nodes, by index.
    pub(crate) nodes: Vec<NodeProcess>,
    /// The servers of the fleet's current list, by index: all of them until a membership
    /// change replaces one.
    pub(crate) members: Vec<usize>,
    /// What the servers and nodes were started with, for a server a membership change adds.
    settings: NodeSettings,
    binary: PathBuf,
}

impl Cluster {
    /// Starts `redis` servers, the proxy grid and `nodes` nodes under `dir`, and waits until
    /// every node answers HTTP.
    ///
    /// # Errors
    /// Fails when the node binary is missing or a node does not start.
    pub(crate) fn start(
        dir: &Path,
        nodes: usize,
        redis: usize,
        settings: &NodeSettings,
    ) -> Result<Self> {
        let binary = node_binary()?;
        let redis: Vec<RedisServer> = (0..redis).map(|_| start_redis(settings)).collect();
        let proxies: Vec<Vec<FaultProxy>> = (0..nodes)
            .map(|_| redis.iter().map(|r| FaultProxy::start(r.addr())).collect())
            .collect();
        let members = (0..redis.len()).collect();
        let mut cluster = Self {
            redis,
            proxies,
            nodes: Vec::new(),
            members,
            settings: settings.clone(),
            binary: binary.clone(),
        };
        // A node with peers names every other node as a --peer, so when it falls behind blocks no
        // longer held by a quorum of Redis (trimmed, or on servers restarted empty) it catches up
        // from them; `--peers` says which nodes have them.
        let mut addresses =
            reserve_loopback_addresses(nodes * 2).context("cannot reserve the nodes' ports")?;
        let admin_addresses = addresses.split_off(nodes);
        for index in 0..nodes {
            let urls: Vec<String> = cluster.proxies[index].iter().map(FaultProxy::url).collect();
            let peers: Vec<String> = addresses
                .iter()
                .enumerate()
                .filter(|(other, _)| *other != index && settings.peers.has_peers(index))
                .map(|(_, address)| format!("http://{address}"))
                .collect();
            let listeners = Listeners {
                http: addresses[index],
                admin: admin_addresses[index],
            };
            let node = NodeProcess::start(&binary, dir, index, listeners, &urls, &peers, settings)?;
            cluster.nodes.push(node);
        }
        Ok(cluster)
    }

    /// Starts one more Redis server, as the others (append-only, the same stream settings),
    /// with a fault proxy from every node to it, and returns its index. It joins no list: a
    /// membership change names it.
    pub(crate) fn add_redis(&mut self) -> usize {
        let server = start_redis(&self.settings);
        for links in &mut self.proxies {
            links.push(FaultProxy::start(server.addr()));
        }
        self.redis.push(server);
        self.redis.len() - 1
    }

    /// The servers of the current list.
    pub(crate) fn member_servers(&self) -> Vec<&RedisServer> {
        self.members
            .iter()
            .map(|&index| &self.redis[index])
            .collect()
    }

    /// The URLs through which `node` reaches `servers` (its fault proxies to them).
    pub(crate) fn node_urls(&self, node: usize, servers: &[usize]) -> Vec<String> {
        servers
            .iter()
            .map(|&server| self.proxies[node][server].url())
            .collect()
    }

    /// The URLs of `servers` themselves, as an operator's host reaches them (no proxy).
    pub(crate) fn server_urls(&self, servers: &[usize]) -> Vec<String> {
        servers
            .iter()
            .map(|&server| self.redis[server].url())
            .collect()
    }

    /// Starts `poa-node membership <verb>` with `args` (see [`membership_args`]), its output
    /// appended to `log`, without waiting for it.
    ///
    /// # Errors
    /// Fails when the log cannot be opened or the process cannot be spawned.
    pub(crate) fn start_membership_command(&self, args: &[String], log: &Path) -> Result<Child> {
        let output = open_log(log)?;
        let mut command = command_tied_to_process(&self.binary);
        command
            .args(args)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(
                output
                    .try_clone()
                    .context("cannot share the membership log")?,
            )
            .stderr(output);
        spawn(command).with_context(|| format!("cannot start {}", self.binary.display()))
    }

    /// The flags every `poa-node membership` command of this cluster takes besides the lists:
    /// the producers' own Redis settings.
    pub(crate) fn membership_settings(&self) -> MembershipSettings {
        MembershipSettings {
            quorum_disruption_budget: self.settings.quorum_disruption_budget,
            stream_max_len: self.settings.stream_max_len,
        }
    }
}

/// The producers' Redis settings a membership command repeats (docs/operations.md 7.14: the
/// same `--quorum-disruption-budget` and window as the producers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MembershipSettings {
    /// `--quorum-disruption-budget`.
    pub(crate) quorum_disruption_budget: usize,
    /// `--stream-max-len`, when the producers were given one.
    pub(crate) stream_max_len: Option<u64>,
}

/// The arguments of `poa-node membership <verb>` moving the fleet from `current` to `next`.
pub(crate) fn membership_args(
    verb: &str,
    current: &[String],
    next: &[String],
    settings: MembershipSettings,
) -> Vec<String> {
    let mut args = vec![
        "membership".to_owned(),
        verb.to_owned(),
        "--quorum-disruption-budget".to_owned(),
        settings.quorum_disruption_budget.to_string(),
    ];
    if let Some(max_len) = settings.stream_max_len {
        args.push("--stream-max-len".into());
        args.push(max_len.to_string());
    }
    args.extend(redis_args(current, next));
    args
}

/// The Redis flags of a process on the `current` list, and during a membership change also on
/// the `next` one (empty outside a change).
pub(crate) fn redis_args(current: &[String], next: &[String]) -> Vec<String> {
    let current = current
        .iter()
        .flat_map(|url| ["--redis-url".to_owned(), url.clone()]);
    let next = next
        .iter()
        .flat_map(|url| ["--next-redis-url".to_owned(), url.clone()]);
    current.chain(next).collect()
}

/// Starts one Redis server as every server of a run: with an append-only file (appendfsync
/// always), as production should, so a restart keeps its data unless the schedule makes it
/// lose it within the budget.
fn start_redis(settings: &NodeSettings) -> RedisServer {
    let builder = RedisServer::builder().append_only();
    match settings.stream_node_max_entries {
        Some(entries) => builder.stream_node_max_entries(entries),
        None => builder,
    }
    .start()
}

/// The addresses a node listens on, the same across restarts.
#[derive(Debug, Clone, Copy)]
struct Listeners {
    http: SocketAddr,
    admin: SocketAddr,
}

/// One `poa-node` process, restartable on the same data directory and HTTP ports.
pub(crate) struct NodeProcess {
    /// Position in the cluster.
    pub(crate) index: usize,
    /// The HTTP API address, the same across restarts.
    pub(crate) http: SocketAddr,
    /// The admin API address (`POST /admin/step-down`), the same across restarts.
    pub(crate) admin: SocketAddr,
    /// Whether the node was started with `--peer`s.
    pub(crate) has_peers: bool,
    /// Every flag but the Redis lists.
    base_args: Vec<String>,
    process: ChildProcess,
}

impl NodeProcess {
    fn start(
        binary: &Path,
        dir: &Path,
        index: usize,
        listeners: Listeners,
        redis_urls: &[String],
        peers: &[String],
        settings: &NodeSettings,
    ) -> Result<Self> {
        let data_dir = dir.join(format!("node-{index}"));
        let mut args: Vec<String> = vec![
            "--data-dir".into(),
            data_dir.display().to_string(),
            "--http".into(),
            listeners.http.to_string(),
            "--admin-http".into(),
            listeners.admin.to_string(),
            "--block-time".into(),
            humantime::format_duration(settings.block_time).to_string(),
            "--lease-ttl".into(),
            humantime::format_duration(settings.lease_ttl).to_string(),
            "--node-timeout".into(),
            humantime::format_duration(NODE_TIMEOUT).to_string(),
            "--retry-delay".into(),
            "50ms".into(),
            "--max-retry-delay-offset".into(),
            "50ms".into(),
            "--quorum-disruption-budget".into(),
            settings.quorum_disruption_budget.to_string(),
        ];
        if let Some(max_len) = settings.stream_max_len {
            args.push("--stream-max-len".into());
            args.push(max_len.to_string());
        }
        for peer in peers {
            args.push("--peer".into());
            args.push(peer.clone());
        }
        let process = ChildProcess::new(
            format!("node {index}"),
            binary,
            &dir.join(format!("node-{index}.log")),
        )
        .with_env(
            "RUST_LOG",
            std::env::var(NODE_LOG_FILTER).unwrap_or_else(|_| "info".to_owned()),
        )
        .with_env("NO_COLOR", "1");
        let mut node = Self {
            index,
            http: listeners.http,
            admin: listeners.admin,
            has_peers: !peers.is_empty(),
            base_args: args,
            process,
        };
        node.set_redis_args(redis_args(redis_urls, &[]));
        node.spawn()?;
        let client = Client::new(Duration::from_millis(500));
        let http = node.http;
        node.process
            .wait_until_ready(NODE_READY_TIMEOUT, || client.status(http).is_some())?;
        Ok(node)
    }

    /// The command line of the next start: the node's own flags, then `redis_args`.
    fn set_redis_args(&mut self, redis_args: Vec<String>) {
        self.process
            .set_args(self.base_args.iter().cloned().chain(redis_args));
    }

    /// Starts of the process so far, minus one: 0 for the first process, 1 after a restart.
    pub(crate) fn incarnation(&self) -> u32 {
        self.process.starts().saturating_sub(1)
    }

    /// Whether the process runs and is not frozen.
    pub(crate) fn is_live(&self) -> bool {
        self.process.is_running() && !self.process.is_frozen()
    }

    /// Starts the process (again) without waiting for it to answer: a restart must not pause
    /// the harness's sampling (a pause would show as a stall). The observer sees the node once
    /// it answers; a node that never does fails the run when the final chains are read.
    ///
    /// # Errors
    /// Fails when it cannot be spawned.
    pub(crate) fn spawn(&mut self) -> Result<()> {
        Ok(self.process.start()?)
    }

    /// Whether a process was started and has not been killed or reaped since.
    pub(crate) fn is_running(&self) -> bool {
        self.process.is_running()
    }

    /// The exit status of a process that exited on its own (not by [`Self::kill`]), once;
    /// `None` while it runs or when it is stopped by the harness.
    pub(crate) fn reap(&mut self) -> Option<ExitStatus> {
        self.process.try_reap()
    }

    /// The node's whole log (every incarnation's), empty when it cannot be read.
    pub(crate) fn log_text(&self) -> String {
        self.process.log_text()
    }

    /// The last `lines` lines of the node's log (all incarnations), for a report.
    pub(crate) fn log_tail(&self, lines: usize) -> Vec<String> {
        self.process.log_tail(lines)
    }

    /// Sets the process's soft file size limit (`None`: unlimited) with `prlimit`, so a write
    /// of its chain file past `limit` bytes fails as on a full disk, without privileges.
    ///
    /// # Errors
    /// Fails when the process is not running or `prlimit` (util-linux) fails.
    pub(crate) fn limit_file_size(&self, limit: Option<u64>) -> Result<()> {
        let Some(pid) = self.process.pid() else {
            bail!("node {} is not running", self.index);
        };
        let soft = limit.map_or_else(|| "unlimited".to_owned(), |bytes| bytes.to_string());
        let status = std::process::Command::new("prlimit")
            .arg("--pid")
            .arg(pid.to_string())
            .arg(format!("--fsize={soft}:"))
            .status()
            .context("cannot run prlimit: install util-linux (apt-get install -y util-linux)")?;
        if !status.success() {
            bail!(
                "prlimit --fsize={soft} on node {} failed: {status}",
                self.index
            );
        }
        Ok(())
    }

    /// SIGKILL, and wait until the process is gone (continuing it first if frozen).
    pub(crate) fn kill(&mut self) {
        self.process.kill();
    }

    /// Stops the process as an operator's restart does, SIGTERM (it hands its pending
    /// transactions on and releases its lease), killing it if it has not exited within
    /// [`TERMINATE_TIMEOUT`], and starts it again on the Redis flags `redis_args`.
    ///
    /// # Errors
    /// Fails when it cannot be spawned again.
    pub(crate) fn restart_with(&mut self, redis_args: Vec<String>) -> Result<()> {
        self.process.stop(TERMINATE_TIMEOUT);
        self.set_redis_args(redis_args);
        self.spawn()
    }

    /// SIGSTOP: the process keeps its sockets but runs nothing.
    pub(crate) fn freeze(&mut self) {
        // A process that is not running has nothing to freeze.
        let _ = self.process.freeze();
    }

    /// SIGCONT after [`Self::freeze`].
    pub(crate) fn thaw(&mut self) {
        let _ = self.process.thaw();
    }
}

fn node_binary() -> Result<PathBuf> {
    let path = match std::env::var_os(NODE_BINARY_ENV) {
        Some(path) => PathBuf::from(path),
        None => std::env::current_exe()
            .context("cannot locate poa-chaos")?
            .with_file_name("poa-node"),
    };
    if !path.is_file() {
        bail!(
            "poa-node binary not found at {} (build it with `cargo build -p poa-node`, or set {NODE_BINARY_ENV})",
            path.display()
        );
    }
    Ok(path)
}

/// Opens a node's log for appending: every incarnation of the node writes to the same file.
fn open_log(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests {
    use super::*;

    fn urls(ports: &[u16]) -> Vec<String> {
        ports
            .iter()
            .map(|port| format!("redis://127.0.0.1:{port}"))
            .collect()
    }

    #[test]
    fn redis_args__when_a_node_runs_on_both_lists__then_names_the_current_list_then_the_next() {
        // given
        let current = urls(&[6379, 6380]);
        let next = urls(&[6379, 6382]);

        // when
        let joint = redis_args(&current, &next);
        let alone = redis_args(&next, &[]);

        // then
        assert_eq!(
            joint,
            [
                "--redis-url",
                "redis://127.0.0.1:6379",
                "--redis-url",
                "redis://127.0.0.1:6380",
                "--next-redis-url",
                "redis://127.0.0.1:6379",
                "--next-redis-url",
                "redis://127.0.0.1:6382",
            ]
        );
        assert_eq!(
            alone,
            [
                "--redis-url",
                "redis://127.0.0.1:6379",
                "--redis-url",
                "redis://127.0.0.1:6382",
            ]
        );
    }

    #[test]
    fn membership_args__when_the_producers_have_a_budget_and_a_window__then_repeats_them_before_the_lists()
     {
        // given
        let settings = MembershipSettings {
            quorum_disruption_budget: 1,
            stream_max_len: Some(30),
        };

        // when
        let args = membership_args("commit", &urls(&[6379]), &urls(&[6382]), settings);

        // then
        assert_eq!(
            args,
            [
                "membership",
                "commit",
                "--quorum-disruption-budget",
                "1",
                "--stream-max-len",
                "30",
                "--redis-url",
                "redis://127.0.0.1:6379",
                "--next-redis-url",
                "redis://127.0.0.1:6382",
            ]
        );
    }
}
