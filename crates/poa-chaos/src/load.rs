//! The transaction load harness (`poa-chaos load`): three Redis servers and three nodes (every
//! node the others' `--peer`), many clients submitting over every node's API, and four phases:
//! no fault, a leader SIGKILLed and restarted, a leader asked to step down, a follower frozen.
//! After a drain it reads the chain and accounts for every `202`: included, included twice, or
//! lost, and why. The rule it judges by (docs/chaos.md): no loss at all, except what a process
//! acknowledged less than one relay round trip before it was SIGKILLed; nothing included twice;
//! no fork.
//!
//! Owns the sequencing and the time bounds of a load run; submitting is `load::clients`,
//! counting is `load::accounting`, presenting is `load::report`.

mod accounting;
mod clients;
mod report;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::checks;
use crate::cli::{LoadCli, Peers};
use crate::client::Client;
use crate::cluster::{Cluster, NodeSettings};
use crate::observe::Observer;
use crate::report::Event;
use crate::run::read_final_chains;
use accounting::{Kill, Phase, Submission};
use clients::{Shared, Workload};
pub(crate) use report::LoadReport;

/// Nodes and Redis servers of a load run.
const NODES: usize = 3;
const REDIS: usize = 3;
/// Pace of the run's own loop: one status poll per tick.
const TICK: Duration = Duration::from_millis(100);
/// How often every node's new blocks are read (for the fork check).
const CHAIN_READ_INTERVAL: Duration = Duration::from_secs(1);
/// Bound of one call of the run's own (status, chain, admin).
const HTTP_TIMEOUT: Duration = Duration::from_millis(500);
/// The longest wait for a leader, at the start and before a phase's fault.
const LEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Pools must stay empty this long for the drain to end early.
const DRAINED_FOR: Duration = Duration::from_secs(1);
/// Share of a phase a follower stays frozen.
const FREEZE_SHARE: f64 = 0.6;
/// Bounds of the killed leader's downtime: sometimes shorter than the lease (it may win the
/// lease back), sometimes longer (a follower takes over first).
const MIN_DOWNTIME: Duration = Duration::from_millis(300);

/// Runs the load run `cli` describes and returns its report.
///
/// # Errors
/// Fails when the cluster cannot be started, a node cannot be restarted, no leader is elected,
/// or the run is interrupted; lost transactions are not errors, they are in the report.
pub(crate) fn run(cli: &LoadCli, interrupted: &Arc<AtomicBool>) -> Result<LoadReport> {
    let dir = tempfile::Builder::new()
        .prefix(&format!("poa-load-{}-", cli.seed))
        .tempdir()
        .context("cannot create the run directory")?;
    eprintln!(
        "load: seed {} run directory {}",
        cli.seed,
        dir.path().display()
    );
    let outcome = drive(cli, interrupted, dir.path());
    if cli.keep_dir {
        let kept = dir.keep();
        eprintln!("load: kept {}", kept.display());
    }
    outcome
}

/// Something a phase undoes later: a killed node started again, a frozen one continued.
#[derive(Debug, Clone, Copy)]
enum Undo {
    Restart { node: usize, at: Duration },
    Thaw { node: usize, at: Duration },
}

/// What a phase did, for the report.
#[derive(Debug, Clone)]
pub(crate) struct PhaseRun {
    /// The phase.
    pub(crate) phase: Phase,
    /// When it began and ended, from the start of the run.
    pub(crate) from: Duration,
    pub(crate) to: Duration,
    /// Its fault, as the timeline says it, if it had one.
    pub(crate) action: Option<String>,
    /// The node its fault took out (the leader killed, the follower frozen), if any: what the
    /// other nodes' submit path paid for it is reported apart.
    pub(crate) faulted: Option<usize>,
}

/// The clients, stopped and joined on every exit path.
struct Clients {
    shared: Arc<Shared>,
    handles: Vec<JoinHandle<Vec<Submission>>>,
}

impl Clients {
    fn finish(mut self) -> Vec<Submission> {
        self.shared.stop();
        std::mem::take(&mut self.handles)
            .into_iter()
            .flat_map(|handle| handle.join().unwrap_or_default())
            .collect()
    }
}

impl Drop for Clients {
    fn drop(&mut self) {
        self.shared.stop();
        for handle in std::mem::take(&mut self.handles) {
            let _ = handle.join();
        }
    }
}

