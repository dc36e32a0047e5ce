//! The command line of `poa-chaos` and the command that replays a run.
//!
//! Owns flag parsing and validation only; it starts nothing. Every flag that changes the fault
//! schedule or the cluster is part of [`Cli::replay_command`], so a printed command reproduces
//! the same schedule.

use std::time::Duration;

use anyhow::{Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::cluster::NODE_TIMEOUT;
use crate::schedule::{ALL_KINDS, KindSet, ScheduleSettings, StreamWindow, kinds_named, quorum};

/// poa-node's default `--stream-max-len`, used when the run does not set one.
const NODE_DEFAULT_STREAM_MAX_LEN: u64 = 1000;
/// Redis's default `stream-node-max-entries`.
const REDIS_DEFAULT_STREAM_NODE_MAX_ENTRIES: u32 = 100;
/// `stream-node-max-entries` of the servers when the run sets `--stream-max-len`: small, so
/// approximate trimming keeps close to `--stream-max-len` entries and a node stopped for a few
/// seconds falls past the window.
const SMALL_STREAM_NODE_MAX_ENTRIES: u32 = 10;
/// The kind a disruption budget must allow (a server restored from an old snapshot).
const RESTORE_KIND: &str = "redis_restore_snapshot";
/// Added to the failover budget for the default stall threshold: the harness samples every
/// 100 ms and its loop also reads chains and restarts processes.
const STALL_MARGIN: Duration = Duration::from_secs(1);

/// Which nodes get `--peer`s (every other node's HTTP API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Peers {
    /// Every node, as a fleet should run.
    All,
    /// No node: one that falls past the streams' window cannot catch up.
    None,
    /// Even-numbered nodes (n0, n2, ...) only: one run sees both kinds fall behind.
    Even,
}

impl Peers {
    /// Whether node `index` is started with peers.
    pub(crate) fn has_peers(self, index: usize) -> bool {
        match self {
            Self::All => true,
            Self::None => false,
            Self::Even => index.is_multiple_of(2),
        }
    }

    fn flag(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::None => "none",
            Self::Even => "even",
        }
    }
}

/// Runs real `poa-node` and `redis-server` processes on loopback under a seeded fault schedule
/// and checks the protocol invariants (no fork, nothing committed lost, no transaction twice,
/// production resumes, nodes converge, no long stall, stranded nodes say why, garbage stops
/// said why, no process exits on its own). `poa-chaos load` is the transaction load harness.
#[derive(Debug, Parser)]
#[command(name = "poa-chaos", args_conflicts_with_subcommands = true)]
pub(crate) struct Invocation {
    /// A run kind other than the fault schedule.
    #[command(subcommand)]
    pub(crate) mode: Option<Mode>,
    /// The fault schedule's flags.
    #[command(flatten)]
    pub(crate) chaos: Cli,
}

/// The run kinds besides the fault schedule.
#[derive(Debug, Subcommand)]
pub(crate) enum Mode {
    /// Transaction load: many clients submit over every node's API through phases with no
    /// fault, a leader SIGKILL and restart, a step-down and a frozen peer; reports what was
    /// accepted, included, lost (by cause) and included twice, tx/s and submit latency, and
    /// fails on a loss the rules forbid (docs/chaos.md).
    Load(LoadCli),
}

