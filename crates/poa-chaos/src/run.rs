//! One chaos run from start to verdict: start the cluster, drive the fault schedule and the
//! transaction workload while observing, heal everything, wait for production and convergence,
//! read every node's final chain and judge the invariants.
//!
//! Owns the sequencing and every time bound of the run; faults, observation and judgement live
//! in their own modules. All processes belong to the [`Cluster`], dropped on every exit path
//! (also on an error, a panic or Ctrl-C, which ends the loop at the next tick).

mod comeback;
mod membership;
mod state;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::checks::{self, StrandedNode, Verdict};
use crate::cli::Cli;
use crate::client::{BlockSummary, Client};
use crate::cluster::{Cluster, NodeProcess, NodeSettings};
use crate::logs::NodeLogs;
use crate::observe::Sample;
use crate::report::{Recovery, Report};
use crate::schedule::{self, FaultKind};
use state::{RunState, submit_transaction};

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
/// How long the run goes on past `--duration` for a membership change to end: a change is
/// driven to its end, not healed at a time.
const MEMBERSHIP_OVERRUN: Duration = Duration::from_secs(60);
/// Tries of one read of the final chains before the run gives up (exit 2).
const FINAL_READ_ATTEMPTS: usize = 5;

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
    // Restores, in the order their snapshots are due (before the faults, by their age).
    let mut snapshots: Vec<&schedule::PlannedFault> = plan
        .iter()
        .filter(|fault| fault.snapshot_at().is_some())
        .collect();
    snapshots.sort_by_key(|fault| fault.snapshot_at());
    let mut cluster = Cluster::start(dir, cli.nodes, cli.redis, &settings)?;
    let client = Client::new(HTTP_TIMEOUT);
    let mut state = RunState::new(client.clone(), cli.nodes, cli.redis, cli.quorum(), dir);
    // The workload has its own stream so the fault schedule does not depend on it.
    let mut workload = StdRng::seed_from_u64(cli.seed ^ 0x005e_ed0f_7aa5);
    let start = Instant::now();
    let wall_start = SystemTime::now();
    let mut next_fault = 0;
    let mut next_snapshot = 0;
    let mut last_chain_read = Duration::ZERO;
    let mut last_progress = Duration::ZERO;
    let mut last_leader = None;
    loop {
        let tick = Instant::now();
        let now = start.elapsed();
        if interrupted.load(Ordering::SeqCst) {
            bail!("interrupted");
        }
        if now >= cli.duration && (!state.changing() || now >= cli.duration + MEMBERSHIP_OVERRUN) {
            break;
        }
        state.reap_exits(&mut cluster, now)?;
        state.heal_due(&mut cluster, now)?;
        state.stop_due(&mut cluster, now);
        // After the heals and before the starts of this tick, as the schedule has them.
        while next_snapshot < snapshots.len()
            && snapshots[next_snapshot]
                .snapshot_at()
                .is_some_and(|at| at <= now)
        {
            state.take_snapshot(&cluster, snapshots[next_snapshot], now);
            next_snapshot += 1;
        }
        while next_fault < plan.len() && plan[next_fault].at <= now {
            state.start_fault(&mut cluster, &plan[next_fault], last_leader, now)?;
            next_fault += 1;
        }
        state.advance_change(&mut cluster, now)?;
        let available = state.producer_available();
        let catching_up = state.catching_up_nodes();
        let leader = state
            .observer
            .poll(now, &cluster, available, &catching_up)
            .leader;
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
        &mut cluster,
        start,
        healed_at,
        resume_bound,
        interrupted,
    )?;
    let end = start.elapsed();
    state.observer.read_chains(end, &cluster);
    let (chains, says) = read_final_chains(&client, &cluster)?;
    let stranded = state.stranded_nodes(&chains, &says, target);
    let logs = NodeLogs {
        texts: cluster.nodes.iter().map(NodeProcess::log_text).collect(),
        started: wall_start,
    };
    Ok(judge(
        cli,
        &state,
        &chains,
        &stranded,
        &logs,
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
    cluster: &mut Cluster,
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
        state.reap_exits(cluster, now)?;
        // Every fault is healed, but a stranded node is still no producer.
        let available = state.producer_available();
        let catching_up = state.catching_up_nodes();
        let sample = state
            .observer
            .poll(now, cluster, available, &catching_up)
            .clone();
        if target.is_none()
            && checks::time_to_progress(&state.observer.samples, healed_at).is_some()
        {
            target = sample.max_height();
        }
        if let Some(target) = target
            && settled(&sample, &state.stranded, target)
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

/// Whether every node is where the checks can judge it: at `target` or above, or, stranded
/// past the streams' window without a peer (not waited for to converge), saying something in
/// its `last_error`: a stranded process restarted by the last fault needs a cycle or two before
/// it can say why it is stuck.
fn settled<S>(sample: &Sample, stranded: &[Option<S>], target: u64) -> bool {
    sample
        .heights
        .iter()
        .zip(&sample.said)
        .zip(stranded)
        .all(|((height, said), stranded)| {
            height.is_some_and(|height| height >= target)
                || (stranded.is_some() && said.last_error.is_some())
        })
}

/// Every node's chain from height 1 to its head, and what it says about why it does not advance.
pub(crate) type FinalChains = (Vec<Vec<BlockSummary>>, Vec<Option<String>>);

/// Reads every node's whole chain and what it says about why it does not advance.
///
/// # Errors
/// Fails when a node does not answer or cannot show a block below its head.
pub(crate) fn read_final_chains(client: &Client, cluster: &Cluster) -> Result<FinalChains> {
    // One thread a node: block by block, a chain of a few hundred blocks takes seconds, and
    // the nodes go on producing meanwhile.
    let reads: Vec<Result<(Vec<BlockSummary>, Option<String>)>> = thread::scope(|scope| {
        let readers: Vec<_> = cluster
            .nodes
            .iter()
            .map(|node| scope.spawn(move || read_final_chain(client, node)))
            .collect();
        readers
            .into_iter()
            .map(|reader| {
                reader
                    .join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a chain reader panicked")))
            })
            .collect()
    });
    let mut chains = Vec::new();
    let mut says = Vec::new();
    for read in reads {
        let (chain, said) = read?;
        chains.push(chain);
        says.push(said);
    }
    Ok((chains, says))
}

/// One node's whole chain, up to its head when asked, and what it says about why it does not
/// advance: the reason it stands aside, else its last cycle's failure.
fn read_final_chain(
    client: &Client,
    node: &NodeProcess,
) -> Result<(Vec<BlockSummary>, Option<String>)> {
    let status = retried(|| client.status(node.http))
        .with_context(|| format!("node n{} does not answer after the heal", node.index))?;
    let head = status.height;
    let mut chain = Vec::new();
    for height in 1..=head {
        match retried(|| client.block(node.http, height).flatten()) {
            Some(block) => chain.push(block),
            None => bail!(
                "node n{} cannot show its block at height {height}, below its head {head} ({FINAL_READ_ATTEMPTS} tries)",
                node.index
            ),
        }
    }
    // What the node says about being stuck: the reason it stands aside, which a transient
    // failure of its latest cycle (a quorum read during a fault) does not replace.
    Ok((chain, status.standing_aside.or(status.last_error)))
}

/// `read` until it gives an answer, at most [`FINAL_READ_ATTEMPTS`] times: a node under load may
/// miss one bound and answer the next.
fn retried<T>(read: impl Fn() -> Option<T>) -> Option<T> {
    for attempt in 0..FINAL_READ_ATTEMPTS {
        if let Some(answer) = read() {
            return Some(answer);
        }
        if attempt + 1 < FINAL_READ_ATTEMPTS {
            thread::sleep(TICK);
        }
    }
    None
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
    logs: &NodeLogs,
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
    let mut garbage = checks::garbage_outcomes(samples, &state.garbage, threshold);
    for outcome in &mut garbage {
        outcome.warnings = logs.between(outcome.window.from, outcome.window.to);
    }
    verdicts.push(checks::garbage_stops_said_why(&garbage, threshold));
    verdicts.push(checks::no_unexpected_exit(&state.exits));
    if !state.membership.is_empty() {
        verdicts.push(checks::membership_changes_complete(&state.membership));
    }

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
        garbage,
        membership: state.membership.clone(),
        exits: state.exits.clone(),
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

#[cfg(test)]
mod tests {
    #![allow(non_snake_case)]

    use super::*;
    use crate::observe::Said;

    fn sample(heights: &[Option<u64>], errors: &[Option<&str>]) -> Sample {
        Sample {
            at: Duration::ZERO,
            heights: heights.to_vec(),
            leader: None,
            producer_available: true,
            said: errors
                .iter()
                .map(|error| Said {
                    last_error: error.map(str::to_owned),
                    ..Said::default()
                })
                .collect(),
        }
    }

    #[test]
    fn settled__when_a_stranded_node_restarted_and_has_not_said_why_yet__then_waits_for_it() {
        // given: n1 stranded without a peer, just restarted: below the target, silent
        let stranded = [None, Some(()), None];
        let silent = sample(&[Some(120), Some(28), Some(121)], &[None, None, None]);
        let said = sample(
            &[Some(120), Some(28), Some(121)],
            &[
                None,
                Some("history: no history source (peer) is configured"),
                None,
            ],
        );

        // when / then
        assert!(!settled(&silent, &stranded, 120));
        assert!(settled(&said, &stranded, 120));
    }

    #[test]
    fn settled__when_a_node_with_peers_is_behind__then_waits_whatever_it_says() {
        // given
        let stranded: [Option<()>; 2] = [None, None];
        let behind = sample(&[Some(120), Some(90)], &[None, Some("history: peer slow")]);

        // when / then
        assert!(!settled(&behind, &stranded, 120));
    }
}
