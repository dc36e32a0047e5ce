//! One chaos run from start to verdict: start the cluster, drive the fault schedule and the
//! transaction workload while observing, heal everything, wait for production and convergence,
//! read every node's final chain and judge the invariants.
//!
//! Owns the sequencing and every time bound of the run; faults, observation and judgement live
//! in their own modules. All processes belong to the [`Cluster`], dropped on every exit path
//! (also on an error, a panic or Ctrl-C, which ends the loop at the next tick).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::checks::{self, StrandedNode, Verdict};
use crate::cli::Cli;
use crate::client::{BlockSummary, Client};
use crate::cluster::{Cluster, NodeSettings};
use crate::faults::{self, ActiveFault};
use crate::observe::Observer;
use crate::report::{Event, Recovery, Report};
use crate::schedule::{self, FaultKind, PlannedFault};
use crate::streams;

/// Pace of the main loop: one status poll and one transaction per tick.
const TICK: Duration = Duration::from_millis(100);
/// How often every node's new blocks are read.
const CHAIN_READ_INTERVAL: Duration = Duration::from_secs(1);
/// How often a progress line is printed.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(5);
/// Bound of one HTTP call to a node.
const HTTP_TIMEOUT: Duration = Duration::from_millis(500);
/// Added to the lease TTL: the longest tolerated wait for production after the final heal.
const RESUME_MARGIN: Duration = Duration::from_secs(3);
/// The longest wait for every node to reach the leader's height after the final heal.
const CONVERGENCE_TIMEOUT: Duration = Duration::from_secs(30);
/// Blocks below a returning node's next height that must still be in a quorum of streams for
/// it to count as within the window: trimming goes on while it reads (a second of blocks).
const WINDOW_EDGE_MARGIN: u64 = 10;
/// Largest padding of a transaction payload: blocks with a few kilobytes of transactions make
/// the stream reads long replies, so a cut lands inside them.
const MAX_PAYLOAD_PADDING: usize = 4096;

/// Runs the chaos run `cli` describes and returns its report.
///
/// # Errors
/// Fails when the cluster cannot be started, a killed node cannot be restarted, or the run is
/// interrupted; invariant violations are not errors, they are in the report.
pub(crate) fn run(cli: &Cli, interrupted: &Arc<AtomicBool>) -> Result<Report> {
    let dir = tempfile::Builder::new()
        .prefix(&format!("poa-chaos-{}-", cli.seed))
        .tempdir()
        .context("cannot create the run directory")?;
    eprintln!(
        "chaos: seed {} run directory {}",
        cli.seed,
        dir.path().display()
    );
    let outcome = drive(cli, interrupted, dir.path());
    if cli.keep_dir {
        let kept = dir.keep();
        eprintln!("chaos: kept {}", kept.display());
    }
    outcome
}

