//! Case `failover`: SIGKILL and SIGTERM of the leading `poa-node` process in a fleet of three
//! on three local `redis-server`s, repeated, and each run's production gap (from the stopped
//! leader's last block to its successor's first, read from the blocks' timestamps) against the
//! budget of docs/operations.md. Always on local servers: it kills processes.
//!
//! - `gap`: the budget, the successor's first height, median and worst (pure).
//! - `handover`: one measured handover on the fleet.
//!
//! This file owns the runs and the report; it measures through `handover` only, and its words
//! are in `templates/failover.md`.

mod gap;
mod handover;

use std::time::Duration;

use anyhow::{Context, Result, anyhow};

use self::gap::Stop;
use self::handover::{Handover, Windows};
use crate::chart;
use crate::context::BenchContext;
use crate::fleet::{self, Fleet, FleetSettings};
use crate::model::{CaseReport, Chart, Goal, Row};
use crate::prose::fill;
use crate::stats::Latencies;
use crate::templates::FAILOVER;

/// The fleet: three producers on three Redis nodes, a handover in about a second.
const SETTINGS: FleetSettings = FleetSettings::FAST_LOOPBACK;
/// Closest two timeline markers may be, in seconds, to get a label each.
const MARKERS_APART_S: f64 = 0.5;
/// The ways a leader is stopped, in the order each round runs them.
const STOPS: [Stop; 2] = [Stop::Kill, Stop::Terminate];

/// Measures case `failover`.
///
/// # Errors
/// Fails when the fleet cannot start or a handover cannot be measured (nobody takes over in
/// time, the chain cannot be read); a gap over budget is a verdict, not an error.
pub(crate) async fn run(context: &BenchContext) -> Result<CaseReport> {
    let binary = context.node_binary()?;
    let rounds = context.scale(5, 1);
    let window = context.duration(Duration::from_secs(1), Duration::from_millis(500));
    let windows = Windows {
        before: window,
        after: window,
    };
    let handovers = fleet::run_blocking(context, "failover", move |progress| {
        let mut fleet = Fleet::start(&binary, &SETTINGS)?;
        progress.say(format_args!("started {}", SETTINGS.describe()));
        let mut handovers = Vec::new();
        for round in 1..=rounds {
            // Stratified over the block interval (10 %, 30 %, ... 90 % of it for five
            // rounds), so the gaps from the last block cover where a signal really falls.
            let phase = (2 * round - 1) as f64 / (2 * rounds) as f64;
            let after_block = SETTINGS.block_time.mul_f64(phase);
            for stop in STOPS {
                let handover = handover::measure(&mut fleet, stop, after_block, windows, progress)
                    .with_context(|| format!("{} run {round}", stop.signal()))?;
                progress.say(format_args!(
                    "{} run {round}/{rounds}: {} took over from {}, gap {} ms from its last \
                     block, {} ms from the signal",
                    stop.signal(),
                    handover.successor,
                    handover.stopped,
                    handover.gap.as_millis(),
                    handover.signal_to_first_block.as_millis()
                ));
                handovers.push(handover);
            }
        }
        Ok(handovers)
    })
    .await?;
    report(&handovers)
}

/// The rows, goals, charts and notes of the measured handovers.
fn report(handovers: &[Handover]) -> Result<CaseReport> {
    let mut report = CaseReport::default();
    let mut bars = Vec::new();
    let mut findings = Vec::new();
    for stop in STOPS {
        let runs: Vec<&Handover> = handovers.iter().filter(|run| run.stop == stop).collect();
        let gaps: Vec<Duration> = runs.iter().map(|run| run.gap).collect();
        let from_signal: Vec<Duration> = runs.iter().map(|run| run.signal_to_first_block).collect();
        let spread = gap::spread(&gaps).ok_or_else(|| anyhow!("no {} run", stop.signal()))?;
        let signal_spread =
            gap::spread(&from_signal).ok_or_else(|| anyhow!("no {} run", stop.signal()))?;
        let budget = gap::budget(stop, &SETTINGS);
        let signal = stop.signal();
        report.rows.push(
            Row::new(
                "failover",
                format!("{signal}: last block of the leader to the first of the next"),
                SETTINGS.redis_nodes,
                0,
                &latencies(&gaps),
            )
            .with_value("median_ms", millis(spread.median))
            .with_value("worst_ms", millis(spread.worst))
            .with_value("budget_ms", millis(budget)),
        );
        report.rows.push(
            Row::new(
                "failover",
                format!("{signal}: the signal to the next leader's first block"),
                SETTINGS.redis_nodes,
                0,
                &latencies(&from_signal),
            )
            .with_value("median_ms", millis(signal_spread.median))
            .with_value("worst_ms", millis(signal_spread.worst)),
        );
        report.goals.push(Goal::at_most(
            goal_text(stop, budget),
            format!(
                "median {} ms, worst {} ms over {} runs (from the signal: median {} ms, worst \
                 {} ms)",
                spread.median.as_millis(),
                spread.worst.as_millis(),
                runs.len(),
                signal_spread.median.as_millis(),
                signal_spread.worst.as_millis()
            ),
            millis(spread.worst),
            millis(budget),
        ));
        for (index, run) in runs.iter().enumerate() {
            bars.push((format!("{signal} run {}", index + 1), millis(run.gap)));
        }
        bars.push((format!("{signal} budget"), millis(budget)));
        findings.push(finding(stop, &runs, spread.median, budget)?);
        if let Some(first) = runs.first() {
            report.charts.push(timeline_chart(first)?);
        }
    }
    report.charts.push(chart::bars(
        "bench-failover-gaps.svg",
        "Production gap of each run (the leader's last block to the next leader's first) and its budget",
        "ms",
        &bars,
    )?);
    report.notes.push(fill!(
        FAILOVER,
        "method",
        fleet = SETTINGS.describe(),
        steady_blocks = handover::STEADY_BLOCKS,
    )?);
    report.notes.push(findings.join(" "));
    Ok(report)
}

