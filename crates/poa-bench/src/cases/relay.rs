//! Case `relay`: transaction submissions through a follower of a three-producer fleet whose
//! processes name each other as peers, with every peer answering and with one more peer that
//! is frozen (accepts TCP, never answers). The follower relays every accepted transaction to its
//! peers; a frozen peer must cost the submit path nothing: the goal puts throughput and p99 with
//! it within 1.2x of the healthy run. Always on local servers: it starts processes.
//!
//! This file owns the load, the runs and the report; the fleet comes from `fleet`, the words
//! from `templates/relay.md`.

use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use poa_test_support::HalfAliveListener;

use crate::context::BenchContext;
use crate::fleet::{self, Fleet, FleetSettings, NodeProcess};
use crate::model::{CaseReport, Goal, Row};
use crate::prose::fill;
use crate::stats::{Latencies, ratio};
use crate::templates::RELAY;

/// Three producers on three Redis nodes, as the failover case runs them.
const SETTINGS: FleetSettings = FleetSettings::FAST_LOOPBACK;
/// Client threads submitting at once, each waiting for its answer before the next submission:
/// fewer than it takes to fill the pool faster than the leader's blocks drain it.
const CLIENTS: usize = 8;
/// Bound of one submission.
const SUBMIT_TIMEOUT: Duration = Duration::from_secs(10);
/// Blocks the fleet produces steadily before the load starts.
const STEADY_BLOCKS: u64 = 3;
/// The goal's ratio: frozen within this factor of healthy.
const GOAL_RATIO: f64 = 1.2;

/// What one load run measured.
struct LoadRun {
    /// Latency of every submission answered 202.
    latencies: Latencies,
    /// Submissions answered 202.
    accepted: u64,
    /// Submissions answered otherwise or not at all.
    refused: u64,
    /// The run's length.
    elapsed: Duration,
}

impl LoadRun {
    /// Adds another run of the same scenario.
    fn add(&mut self, other: LoadRun) {
        self.latencies.add(&other.latencies);
        self.accepted += other.accepted;
        self.refused += other.refused;
        self.elapsed += other.elapsed;
    }

    fn per_second(&self) -> f64 {
        self.accepted as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }
}