fn drive(cli: &Cli, interrupted: &Arc<AtomicBool>, dir: &std::path::Path) -> Result<Report> {
    let settings = NodeSettings {
        block_time: cli.block_time,
        lease_ttl: cli.lease_ttl,
        stream_max_len: cli.stream_max_len,
        stream_node_max_entries: cli.stream_max_len.map(|_| cli.stream_node_max_entries()),
        quorum_disruption_budget: cli.quorum_disruption_budget,
        peers: cli.peers,
    };
    let plan = schedule::plan(&cli.schedule_settings());
    let mut cluster = Cluster::start(dir, cli.nodes, cli.redis, &settings)?;
    let client = Client::new(HTTP_TIMEOUT);
    let mut state = RunState {
        observer: Observer::new(client.clone(), cli.nodes),
        timeline: Vec::new(),
        active: Vec::new(),
        started: Vec::new(),
        skipped: 0,
        accepted: Vec::new(),
        redis_servers: cli.redis,
        quorum: cli.quorum(),
        stopped_at: vec![None; cli.nodes],
        catching_up: vec![None; cli.nodes],
        stranded: vec![None; cli.nodes],
    };
    // The workload has its own stream so the fault schedule does not depend on it.
    let mut workload = StdRng::seed_from_u64(cli.seed ^ 0x005e_ed0f_7aa5);
    let start = Instant::now();
    let mut next_fault = 0;
    let mut last_chain_read = Duration::ZERO;
    let mut last_progress = Duration::ZERO;
    let mut last_leader = None;
    loop {
        let tick = Instant::now();
        let now = start.elapsed();
        if interrupted.load(Ordering::SeqCst) {
            bail!("interrupted");
        }
        if now >= cli.duration {
            break;
        }
        state.heal_due(&mut cluster, now)?;
        state.stop_due(&mut cluster, now);
        while next_fault < plan.len() && plan[next_fault].at <= now {
            state.start_fault(&mut cluster, &plan[next_fault], last_leader, now)?;
            next_fault += 1;
        }
        let available = state.producer_available();
        let leader = state.observer.poll(now, &cluster, available).leader;
        state.note_caught_up(now);
        if leader.is_some() && leader != last_leader {
            state.event(now, format!("leader n{}", leader.unwrap_or_default()));
            last_leader = leader;
        }
        submit_transaction(
            &client,
            &cluster,
            &mut workload,
            cli.seed,
            &mut state.accepted,
        );
        if now >= last_chain_read + CHAIN_READ_INTERVAL {
            state.observer.read_chains(now, &cluster);
            last_chain_read = now;
        }
        if now >= last_progress + PROGRESS_INTERVAL {
            state.print_progress(now, last_leader);
            last_progress = now;
        }
        thread::sleep(TICK.saturating_sub(tick.elapsed()));
    }

    // Heal everything, then give production and convergence their bounded time.
    let healed_at = start.elapsed();
    state.heal_all(&mut cluster, healed_at)?;
    let resume_bound = cli.lease_ttl + RESUME_MARGIN;
    let (converged, target) = settle(
        &mut state,
        &cluster,
        start,
        healed_at,
        resume_bound,
        interrupted,
    )?;
    let end = start.elapsed();
    state.observer.read_chains(end, &cluster);
    let (chains, last_errors) = read_final_chains(&client, &cluster)?;
    let stranded = state.stranded_nodes(&chains, &last_errors, target);
    Ok(judge(
        cli,
        &state,
        &chains,
        &stranded,
        healed_at,
        resume_bound,
        converged,
        target,
    ))
}

/// Polls after the final heal until production resumed and every node reached the height the
/// cluster had once it resumed; returns whether they converged and that target height.
fn settle(
    state: &mut RunState,
    cluster: &Cluster,
    start: Instant,
    healed_at: Duration,
    resume_bound: Duration,
    interrupted: &Arc<AtomicBool>,
) -> Result<(bool, u64)> {
    let mut target = None;
    let deadline = healed_at + resume_bound + CONVERGENCE_TIMEOUT;
    loop {
        if interrupted.load(Ordering::SeqCst) {
            bail!("interrupted");
        }
        let now = start.elapsed();
        // Every fault is healed, but a stranded node is still no producer.
        let available = state.producer_available();
        let sample = state.observer.poll(now, cluster, available).clone();
        if target.is_none()
            && checks::time_to_progress(&state.observer.samples, healed_at).is_some()
        {
            target = sample.max_height();
        }
        // A node stranded past the streams' window without a peer is not waited for.
        if let Some(target) = target
            && sample
                .heights
                .iter()
                .zip(&state.stranded)
                .all(|(h, stranded)| stranded.is_some() || h.is_some_and(|h| h >= target))
        {
            state.event(
                now,
                format!("every node not stranded at height {target} or above"),
            );
            return Ok((true, target));
        }
        if now >= deadline {
            return Ok((false, target.unwrap_or_default()));
        }
        thread::sleep(TICK);
    }
}

