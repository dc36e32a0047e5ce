//! Scale measurement `memory`: the steady-state memory of producing `poa-node` processes. A
//! leader and a follower on three local `redis-server`s produce fast blocks while transactions
//! are submitted to the leader; both processes' resident memory (`VmRSS`) and peak (`VmHWM`)
//! are read from `/proc/<pid>/status` (`crate::process_probe`) over a window, and reported as start, end, maximum
//! and growth per 1,000 blocks.
//!
//! It owns the sampling, the transaction load and the arithmetic; the processes come from
//! `crate::fleet`. Linux only (`/proc`), like the fleet itself.

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use poa_ports::BlockHeight;

use crate::chart;
use crate::context::BenchContext;
use crate::fleet::{self, Fleet, FleetSettings, NodeProcess, Progress};
use crate::model::{CaseReport, Row};
use crate::process_probe::Reading;
use crate::prose::fill;
use crate::stats::{Latencies, slope};
use crate::templates::SCALE;

/// A leader and one follower, with fast blocks so the window holds many of them.
const SETTINGS: FleetSettings = FleetSettings {
    nodes: 2,
    block_time: Duration::from_millis(50),
    poll_interval: Duration::from_millis(50),
    ..FleetSettings::FAST_LOOPBACK
};
/// Blocks produced before sampling starts (start-up allocations are not steady state).
const WARM_UP_BLOCKS: u64 = 40;
/// Bound of the wait for a steady leader.
const STEADY_DEADLINE: Duration = Duration::from_secs(30);
/// Transactions submitted to the leader per second (about ten per block).
const TRANSACTIONS_PER_SECOND: u32 = 200;
/// Size of each transaction.
const TRANSACTION_BYTES: usize = 256;
/// How long the submitter may outlive the window if nobody stops it (a bound, never reached
/// in a run that goes well).
const SUBMITTER_SLACK: Duration = Duration::from_secs(10);
const KIB_PER_MIB: f64 = 1_024.0;

/// Measures `memory`.
///
/// # Errors
/// Fails when the fleet cannot start, a process disappears, or `/proc` cannot be read.
pub(crate) async fn measure(context: &BenchContext) -> Result<CaseReport> {
    let binary = context.node_binary()?;
    let window = context.duration(Duration::from_secs(60), Duration::from_secs(5));
    let every = context.duration(Duration::from_millis(250), Duration::from_millis(100));
    let sampled = fleet::run_blocking(context, "scale", move |progress| {
        let fleet = Fleet::start(&binary, &SETTINGS)?;
        let leader = fleet.wait_for_steady_leader(WARM_UP_BLOCKS, STEADY_DEADLINE)?;
        let follower = usize::from(leader == 0);
        progress.say(format_args!(
            "memory: sampling the leader ({}) and a follower ({}) for {} s while submitting {} \
             transactions per second",
            fleet.nodes()[leader].name,
            fleet.nodes()[follower].name,
            window.as_secs(),
            TRANSACTIONS_PER_SECOND
        ));
        sample_under_load(&fleet, leader, follower, window, every, progress)
    })
    .await?;
    report(&sampled, window)
}

/// One sighting of a process.
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// Seconds since sampling started.
    seconds: f64,
    /// The node's chain height then.
    height: BlockHeight,
    memory: Reading,
}

/// What was sampled of one process.
#[derive(Debug, Clone)]
struct Series {
    /// `leader` or `follower`, as it was when sampling started.
    role: &'static str,
    name: String,
    samples: Vec<Sample>,
}

/// Everything the window produced.
#[derive(Debug, Clone)]
struct Sampled {
    series: Vec<Series>,
    /// Transactions the leader accepted, and those it refused or did not answer.
    accepted: u64,
    refused: u64,
    /// Whether the same process led from start to end.
    leader_kept: bool,
}