/// The flags of a run under the fault schedule.
#[derive(Debug, Clone, Args)]
pub(crate) struct Cli {
    /// Seed of the fault schedule and the workload; the same seed gives the same schedule.
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// How long faults are injected, e.g. 60s (healing and checks come on top).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "60s")]
    pub(crate) duration: Duration,
    /// Number of poa-node processes.
    #[arg(long, default_value_t = 3)]
    pub(crate) nodes: usize,
    /// Number of redis-server processes.
    #[arg(long, default_value_t = 3)]
    pub(crate) redis: usize,
    /// Block time of every node.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "100ms")]
    pub(crate) block_time: Duration,
    /// Lease time to live of every node.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1s")]
    pub(crate) lease_ttl: Duration,
    /// Faults active at once, at most.
    #[arg(long, default_value_t = 1)]
    pub(crate) fault_budget: usize,
    /// Longest tolerated time without a new block while a producer that can produce (live, not
    /// left behind past the streams' window) reaches a Redis quorum [default: the failover
    /// budget + 1s, see docs/chaos.md].
    #[arg(long, value_parser = humantime::parse_duration)]
    pub(crate) stall_threshold: Option<Duration>,
    /// `--stream-max-len` of every node, e.g. 40: with it the Redis servers run with
    /// `stream-node-max-entries 10`, streams are trimmed during the run and nodes are stopped
    /// past the window [default: the node's, 1000 blocks, too long for any node to fall past].
    #[arg(long)]
    pub(crate) stream_max_len: Option<u64>,
    /// `--quorum-disruption-budget` of every node: quorums grow by it, and the schedule
    /// restarts empty or restores from an old snapshot up to this many Redis servers per
    /// data-loss window (0: every restart keeps its data, and nothing is restored).
    #[arg(long, default_value_t = 0)]
    pub(crate) quorum_disruption_budget: usize,
    /// Which nodes get every other node as `--peer`.
    #[arg(long, value_enum, default_value_t = Peers::All)]
    pub(crate) peers: Peers,
    /// Draw only these kinds of fault, e.g. `corrupt,node_disk_full` (the kinds as drawn:
    /// `redis_restart` stands for both restarts, `corrupt` for garbage on one server and on a
    /// quorum; `redis_restore_snapshot` needs a `--quorum-disruption-budget`;
    /// `membership_change` is drawn only when named, and only with the node kinds
    /// `node_partition`, `node_freeze`, `node_kill`, `node_disk_full`) [default: every kind
    /// but `membership_change`].
    #[arg(long, value_delimiter = ',')]
    pub(crate) only: Vec<String>,
    /// Print the fault schedule and exit without starting anything.
    #[arg(long)]
    pub(crate) plan_only: bool,
    /// Print the report as one JSON object on stdout (progress goes to stderr).
    #[arg(long)]
    pub(crate) json: bool,
    /// Keep the run directory (node data, node and Redis logs) instead of removing it.
    #[arg(long)]
    pub(crate) keep_dir: bool,
}

impl Cli {
    /// Rejects combinations the harness cannot run safely.
    ///
    /// # Errors
    /// Fails on zero nodes or Redis servers, a zero budget, a zero block time or lease TTL, a
    /// duration too short to schedule anything, or `--only` naming restores without a quorum
    /// disruption budget to spend on them.
    pub(crate) fn validate(&self) -> Result<()> {
        if self.nodes == 0 || self.redis == 0 {
            bail!("--nodes and --redis must be at least 1");
        }
        if self.fault_budget == 0 {
            bail!("--fault-budget must be at least 1");
        }
        if self.block_time.is_zero() || self.lease_ttl.is_zero() {
            bail!("--block-time and --lease-ttl must be positive");
        }
        if self.duration < Duration::from_secs(5) {
            bail!("--duration must be at least 5s");
        }
        if self.stream_max_len == Some(0) {
            bail!("--stream-max-len must be at least 1");
        }
        let kinds = self
            .kinds()
            .map_err(|error| anyhow::anyhow!("--only: {error}"))?;
        if kinds.mixes_membership_change() {
            bail!(
                "--only: membership_change comes only with node_partition, node_freeze, node_kill and node_disk_full: the other kinds name a Redis server by its index, and the change replaces servers; e.g. --only membership_change,node_kill"
            );
        }
        if self.quorum_disruption_budget == 0 && self.only.iter().any(|kind| kind == RESTORE_KIND) {
            bail!(
                "--only {RESTORE_KIND} draws nothing with --quorum-disruption-budget 0: a restored server lost what it acknowledged since its snapshot, which only a budget allows; add --redis 5 --quorum-disruption-budget 1"
            );
        }
        if self.redis / 2 + 1 + self.quorum_disruption_budget > self.redis {
            bail!(
                "--quorum-disruption-budget {} needs more than the {} Redis servers: use at most {} or raise --redis",
                self.quorum_disruption_budget,
                self.redis,
                self.redis - (self.redis / 2 + 1)
            );
        }
        Ok(())
    }

    /// What the fault schedule is drawn for: these flags, after a warm-up of max(2 x lease
    /// TTL, 2 s) for the first leader to be elected.
    pub(crate) fn schedule_settings(&self) -> ScheduleSettings {
        ScheduleSettings {
            seed: self.seed,
            duration: self.duration,
            warmup: (self.lease_ttl * 2).max(Duration::from_secs(2)),
            nodes: self.nodes,
            redis: self.redis,
            fault_budget: self.fault_budget,
            lease_ttl: self.lease_ttl,
            block_time: self.block_time,
            streams: self.stream_window(),
            quorum_disruption_budget: self.quorum_disruption_budget,
            kinds: self.kinds().unwrap_or(ALL_KINDS),
        }
    }