/// Every node's chain from height 1 to its head, and its last cycle's failure.
type FinalChains = (Vec<Vec<BlockSummary>>, Vec<Option<String>>);

fn read_final_chains(client: &Client, cluster: &Cluster) -> Result<FinalChains> {
    let mut chains = Vec::new();
    let mut last_errors = Vec::new();
    for node in &cluster.nodes {
        let status = client
            .status(node.http)
            .with_context(|| format!("node n{} does not answer after the heal", node.index))?;
        let head = status.height;
        last_errors.push(status.last_error);
        let mut chain = Vec::new();
        for height in 1..=head {
            match client.block(node.http, height) {
                Some(Some(block)) => chain.push(block),
                _ => bail!(
                    "node n{} cannot show its block at height {height}",
                    node.index
                ),
            }
        }
        chains.push(chain);
    }
    Ok((chains, last_errors))
}

#[allow(
    clippy::too_many_arguments,
    reason = "the one place every measurement meets"
)]
fn judge(
    cli: &Cli,
    state: &RunState,
    chains: &[Vec<BlockSummary>],
    stranded: &[StrandedNode],
    healed_at: Duration,
    resume_bound: Duration,
    converged: bool,
    target: u64,
) -> Report {
    let samples = &state.observer.samples;
    let longest = chains
        .iter()
        .max_by_key(|chain| chain.len())
        .cloned()
        .unwrap_or_default();
    // A stranded node that never caught up is only held to the chain it has.
    let settled: Vec<u64> = chains
        .iter()
        .enumerate()
        .map(|(node, chain)| {
            let exempt = stranded.iter().any(|s| s.node == node && !s.converged);
            if exempt { chain.len() as u64 } else { target }
        })
        .collect();
    let mut verdicts = vec![
        checks::no_fork(&state.observer.sightings, chains),
        checks::nothing_lost(&state.observer.sightings, chains, &settled),
        checks::no_duplicate_transaction(&longest),
    ];
    verdicts.push(match checks::time_to_progress(samples, healed_at) {
        Some(resumed) if resumed <= resume_bound => Verdict::pass(
            "production_resumes",
            format!("a new block {resumed:?} after the final heal (bound {resume_bound:?})"),
        ),
        resumed => Verdict::fail(
            "production_resumes",
            format!("after the final heal: {resumed:?}, bound {resume_bound:?}"),
            Some(healed_at),
        ),
    });
    let heights: Vec<usize> = chains.iter().map(Vec::len).collect();
    let exempt: Vec<String> = stranded
        .iter()
        .filter(|s| !s.converged)
        .map(|s| format!("n{}", s.node))
        .collect();
    let exempt = if exempt.is_empty() {
        String::new()
    } else {
        format!(
            " ({} stranded past the window without a peer, exempt)",
            exempt.join(", ")
        )
    };
    verdicts.push(if converged {
        Verdict::pass("nodes_converge", format!("every node reached height {target}{exempt}; final heights {heights:?}"))
    } else {
        Verdict::fail(
            "nodes_converge",
            if target == 0 {
                format!("production never resumed after the final heal, so nothing to converge to; final heights {heights:?}")
            } else {
                format!("not every node reached height {target} within {CONVERGENCE_TIMEOUT:?}{exempt}; final heights {heights:?}")
            },
            Some(healed_at),
        )
    });
    let threshold = cli.stall_threshold();
    let stall = checks::longest_stall(samples, Duration::ZERO, true);
    verdicts.push(if stall.length <= threshold {
        Verdict::pass("no_long_stall", format!("longest {:?} (threshold {threshold:?})", stall.length))
    } else {
        Verdict::fail(
            "no_long_stall",
            format!("{:?} without a block from {:?} while a producer was available (threshold {threshold:?})", stall.length, stall.from),
            Some(stall.from + stall.length),
        )
    });
    verdicts.push(checks::stranded_nodes_say_why(stranded));

    let mut faults_by_kind: BTreeMap<&'static str, usize> =
        FaultKind::NAMES.iter().map(|name| (*name, 0)).collect();
    for fault in &state.started {
        *faults_by_kind
            .entry(fault.active.planned.kind.name())
            .or_default() += 1;
    }
    let failovers = state
        .started
        .iter()
        .filter(|f| f.hit_leader)
        .map(|f| Recovery {
            fault: f.active.describe(),
            kind: f.active.planned.kind.name(),
            hit_leader: true,
            progress_ms: checks::time_to_progress(samples, f.at).map(as_millis),
            new_leader_ms: f
                .active
                .node
                .and_then(|node| checks::time_to_new_leader(samples, f.at, node))
                .map(as_millis),
        })
        .collect();
    let included: std::collections::BTreeSet<&str> = longest
        .iter()
        .flat_map(|b| b.transactions.iter().map(String::as_str))
        .collect();
    Report {
        seed: cli.seed,
        passed: verdicts.iter().all(|v| v.passed),
        replay: cli.replay_command(),
        faults_by_kind,
        faults_skipped: state.skipped,
        blocks: longest.len() as u64,
        leader_changes: checks::leader_changes(samples).len(),
        longest_stall: checks::longest_stall(samples, Duration::ZERO, false),
        longest_stall_with_producer: stall,
        stranded: stranded.to_vec(),
        failovers,
        transactions_accepted: state.accepted.len(),
        transactions_included: state
            .accepted
            .iter()
            .filter(|id| included.contains(id.as_str()))
            .count(),
        verdicts,
        timeline: state.timeline.clone(),
    }
}