/// Samples both processes every `every` for `window` while a second thread submits
/// transactions to the leader.
fn sample_under_load(
    fleet: &Fleet,
    leader: usize,
    follower: usize,
    window: Duration,
    every: Duration,
    progress: &Progress,
) -> Result<Sampled> {
    let observed = [(leader, "leader"), (follower, "follower")];
    let stop = AtomicBool::new(false);
    let leader_node = &fleet.nodes()[leader];
    let (series, submitted) = thread::scope(|scope| {
        let submitter = scope.spawn(|| submit_transactions(leader_node, &stop, window));
        let series = sample(fleet, &observed, window, every);
        // Set before anything can return, so the scope's join never waits on the submitter.
        stop.store(true, Ordering::Relaxed);
        let submitted = submitter
            .join()
            .map_err(|_| anyhow!("the transaction submitter panicked"));
        (series, submitted)
    });
    let series = series?;
    let (accepted, refused) = submitted?;
    let leader_kept = leader_node.status().is_some_and(|status| status.is_leader);
    progress.say(format_args!(
        "memory: {accepted} transactions accepted, {refused} refused"
    ));
    Ok(Sampled {
        series,
        accepted,
        refused,
        leader_kept,
    })
}

/// Samples the `observed` nodes' memory and height every `every` for `window`.
fn sample(
    fleet: &Fleet,
    observed: &[(usize, &'static str)],
    window: Duration,
    every: Duration,
) -> Result<Vec<Series>> {
    let mut series: Vec<Series> = observed
        .iter()
        .map(|(index, role)| Series {
            role,
            name: fleet.nodes()[*index].name.clone(),
            samples: Vec::new(),
        })
        .collect();
    let started = Instant::now();
    let mut next = started;
    while next <= started + window {
        thread::sleep(next.saturating_duration_since(Instant::now()));
        let seconds = started.elapsed().as_secs_f64();
        for ((index, _), series) in observed.iter().zip(&mut series) {
            let node = &fleet.nodes()[*index];
            let pid = node
                .pid()
                .ok_or_else(|| anyhow!("{} is not running", node.name))?;
            let memory = Reading::of_process(pid)?;
            // A status that does not come in time keeps the last height: memory is the point.
            let height = node
                .status()
                .map(|status| status.height)
                .or_else(|| series.samples.last().map(|sample| sample.height));
            if let Some(height) = height {
                series.samples.push(Sample {
                    seconds,
                    height,
                    memory,
                });
            }
        }
        next += every;
    }
    Ok(series)
}

/// Submits distinct transactions to `leader` at [`TRANSACTIONS_PER_SECOND`] until `stop` (or
/// the window plus a slack has passed); returns how many were accepted and how many not.
fn submit_transactions(leader: &NodeProcess, stop: &AtomicBool, window: Duration) -> (u64, u64) {
    let interval = Duration::from_secs(1) / TRANSACTIONS_PER_SECOND;
    let started = Instant::now();
    let (mut accepted, mut refused) = (0_u64, 0_u64);
    let mut serial: u64 = 0;
    while !stop.load(Ordering::Relaxed) && started.elapsed() < window + SUBMITTER_SLACK {
        let mut body = format!("poa-bench memory transaction {serial:012} ").into_bytes();
        body.resize(TRANSACTION_BYTES, b'.');
        match leader.submit_transaction(&body) {
            Some(202) => accepted += 1,
            _ => refused += 1,
        }
        serial += 1;
        let due = started + interval * u32::try_from(serial).unwrap_or(u32::MAX);
        thread::sleep(due.saturating_duration_since(Instant::now()));
    }
    (accepted, refused)
}

/// The rows, chart and notes of the sampled window.
fn report(sampled: &Sampled, window: Duration) -> Result<CaseReport> {
    let mut report = CaseReport::default();
    let mut lines = Vec::new();
    let mut findings = Vec::new();
    for series in &sampled.series {
        let summary = Summary::of(&series.samples)
            .ok_or_else(|| anyhow!("no memory sample of {}", series.name))?;
        report.rows.push(
            Row::new(
                "scale",
                format!("memory: {} ({}), VmRSS", series.role, series.name),
                SETTINGS.redis_nodes,
                TRANSACTION_BYTES,
                &Latencies::new(),
            )
            .with_value("rss_start_mib", summary.start_mib)
            .with_value("rss_end_mib", summary.end_mib)
            .with_value("rss_max_mib", summary.max_mib)
            .with_value("hwm_mib", summary.hwm_mib)
            .with_value("blocks", summary.blocks as f64)
            .with_value(
                "growth_mib_per_1000_blocks",
                summary.growth_mib_per_1000_blocks,
            ),
        );
        findings.push(fill!(
            SCALE,
            "memory-item",
            role = series.role,
            start = summary.start_mib,
            end = summary.end_mib,
            max = summary.max_mib,
            hwm = summary.hwm_mib,
            blocks = summary.blocks,
            growth = summary.growth_mib_per_1000_blocks,
        )?);
        lines.push((
            format!("{} ({})", series.role, series.name),
            series
                .samples
                .iter()
                .map(|sample| (sample.seconds, sample.memory.rss_kib as f64 / KIB_PER_MIB))
                .collect(),
        ));
    }
    report.charts.push(chart::lines(
        "bench-scale-memory.svg",
        "Resident memory (VmRSS) of a producing leader and a follower",
        ("seconds", "VmRSS (MiB)"),
        &lines,
        &[],
    )?);
    let blocks = sampled
        .series
        .first()
        .and_then(|series| Summary::of(&series.samples))
        .map_or(0, |summary| summary.blocks);
    let payload_mib_per_1000_blocks = if blocks == 0 {
        0.0
    } else {
        (sampled.accepted * TRANSACTION_BYTES as u64) as f64 / blocks as f64 * 1_000.0
            / KIB_PER_MIB
            / KIB_PER_MIB
    };
    let mut note = fill!(
        SCALE,
        "memory",
        fleet = SETTINGS.describe(),
        warm_up_blocks = WARM_UP_BLOCKS,
        window_s = window.as_secs(),
        transaction_bytes = TRANSACTION_BYTES,
        transactions_per_second = TRANSACTIONS_PER_SECOND,
        accepted = sampled.accepted,
        refused = sampled.refused,
        payload_mib = payload_mib_per_1000_blocks,
        findings = findings.join("; "),
    )?;
    if !sampled.leader_kept {
        note.push(' ');
        note.push_str(&SCALE.text("memory-leadership-moved")?);
    }
    report.notes.push(note);
    Ok(report)
}

/// Start, end, maximum and growth of one process's samples.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Summary {
    start_mib: f64,
    end_mib: f64,
    max_mib: f64,
    hwm_mib: f64,
    blocks: u64,
    growth_mib_per_1000_blocks: f64,
}

impl Summary {
    /// `None` without samples; a growth of 0 when the height never moved.
    fn of(samples: &[Sample]) -> Option<Self> {
        let mib = |kib: u64| kib as f64 / KIB_PER_MIB;
        let (first, last) = (samples.first()?, samples.last()?);
        let points: Vec<(f64, f64)> = samples
            .iter()
            .map(|sample| (sample.height.get() as f64, sample.memory.rss_kib as f64))
            .collect();
        Some(Self {
            start_mib: mib(first.memory.rss_kib),
            end_mib: mib(last.memory.rss_kib),
            max_mib: mib(samples.iter().map(|sample| sample.memory.rss_kib).max()?),
            hwm_mib: mib(samples.iter().map(|sample| sample.memory.hwm_kib).max()?),
            blocks: last.height.get().saturating_sub(first.height.get()),
            growth_mib_per_1000_blocks: slope(&points).unwrap_or(0.0) * 1_000.0 / KIB_PER_MIB,
        })
    }
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests {
    use super::*;

    #[test]
    fn summary__when_rss_grows_one_mib_per_500_blocks__then_two_mib_per_1000_blocks() {
        // given
        let samples: Vec<Sample> = (0..=10_u64)
            .map(|step| Sample {
                seconds: step as f64,
                height: BlockHeight::new(100 + step * 50),
                memory: Reading {
                    rss_kib: 10_240 + step * 102,
                    hwm_kib: 20_480,
                    descriptors: 20,
                    threads: 5,
                    connections: 8,
                },
            })
            .collect();

        // when
        let summary = Summary::of(&samples).unwrap();

        // then
        assert_eq!(summary.blocks, 500);
        assert!((summary.start_mib - 10.0).abs() < 1e-9);
        assert!((summary.hwm_mib - 20.0).abs() < 1e-9);
        assert!(
            (summary.growth_mib_per_1000_blocks - 1.99).abs() < 0.01,
            "{summary:?}"
        );
    }
}