/// The goal as docs/operations.md states it, with this fleet's numbers.
fn goal_text(stop: Stop, budget: Duration) -> String {
    let poll = SETTINGS.poll_interval.as_millis();
    let jitter = SETTINGS.poll_jitter().as_millis();
    let block = SETTINGS.block_time.as_millis();
    match stop {
        Stop::Kill => format!(
            "SIGKILL failover within lease TTL + poll interval + one block: {} + {poll} (+ {jitter} \
             jitter) + {block} = {} ms",
            SETTINGS.lease_ttl.as_millis(),
            budget.as_millis()
        ),
        Stop::Terminate => format!(
            "SIGTERM handover within poll interval + one block: {poll} (+ {jitter} jitter) + \
             {block} = {} ms",
            budget.as_millis()
        ),
    }
}

/// One sentence on a stop's runs: the median against the budget, what it is made of, and how
/// SIGTERMed leaders exited.
fn finding(stop: Stop, runs: &[&Handover], median: Duration, budget: Duration) -> Result<String> {
    let signal = stop.signal();
    let headroom_ms = budget.saturating_sub(median).as_millis();
    match stop {
        Stop::Kill => fill!(
            FAILOVER,
            "finding-kill",
            signal = signal,
            median_ms = median.as_millis(),
            beyond_ttl_ms = median.saturating_sub(SETTINGS.lease_ttl).as_millis(),
            headroom_ms = headroom_ms,
        ),
        Stop::Terminate => {
            let clean = runs
                .iter()
                .filter(|run| run.exit.is_some_and(|exit| exit.success()))
                .count();
            fill!(
                FAILOVER,
                "finding-terminate",
                signal = signal,
                median_ms = median.as_millis(),
                headroom_ms = headroom_ms,
                clean = clean,
                runs = runs.len(),
            )
        }
    }
}

/// The timeline of one handover: each node's head height over time, the blocks' timestamps,
/// and markers at the signal and at the successor's first block.
fn timeline_chart(run: &Handover) -> Result<Chart> {
    let signal = run.stop.signal();
    let mut series = run.timeline.nodes.clone();
    series.push((
        "blocks (producer timestamps)".to_owned(),
        run.timeline.blocks.clone(),
    ));
    let first_height = run.last_block.get().saturating_add(1) as f64;
    let first_at = run
        .timeline
        .blocks
        .iter()
        .find(|(_, height)| *height == first_height)
        .map(|(at, _)| *at);
    let signalled = format!("{signal} {}", run.stopped);
    // Marker labels are drawn at the top of their line: two close lines share one label.
    let markers = match first_at {
        Some(at) if at >= MARKERS_APART_S => vec![
            (0.0, signalled),
            (at, format!("first block of {}", run.successor)),
        ],
        Some(at) => vec![(
            0.0,
            format!(
                "{signalled}; first block of {} at +{:.0} ms",
                run.successor,
                at * 1_000.0
            ),
        )],
        None => vec![(0.0, signalled)],
    };
    chart::lines(
        &format!("bench-failover-timeline-{}.svg", signal.to_lowercase()),
        &format!(
            "Failover timeline: {signal} of the leader ({}), gap {} ms",
            run.stopped,
            run.gap.as_millis()
        ),
        ("seconds since the signal", "block height"),
        &series,
        &markers,
    )
}

fn latencies(runs: &[Duration]) -> Latencies {
    let mut latencies = Latencies::new();
    for run in runs {
        latencies.record(*run);
    }
    latencies
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1_000.0
}
