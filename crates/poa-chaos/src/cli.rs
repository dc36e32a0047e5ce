//! The command line of `poa-chaos` and the command that replays a run.
//!
//! Owns flag parsing and validation only; it starts nothing. Every flag that changes the fault
//! schedule or the cluster is part of [`Cli::replay_command`], so a printed command reproduces
//! the same schedule.

use std::time::Duration;

use anyhow::{Result, bail};
use clap::Parser;

/// Runs real `poa-node` and `redis-server` processes on loopback under a seeded fault schedule
/// and checks the protocol invariants (no fork, nothing committed lost, no transaction twice,
/// production resumes, nodes converge, no long stall).
#[derive(Debug, Clone, Parser)]
#[command(name = "poa-chaos")]
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
    /// Longest tolerated time without a new block while some live node reaches a Redis quorum
    /// [default: 2 x lease ttl + 3s].
    #[arg(long, value_parser = humantime::parse_duration)]
    pub(crate) stall_threshold: Option<Duration>,
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
    /// Fails on zero nodes or Redis servers, a zero budget, a zero block time or lease TTL, or a
    /// duration too short to schedule anything.
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
        Ok(())
    }

    /// The stall threshold, explicit or derived from the lease TTL.
    pub(crate) fn stall_threshold(&self) -> Duration {
        self.stall_threshold
            .unwrap_or(self.lease_ttl * 2 + Duration::from_secs(3))
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
        if let Some(threshold) = self.stall_threshold {
            command.push_str(&format!(
                " --stall-threshold {}",
                humantime::format_duration(threshold)
            ));
        }
        command
    }
}