/// The mutable state of a load run.
struct LoadRun<'a> {
    cli: &'a LoadCli,
    cluster: Cluster,
    client: Client,
    observer: Observer,
    start: Instant,
    rng: StdRng,
    timeline: Vec<Event>,
    kills: Vec<Kill>,
    undo: Vec<Undo>,
    last_chain_read: Duration,
}

fn drive(
    cli: &LoadCli,
    interrupted: &Arc<AtomicBool>,
    dir: &std::path::Path,
) -> Result<LoadReport> {
    let settings = NodeSettings {
        block_time: cli.block_time,
        lease_ttl: cli.lease_ttl,
        stream_max_len: None,
        stream_node_max_entries: None,
        quorum_disruption_budget: 0,
        peers: Peers::All,
    };
    let cluster = Cluster::start(dir, NODES, REDIS, &settings)?;
    let client = Client::new(HTTP_TIMEOUT);
    let mut run = LoadRun {
        cli,
        observer: Observer::new(client.clone(), NODES),
        client,
        start: Instant::now(),
        rng: StdRng::seed_from_u64(cli.seed ^ 0x10ad_0f7a),
        timeline: Vec::new(),
        kills: Vec::new(),
        undo: Vec::new(),
        last_chain_read: Duration::ZERO,
        cluster,
    };
    run.leader(interrupted)?;
    let workload = Workload {
        seed: cli.seed,
        clients: cli.clients,
        rate: cli.rate,
        timeout: cli.submit_timeout,
        nodes: run.cluster.nodes.iter().map(|node| node.http).collect(),
    };
    let shared = Arc::new(Shared::new(run.start));
    let clients = Clients {
        handles: clients::spawn(&workload, &shared),
        shared: Arc::clone(&shared),
    };
    let mut phases = Vec::new();
    for phase in Phase::ALL {
        shared.enter(phase);
        let from = run.start.elapsed();
        let (action, faulted) = match run.begin(phase, interrupted)? {
            Some((action, faulted)) => (Some(action), faulted),
            None => (None, None),
        };
        run.event(format!("phase {}", phase.name()));
        while run.start.elapsed() < from + cli.phase {
            run.tick(interrupted)?;
        }
        run.undo_all()?;
        phases.push(PhaseRun {
            phase,
            from,
            to: run.start.elapsed(),
            action,
            faulted,
        });
    }
    let submissions = clients.finish();
    let submitting = run.start.elapsed();
    run.event("clients stopped: draining".to_owned());
    let drained = run.drain(interrupted)?;
    run.observer.read_chains(run.start.elapsed(), &run.cluster);
    let (chains, _) = read_final_chains(&run.client, &run.cluster)?;
    let no_fork = checks::no_fork(&run.observer.sightings, &chains);
    Ok(report::judge(&report::Measured {
        cli,
        phases: &phases,
        submissions: &submissions,
        submitting,
        drained,
        chains: &chains,
        kills: &run.kills,
        samples: &run.observer.samples,
        no_fork,
        timeline: &run.timeline,
    }))
}