    /// The kinds `--only` names, every kind without it.
    fn kinds(&self) -> Result<KindSet, String> {
        if self.only.is_empty() {
            Ok(ALL_KINDS)
        } else {
            kinds_named(&self.only)
        }
    }

    /// Redis servers a quorum needs.
    pub(crate) fn quorum(&self) -> usize {
        quorum(self.redis, self.quorum_disruption_budget)
    }

    /// How much history the Redis servers keep.
    pub(crate) fn stream_window(&self) -> StreamWindow {
        StreamWindow {
            max_len: self.stream_max_len.unwrap_or(NODE_DEFAULT_STREAM_MAX_LEN),
            node_max_entries: u64::from(self.stream_node_max_entries()),
        }
    }

    /// `stream-node-max-entries` of the servers.
    pub(crate) fn stream_node_max_entries(&self) -> u32 {
        match self.stream_max_len {
            Some(_) => SMALL_STREAM_NODE_MAX_ENTRIES,
            None => REDIS_DEFAULT_STREAM_NODE_MAX_ENTRIES,
        }
    }

    /// The failover budget of docs/operations.md section 4 for these settings: the lease TTL,
    /// a follower's poll with its jitter, acquisition and the full scan (a node timeout each),
    /// one cycle to import a backlog, and one block time.
    pub(crate) fn failover_budget(&self) -> Duration {
        let poll = self.block_time.min(self.lease_ttl / 4);
        self.lease_ttl + poll * 2 + poll / 4 + NODE_TIMEOUT * 2 + self.block_time
    }

    /// The stall threshold, explicit or the failover budget plus a sampling margin.
    pub(crate) fn stall_threshold(&self) -> Duration {
        self.stall_threshold
            .unwrap_or(self.failover_budget() + STALL_MARGIN)
    }

    /// The exact command that replays this run's schedule.
    pub(crate) fn replay_command(&self) -> String {
        let mut command = format!(
            "cargo xtask chaos --seed {} --duration {} --nodes {} --redis {} --block-time {} --lease-ttl {} --fault-budget {}",
            self.seed,
            humantime::format_duration(self.duration),
            self.nodes,
            self.redis,
            humantime::format_duration(self.block_time),
            humantime::format_duration(self.lease_ttl),
            self.fault_budget,
        );
        if let Some(max_len) = self.stream_max_len {
            command.push_str(&format!(" --stream-max-len {max_len}"));
        }
        if self.quorum_disruption_budget > 0 {
            command.push_str(&format!(
                " --quorum-disruption-budget {}",
                self.quorum_disruption_budget
            ));
        }
        if self.peers != Peers::All {
            command.push_str(&format!(" --peers {}", self.peers.flag()));
        }
        if !self.only.is_empty() {
            command.push_str(&format!(" --only {}", self.only.join(",")));
        }
        if let Some(threshold) = self.stall_threshold {
            command.push_str(&format!(
                " --stall-threshold {}",
                humantime::format_duration(threshold)
            ));
        }
        command
    }
}

/// The flags of the transaction load harness.
#[derive(Debug, Clone, Args)]
pub(crate) struct LoadCli {
    /// Seed of the clients' choices and payloads and of the leader's downtime.
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// How long each phase lasts (steady, leader_kill, step_down, frozen_peer).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    pub(crate) phase: Duration,
    /// Concurrent clients, each submitting to a node drawn at random for every transaction.
    #[arg(long, default_value_t = 8)]
    pub(crate) clients: usize,
    /// Transactions submitted per second by all clients together (0: each client as fast as
    /// its answers come).
    #[arg(long, default_value_t = 400)]
    pub(crate) rate: u32,
    /// Block time of every node.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "100ms")]
    pub(crate) block_time: Duration,
    /// Lease time to live of every node.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1s")]
    pub(crate) lease_ttl: Duration,
    /// One relay round trip: a transaction acknowledged (202) by a process less than this long
    /// before that process was SIGKILLed may be lost; any other loss is forbidden.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "200ms")]
    pub(crate) relay_round_trip: Duration,
    /// How long, after the last phase, pending transactions may take to be included.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    pub(crate) drain: Duration,
    /// Bound of one submission.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "2s")]
    pub(crate) submit_timeout: Duration,
    /// Print the report as one JSON object on stdout (progress goes to stderr).
    #[arg(long)]
    pub(crate) json: bool,
    /// Keep the run directory (node data, node and Redis logs) instead of removing it.
    #[arg(long)]
    pub(crate) keep_dir: bool,
}