fn as_millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// A fault as it was started.
struct StartedFault {
    active: ActiveFault,
    at: Duration,
    hit_leader: bool,
}

/// A node that came back without a peer after its next height had left a quorum of streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stranding {
    /// Its next height when it came back.
    next_height: u64,
}

/// The mutable state of the main loop.
struct RunState {
    observer: Observer,
    timeline: Vec<Event>,
    active: Vec<ActiveFault>,
    started: Vec<StartedFault>,
    skipped: usize,
    accepted: Vec<String>,
    /// Redis servers in the cluster.
    redis_servers: usize,
    /// Redis servers a quorum needs.
    quorum: usize,
    /// Per node, its height when a fault last stopped its process.
    stopped_at: Vec<Option<u64>>,
    /// Per node, the height it must reach before it counts as a producer again: set when it
    /// comes back from falling behind, or stranded.
    catching_up: Vec<Option<u64>>,
    /// Per node, whether it came back stranded past the streams' window without a peer (and
    /// has not caught up since).
    stranded: Vec<Option<Stranding>>,
}

impl RunState {
    fn event(&mut self, at: Duration, what: String) {
        self.timeline.push(Event { at, what });
    }

    /// Whether a producer that can produce is healthy: nodes still catching up after falling
    /// behind (stranded ones for good) do not count.
    fn producer_available(&self) -> bool {
        let excluded: Vec<bool> = self.catching_up.iter().map(Option::is_some).collect();
        faults::producer_available(&self.active, self.redis_servers, self.quorum, &excluded)
    }

    /// Clears the catching-up mark of nodes the latest sample shows at their target height.
    fn note_caught_up(&mut self, now: Duration) {
        let Some(sample) = self.observer.samples.last() else {
            return;
        };
        let caught_up: Vec<usize> = self
            .catching_up
            .iter()
            .zip(&sample.heights)
            .enumerate()
            .filter(|(_, (target, height))| {
                target.is_some_and(|target| height.is_some_and(|height| height >= target))
            })
            .map(|(node, _)| node)
            .collect();
        for node in caught_up {
            self.catching_up[node] = None;
            // It reached the cluster's height after all: within the window, held to converge.
            if self.stranded[node].take().is_some() {
                self.event(now, format!("n{node} caught up, no longer stranded"));
            } else {
                self.event(now, format!("n{node} caught up"));
            }
        }
    }