impl LoadRun<'_> {
    fn event(&mut self, what: String) {
        let at = self.start.elapsed();
        eprintln!("[{:>6.1}s] {what}", at.as_secs_f64());
        self.timeline.push(Event { at, what });
    }

    /// One poll of every node, the chains every second, and what is due to be undone.
    fn tick(&mut self, interrupted: &AtomicBool) -> Result<()> {
        let tick = Instant::now();
        if interrupted.load(Ordering::SeqCst) {
            bail!("interrupted");
        }
        let now = self.start.elapsed();
        self.observer.poll(now, &self.cluster, true, &[]);
        if now >= self.last_chain_read + CHAIN_READ_INTERVAL {
            self.observer.read_chains(now, &self.cluster);
            self.last_chain_read = now;
        }
        let (due, later): (Vec<Undo>, Vec<Undo>) = self.undo.iter().partition(|undo| match undo {
            Undo::Restart { at, .. } | Undo::Thaw { at, .. } => *at <= now,
        });
        self.undo = later;
        for undo in due {
            self.apply(undo)?;
        }
        thread::sleep(TICK.saturating_sub(tick.elapsed()));
        Ok(())
    }

    fn undo_all(&mut self) -> Result<()> {
        for undo in std::mem::take(&mut self.undo) {
            self.apply(undo)?;
        }
        Ok(())
    }

    fn apply(&mut self, undo: Undo) -> Result<()> {
        match undo {
            Undo::Restart { node, .. } => {
                self.cluster.nodes[node].spawn()?;
                let now = self.start.elapsed();
                if let Some(kill) = self
                    .kills
                    .iter_mut()
                    .rev()
                    .find(|kill| kill.node == node && kill.restarted.is_none())
                {
                    kill.restarted = Some(now);
                }
                self.event(format!("n{node} started again"));
            }
            Undo::Thaw { node, .. } => {
                self.cluster.nodes[node].thaw();
                self.event(format!("n{node} continued"));
            }
        }
        Ok(())
    }

    /// The node that leads now, waiting for one if none does.
    fn leader(&mut self, interrupted: &AtomicBool) -> Result<usize> {
        let deadline = self.start.elapsed() + LEADER_TIMEOUT;
        loop {
            let now = self.start.elapsed();
            if let Some(leader) = self.observer.poll(now, &self.cluster, true, &[]).leader {
                return Ok(leader);
            }
            if now >= deadline {
                bail!("no node led within {LEADER_TIMEOUT:?}");
            }
            self.tick(interrupted)?;
        }
    }

    /// Starts `phase`'s fault; returns what it did.
    /// Starts `phase`'s fault, if it has one: what the timeline says of it, and the node it
    /// took out.
    fn begin(
        &mut self,
        phase: Phase,
        interrupted: &AtomicBool,
    ) -> Result<Option<(String, Option<usize>)>> {
        let (action, faulted) = match phase {
            Phase::Steady => return Ok(None),
            Phase::LeaderKill => {
                let leader = self.leader(interrupted)?;
                // Every block it reported is recorded before it dies.
                let now = self.start.elapsed();
                self.observer.read_node(now, &self.cluster, leader);
                let at = self.start.elapsed();
                self.cluster.nodes[leader].kill();
                self.kills.push(Kill {
                    node: leader,
                    at,
                    restarted: None,
                });
                let longest = (self.cli.lease_ttl * 2).max(MIN_DOWNTIME);
                let downtime = Duration::from_millis(
                    self.rng
                        .gen_range(as_millis(MIN_DOWNTIME)..=as_millis(longest)),
                );
                self.undo.push(Undo::Restart {
                    node: leader,
                    at: at + downtime,
                });
                (
                    format!("SIGKILL leader n{leader}, started again {downtime:?} later"),
                    Some(leader),
                )
            }
            Phase::StepDown => {
                let leader = self.leader(interrupted)?;
                let admin = self.cluster.nodes[leader].admin;
                let answered = self.client.step_down(admin, self.cli.phase);
                let action = format!(
                    "POST /admin/step-down?hold_off={} to leader n{leader}: {}",
                    humantime::format_duration(self.cli.phase),
                    if answered { "200" } else { "not answered" }
                );
                (action, None)
            }
            Phase::FrozenPeer => {
                let leader = self.leader(interrupted)?;
                let followers: Vec<usize> = (0..NODES).filter(|node| *node != leader).collect();
                let node = followers[self.rng.gen_range(0..followers.len())];
                self.cluster.nodes[node].freeze();
                let frozen = self.cli.phase.mul_f64(FREEZE_SHARE);
                self.undo.push(Undo::Thaw {
                    node,
                    at: self.start.elapsed() + frozen,
                });
                (
                    format!("SIGSTOP follower n{node} for {frozen:?}"),
                    Some(node),
                )
            }
        };
        self.event(action.clone());
        Ok(Some((action, faulted)))
    }

    /// Waits until every pool stays empty a while, or the drain bound; returns whether the
    /// pools emptied.
    fn drain(&mut self, interrupted: &AtomicBool) -> Result<bool> {
        let deadline = self.start.elapsed() + self.cli.drain;
        let mut empty_since: Option<Duration> = None;
        while self.start.elapsed() < deadline {
            let pending: Option<u64> = self
                .cluster
                .nodes
                .iter()
                .map(|node| self.client.status(node.http).map(|status| status.pending))
                .sum();
            let now = self.start.elapsed();
            match (pending, empty_since) {
                (Some(0), Some(since)) if now >= since + DRAINED_FOR => {
                    self.event("every pool empty".to_owned());
                    return Ok(true);
                }
                (Some(0), None) => empty_since = Some(now),
                (Some(0), Some(_)) => {}
                _ => empty_since = None,
            }
            self.tick(interrupted)?;
        }
        self.event(format!(
            "pools still hold transactions after {:?}",
            self.cli.drain
        ));
        Ok(false)
    }
}

fn as_millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