impl LoadCli {
    /// Rejects settings the harness cannot run.
    ///
    /// # Errors
    /// Fails on no client, a phase shorter than a second, or a zero block time or lease TTL.
    pub(crate) fn validate(&self) -> Result<()> {
        if self.clients == 0 {
            bail!("--clients must be at least 1");
        }
        if self.phase < Duration::from_secs(1) {
            bail!("--phase must be at least 1s");
        }
        if self.block_time.is_zero() || self.lease_ttl.is_zero() {
            bail!("--block-time and --lease-ttl must be positive");
        }
        Ok(())
    }

    /// The exact command that replays this run.
    pub(crate) fn replay_command(&self) -> String {
        format!(
            "cargo xtask chaos load --seed {} --phase {} --clients {} --rate {} --block-time {} --lease-ttl {} --relay-round-trip {} --drain {}",
            self.seed,
            humantime::format_duration(self.phase),
            self.clients,
            self.rate,
            humantime::format_duration(self.block_time),
            humantime::format_duration(self.lease_ttl),
            humantime::format_duration(self.relay_round_trip),
            humantime::format_duration(self.drain),
        )
    }
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Invocation {
        Invocation::try_parse_from(std::iter::once("poa-chaos").chain(args.iter().copied()))
            .unwrap()
    }

    #[test]
    fn validate__when_only_names_an_unknown_kind__then_names_the_flag_and_the_known_kinds() {
        // given
        let invocation = parse(&["--only", "corrupt,node_melt"]);

        // when
        let error = invocation.chaos.validate().unwrap_err().to_string();

        // then
        assert!(
            error.contains("--only") && error.contains("node_melt"),
            "{error}"
        );
        assert!(error.contains("node_disk_full"), "{error}");
    }

    #[test]
    fn validate__when_only_restores_are_asked_for_without_a_disruption_budget__then_names_the_flags_and_the_fix()
     {
        // given
        let without = parse(&["--only", "redis_restore_snapshot"]);
        let with = parse(&[
            "--only",
            "redis_restore_snapshot",
            "--redis",
            "5",
            "--quorum-disruption-budget",
            "1",
        ]);

        // when
        let error = without.chaos.validate().unwrap_err().to_string();

        // then
        assert!(
            error.contains("--only redis_restore_snapshot")
                && error.contains("--quorum-disruption-budget 1"),
            "{error}"
        );
        assert!(with.chaos.validate().is_ok());
    }

    #[test]
    fn validate__when_only_mixes_a_membership_change_with_a_kind_naming_a_server__then_names_the_flag_and_the_kinds_it_may_come_with()
     {
        // given
        let mixed = parse(&["--only", "membership_change,link_down"]);
        let with_node_faults = parse(&["--only", "membership_change,node_kill,node_freeze"]);
        let alone = parse(&["--only", "membership_change"]);

        // when
        let error = mixed.chaos.validate().unwrap_err().to_string();

        // then
        assert!(
            error.contains("--only") && error.contains("membership_change comes only with"),
            "{error}"
        );
        assert!(with_node_faults.chaos.validate().is_ok());
        assert!(alone.chaos.validate().is_ok());
    }

    #[test]
    fn replay_command__when_only_some_kinds_are_drawn__then_carries_them() {
        // given
        let invocation = parse(&["--seed", "9", "--only", "corrupt,node_disk_full"]);

        // when
        let replay = invocation.chaos.replay_command();

        // then
        assert!(replay.contains("--seed 9"), "{replay}");
        assert!(
            replay.ends_with("--only corrupt,node_disk_full"),
            "{replay}"
        );
    }

    #[test]
    fn invocation__when_the_load_subcommand_is_given__then_parses_its_flags() {
        // given / when
        let invocation = parse(&["load", "--seed", "3", "--phase", "5s", "--rate", "0"]);

        // then
        let Some(Mode::Load(load)) = invocation.mode else {
            panic!("not the load harness");
        };
        assert_eq!(
            (load.seed, load.phase, load.rate),
            (3, Duration::from_secs(5), 0)
        );
        assert!(load.validate().is_ok());
        assert!(
            load.replay_command()
                .starts_with("cargo xtask chaos load --seed 3 --phase 5s")
        );
    }
}