/// Measures case `relay`.
///
/// # Errors
/// Fails when a fleet cannot start, no follower is found, or a run accepts nothing.
pub(crate) async fn run(context: &BenchContext) -> Result<CaseReport> {
    let binary = context.node_binary()?;
    let duration = context.duration(Duration::from_secs(5), Duration::from_secs(1));
    let rounds = context.scale(4, 1);
    let runs = fleet::run_blocking(context, "relay", move |progress| {
        let mut runs: Vec<(&'static str, LoadRun)> = Vec::new();
        // Alternating rounds, so machine noise falls on both sides alike.
        for frozen in (0..rounds).flat_map(|_| [false, true]) {
            let listener = frozen.then(HalfAliveListener::start);
            let extra: Vec<String> = listener
                .iter()
                .map(|listener| format!("http://{}", listener.addr()))
                .collect();
            let fleet = Fleet::start_meshed(&binary, &SETTINGS, &extra)?;
            let leader = fleet.wait_for_steady_leader(STEADY_BLOCKS, Duration::from_secs(30))?;
            let follower = fleet
                .nodes()
                .iter()
                .enumerate()
                .find(|(index, _)| *index != leader)
                .map(|(_, node)| node)
                .ok_or_else(|| anyhow!("the fleet has no follower"))?;
            let label = if frozen {
                "one peer frozen"
            } else {
                "healthy peers"
            };
            let run = submit_load(follower, label, duration)?;
            progress.say(format_args!(
                "{label}: {:.0} tx/s, p99 {} us, {} accepted, {} refused",
                run.per_second(),
                run.latencies.quantile_us(0.99),
                run.accepted,
                run.refused
            ));
            match runs.iter_mut().find(|(seen, _)| *seen == label) {
                Some((_, total)) => total.add(run),
                None => runs.push((label, run)),
            }
        }
        Ok(runs)
    })
    .await?;
    report(&runs, duration.as_secs())
}

/// [`CLIENTS`] threads submitting distinct transactions to `node` for `duration`.
fn submit_load(node: &NodeProcess, label: &str, duration: Duration) -> Result<LoadRun> {
    let url = format!("http://{}/transactions", node.http());
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(SUBMIT_TIMEOUT))
        .http_status_as_error(false)
        .max_idle_connections_per_host(CLIENTS)
        .build()
        .into();
    let started = Instant::now();
    let results = thread::scope(|scope| {
        let workers: Vec<_> = (0..CLIENTS)
            .map(|client| {
                let (agent, url) = (agent.clone(), url.clone());
                scope.spawn(move || {
                    let mut samples = Vec::new();
                    let mut refused = 0_u64;
                    let mut sequence = 0_u64;
                    while started.elapsed() < duration {
                        sequence += 1;
                        let body = format!("{label} client {client} transaction {sequence}");
                        let sent = Instant::now();
                        match agent.post(&url).send(body.as_bytes()) {
                            Ok(response) if response.status().as_u16() == 202 => {
                                samples.push(sent.elapsed());
                            }
                            _ => refused += 1,
                        }
                    }
                    (samples, refused)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| {
                worker
                    .join()
                    .map_err(|_| anyhow!("a client thread panicked"))
            })
            .collect::<Result<Vec<_>>>()
    })?;
    let elapsed = started.elapsed();
    let mut run = LoadRun {
        latencies: Latencies::new(),
        accepted: 0,
        refused: 0,
        elapsed,
    };
    for (samples, refused) in results {
        run.accepted += samples.len() as u64;
        run.refused += refused;
        for sample in samples {
            run.latencies.record(sample);
        }
    }
    if run.accepted == 0 {
        bail!("{label}: no submission was accepted");
    }
    Ok(run)
}

/// The rows, goals and notes of the two runs.
fn report(runs: &[(&str, LoadRun)], duration_secs: u64) -> Result<CaseReport> {
    let [(_, healthy), (_, frozen)] = runs else {
        bail!("expected a healthy and a frozen run, got {}", runs.len());
    };
    let mut report = CaseReport::default();
    for (label, run) in runs {
        report.rows.push(
            Row::new(
                "relay",
                format!("submit through a follower, {label}"),
                SETTINGS.redis_nodes,
                0,
                &run.latencies,
            )
            .with_value("transactions_per_second", run.per_second())
            .with_value("accepted", run.accepted as f64)
            .with_value("refused", run.refused as f64),
        );
    }
    let p99 = |run: &LoadRun| run.latencies.quantile_us(0.99) as f64;
    let latency_ratio = ratio(p99(frozen), p99(healthy)).context("no healthy p99")?;
    let throughput_ratio =
        ratio(healthy.per_second(), frozen.per_second()).context("no frozen throughput")?;
    report.goals.push(Goal::at_most(
        format!("submit p99 through a follower with one peer frozen <= {GOAL_RATIO}x healthy"),
        format!(
            "{latency_ratio:.2}x ({} us vs {} us)",
            p99(frozen),
            p99(healthy)
        ),
        latency_ratio,
        GOAL_RATIO,
    ));
    report.goals.push(Goal::at_most(
        format!(
            "submit throughput through a follower with one peer frozen >= healthy / {GOAL_RATIO}"
        ),
        format!(
            "healthy is {throughput_ratio:.2}x frozen ({:.0} vs {:.0} tx/s)",
            healthy.per_second(),
            frozen.per_second()
        ),
        throughput_ratio,
        GOAL_RATIO,
    ));
    report.notes.push(fill!(
        RELAY,
        "method",
        fleet = SETTINGS.describe(),
        duration_s = duration_secs,
        steady_blocks = STEADY_BLOCKS,
        clients = CLIENTS,
    )?);
    Ok(report)
}