    fn start_fault(
        &mut self,
        cluster: &mut Cluster,
        planned: &PlannedFault,
        leader: Option<usize>,
        now: Duration,
    ) -> Result<()> {
        let Some(active) = faults::resolve(planned, cluster.nodes.len(), leader, &self.active)
        else {
            self.skipped += 1;
            self.event(
                now,
                format!("skip #{} {} (target busy)", planned.id, planned.kind),
            );
            return Ok(());
        };
        if let (Some(node), FaultKind::NodeKill { .. } | FaultKind::NodeFreeze { .. }) =
            (active.node, planned.kind)
        {
            self.before_stop(cluster, node, now);
        }
        faults::start(cluster, &active)?;
        let hit_leader = leader.is_some()
            && active.node == leader
            && !matches!(
                planned.kind,
                FaultKind::LinkReset { .. } | FaultKind::LinkLatency { .. }
            );
        self.event(now, format!("start {}", active.describe()));
        self.active.push(active);
        self.started.push(StartedFault {
            active,
            at: now,
            hit_leader,
        });
        Ok(())
    }

    /// Cuts off the falling-behind nodes whose links degraded long enough, and stops those whose
    /// cut-off is over.
    fn stop_due(&mut self, cluster: &mut Cluster, now: Duration) {
        for index in 0..self.active.len() {
            if self.active[index].cut_due(now) {
                faults::cut(cluster, &mut self.active[index]);
                let what = format!("cut off {}", self.active[index].describe());
                self.event(now, what);
            }
            let Some(node) = self.active[index].stop_due(now) else {
                continue;
            };
            self.before_stop(cluster, node, now);
            faults::stop(cluster, &mut self.active[index]);
            let height = self.stopped_at[node].map_or("?".into(), |h| h.to_string());
            self.event(
                now,
                format!("stop n{node} at height {height} (falls behind)"),
            );
        }
    }

    /// Reads what the node reported that was not read yet, and its height, before its process
    /// is stopped: every block an incarnation reported is recorded, also before a kill.
    fn before_stop(&mut self, cluster: &Cluster, node: usize, now: Duration) {
        let latest = self
            .observer
            .samples
            .last()
            .and_then(|sample| sample.heights[node]);
        let status = self.observer.read_node(now, cluster, node);
        self.stopped_at[node] = status.map(|status| status.height).or(latest);
    }

    fn heal_due(&mut self, cluster: &mut Cluster, now: Duration) -> Result<()> {
        let (due, keep): (Vec<ActiveFault>, Vec<ActiveFault>) = self
            .active
            .iter()
            .partition(|fault| fault.planned.ends() <= now);
        self.active = keep;
        for fault in due {
            faults::heal(cluster, &fault)?;
            self.event(now, format!("heal  {}", fault.describe()));
            self.after_heal(cluster, &fault, now);
        }
        Ok(())
    }

    fn heal_all(&mut self, cluster: &mut Cluster, now: Duration) -> Result<()> {
        for fault in std::mem::take(&mut self.active) {
            faults::heal(cluster, &fault)?;
            self.event(now, format!("heal  {} (final)", fault.describe()));
            self.after_heal(cluster, &fault, now);
        }
        self.event(now, "every fault healed".to_owned());
        Ok(())
    }

    /// A node that falls behind must catch up before it counts as a producer; one without a
    /// peer whose next height left a quorum of streams while it was away is stranded.
    fn after_heal(&mut self, cluster: &Cluster, fault: &ActiveFault, now: Duration) {
        let Some(node) = fault.node else {
            return;
        };
        let cluster_height = self
            .observer
            .samples
            .last()
            .and_then(|sample| sample.max_height())
            .unwrap_or(0);
        let fell_behind = matches!(fault.planned.kind, FaultKind::NodeFallBehind { .. });
        if fell_behind && fault.stopped {
            self.catching_up[node] = Some(cluster_height);
        }
        if cluster.nodes[node].has_peers || self.stranded[node].is_some() {
            return;
        }
        let stopped = fault.stopped
            || matches!(
                fault.planned.kind,
                FaultKind::NodeKill { .. } | FaultKind::NodeFreeze { .. }
            );
        let height = if stopped {
            self.stopped_at[node]
        } else {
            self.observer
                .samples
                .last()
                .and_then(|sample| sample.heights[node])
        };
        // A node about as high as the cluster is within any window; no need to ask Redis.
        let Some(height) = height.filter(|h| h + WINDOW_EDGE_MARGIN < cluster_height) else {
            return;
        };
        let next_height = height + 1;
        let probe = next_height.saturating_sub(WINDOW_EDGE_MARGIN).max(1);
        let held_by = streams::servers_holding(&cluster.redis, probe);
        let servers = cluster.redis.len();
        if held_by >= self.quorum {
            if fell_behind {
                self.event(
                    now,
                    format!("n{node} back at height {height}, within the streams' window ({held_by} of {servers} servers hold height {probe})"),
                );
            }
            return;
        }
        // Past the window, or within a second of its edge: say which, for the post-mortem.
        let next_held_by = streams::servers_holding(&cluster.redis, next_height);
        let place = if next_held_by >= self.quorum {
            "at the edge of"
        } else {
            "past"
        };
        self.stranded[node] = Some(Stranding { next_height });
        self.catching_up[node] = Some(cluster_height.max(next_height));
        self.event(
            now,
            format!(
                "n{node} back at height {height} without a peer, {place} the streams' window ({next_held_by} of {servers} servers hold its next height, {held_by} hold height {probe}; quorum {}): stranded, exempt from convergence",
                self.quorum
            ),
        );
    }

    /// The stranded nodes, as the checks judge them.
    fn stranded_nodes(
        &self,
        chains: &[Vec<BlockSummary>],
        last_errors: &[Option<String>],
        target: u64,
    ) -> Vec<StrandedNode> {
        self.stranded
            .iter()
            .enumerate()
            .filter_map(|(node, stranding)| {
                let stranding = stranding.as_ref()?;
                Some(StrandedNode {
                    node,
                    next_height: stranding.next_height,
                    // Without a target height production never resumed: nobody converged.
                    converged: target > 0 && chains[node].len() as u64 >= target,
                    last_error: last_errors[node].clone(),
                })
            })
            .collect()
    }

    fn print_progress(&self, now: Duration, leader: Option<usize>) {
        let heights: Vec<String> = self
            .observer
            .samples
            .last()
            .map(|s| {
                s.heights
                    .iter()
                    .map(|h| h.map_or("-".into(), |h| h.to_string()))
                    .collect()
            })
            .unwrap_or_default();
        let active: Vec<String> = self.active.iter().map(ActiveFault::describe).collect();
        eprintln!(
            "[{:>6.1}s] heights [{}] leader {} faults started {} active: {}",
            now.as_secs_f64(),
            heights.join(" "),
            leader.map_or("-".into(), |l| format!("n{l}")),
            self.started.len(),
            if active.is_empty() {
                "none".into()
            } else {
                active.join(", ")
            }
        );
    }
}

/// Submits one transaction with a unique payload to a random live node.
fn submit_transaction(
    client: &Client,
    cluster: &Cluster,
    rng: &mut StdRng,
    seed: u64,
    accepted: &mut Vec<String>,
) {
    let live: Vec<_> = cluster.nodes.iter().filter(|n| n.is_live()).collect();
    if live.is_empty() {
        return;
    }
    let node = live[rng.gen_range(0..live.len())];
    let padding = "p".repeat(rng.gen_range(0..=MAX_PAYLOAD_PADDING));
    let payload = format!(
        "chaos seed {seed} transaction {} nonce {} {padding}",
        accepted.len(),
        rng.r#gen::<u64>()
    );
    if let Some(id) = client.submit(node.http, payload.as_bytes()) {
        accepted.push(id);
    }
}
