//! The side-by-side comparison with a peer implementation (`--peer-bench`): a binary built from
//! fuel-core 0.48.3's own adapter that prints one JSON line of its latencies against the URLs
//! it is given. This module runs it against the publish case's servers, alternating with this
//! adapter on the same servers (publish alone, then the leader's cycle: leader state and
//! publish), and turns both into a table and the goals on the comparison.
//!
//! Owns running the peer and reading its line; it never builds the peer, and without
//! `--peer-bench` nothing here runs.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use super::series::QuorumLeader;
use crate::context::BenchContext;
use crate::fixtures::bounded;
use crate::model::{Goal, Verdict};
use crate::stats::{Latencies, ratio};

const CASE: &str = "publish";
/// The peer's node timeout, in milliseconds: the same as this adapter's default.
const PEER_NODE_TIMEOUT_MS: &str = "100";
/// This adapter's block payload beside the peer's default block (a header and a signature).
pub(super) const PEER_BLOCK_BYTES: usize = 256;
/// Unrecorded blocks before each of this adapter's rounds, as the peer warms up with 100.
const WARM_UP_BLOCKS: u64 = 100;
/// The goal on this adapter's cycle p50 over the peer's.
const CYCLE_RATIO_LIMIT: f64 = 0.5;

/// What is timed per block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// `publish_produced_block` alone.
    Publish,
    /// What a leader's production cycle asks of the adapter: `leader_state`, then the publish.
    Cycle,
}

impl Mode {
    const BOTH: [Self; 2] = [Self::Publish, Self::Cycle];

    /// The peer's name for the mode, also the table's.
    fn name(self) -> &'static str {
        match self {
            Self::Publish => "publish",
            Self::Cycle => "cycle",
        }
    }
}

/// The percentiles one run reports, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub(super) struct Percentiles {
    pub(super) p50_us: f64,
    pub(super) p90_us: f64,
    pub(super) p99_us: f64,
}

impl Percentiles {
    fn of(latencies: &Latencies) -> Self {
        Self {
            p50_us: latencies.quantile_us(0.5) as f64,
            p90_us: latencies.quantile_us(0.9) as f64,
            p99_us: latencies.quantile_us(0.99) as f64,
        }
    }

    /// Each percentile's median over `runs` (the middle run's, or the mean of the two middle
    /// ones).
    fn median(runs: &[Self]) -> Self {
        let median = |pick: fn(&Self) -> f64| {
            let mut values: Vec<f64> = runs.iter().map(pick).collect();
            values.sort_by(f64::total_cmp);
            match values.len() {
                0 => 0.0,
                count if count % 2 == 1 => values[count / 2],
                count => (values[count / 2 - 1] + values[count / 2]) / 2.0,
            }
        };
        Self {
            p50_us: median(|run| run.p50_us),
            p90_us: median(|run| run.p90_us),
            p99_us: median(|run| run.p99_us),
        }
    }
}

/// The peer's one JSON line.
#[derive(Debug, Deserialize)]
struct PeerLine {
    mode: String,
    nodes: usize,
    #[serde(flatten)]
    percentiles: Percentiles,
}

/// Reads the peer's output: the last line that parses as its JSON object, checked against the
/// mode and node count it was run with.
///
/// # Errors
/// Fails when no line parses, or the line is for another mode or node count.
pub(super) fn peer_line(stdout: &str, mode: Mode, nodes: usize) -> Result<Percentiles> {
    let Some(line) = stdout
        .lines()
        .rev()
        .find_map(|line| serde_json::from_str::<PeerLine>(line.trim()).ok())
    else {
        bail!("the peer bench printed no JSON line of latencies: {stdout:?}");
    };
    if line.mode != mode.name() || line.nodes != nodes {
        bail!(
            "the peer bench measured {} on {} nodes, not {} on {nodes}",
            line.mode,
            line.nodes,
            mode.name()
        );
    }
    Ok(line.percentiles)
}

/// Both sides of one mode: every round's percentiles.
#[derive(Debug)]
pub(super) struct Comparison {
    mode: Mode,
    ours: Vec<Percentiles>,
    peer: Vec<Percentiles>,
}

/// Runs this adapter and the peer in turn on `urls`, `rounds` times, both modes: in each round
/// this adapter's publishes, the peer's, this adapter's cycles, the peer's.
///
/// # Errors
/// Fails when the peer cannot run or its output cannot be read, or this adapter fails.
pub(super) async fn compare(
    context: &BenchContext,
    peer: &Path,
    urls: &[String],
) -> Result<Vec<Comparison>> {
    let rounds = context.scale(3, 1);
    let blocks = context.scale(2_000, 60);
    let mut comparisons: Vec<Comparison> = Mode::BOTH
        .into_iter()
        .map(|mode| Comparison {
            mode,
            ours: Vec::new(),
            peer: Vec::new(),
        })
        .collect();
    for round in 1..=rounds {
        for comparison in &mut comparisons {
            let mode = comparison.mode;
            context.progress(
                CASE,
                format_args!(
                    "side by side, round {round} of {rounds}: {} x {blocks}, this adapter then \
                     the peer, N = {}",
                    mode.name(),
                    urls.len()
                ),
            );
            comparison
                .ours
                .push(ours(context, urls, mode, blocks).await?);
            comparison
                .peer
                .push(run_peer(peer, urls, mode, blocks).await?);
        }
    }
    Ok(comparisons)
}

/// This adapter's round: a fresh leader, an unrecorded warm-up, then `blocks` timed blocks.
async fn ours(
    context: &BenchContext,
    urls: &[String],
    mode: Mode,
    blocks: u64,
) -> Result<Percentiles> {
    let key = context.unique_key(&format!("publish-side-by-side-{}", mode.name()));
    let mut leader = QuorumLeader::lead(urls.to_vec(), key).await?;
    let mut latencies = Latencies::new();
    for block in 0..WARM_UP_BLOCKS + blocks {
        let elapsed = match mode {
            Mode::Publish => leader.publish_next(PEER_BLOCK_BYTES).await?,
            Mode::Cycle => leader.cycle_next(PEER_BLOCK_BYTES).await?,
        };
        if block >= WARM_UP_BLOCKS {
            latencies.record(elapsed);
        }
    }
    leader.stop().await;
    Ok(Percentiles::of(&latencies))
}

/// One run of the peer binary.
async fn run_peer(peer: &Path, urls: &[String], mode: Mode, blocks: u64) -> Result<Percentiles> {
    let mut command = Command::new(peer);
    command.args([
        urls.join(","),
        blocks.to_string(),
        PEER_NODE_TIMEOUT_MS.to_owned(),
        mode.name().to_owned(),
    ]);
    let shown = format!("{}", peer.display());
    let output = blocking_output(command, &shown).await?;
    if !output.status.success() {
        bail!(
            "the peer bench {shown} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    peer_line(&String::from_utf8_lossy(&output.stdout), mode, urls.len())
}

/// Runs `command` to its end on the blocking pool, bounded (the peer times a few thousand
/// blocks: seconds on any machine that can run the bench).
async fn blocking_output(mut command: Command, shown: &str) -> Result<std::process::Output> {
    const PEER_BOUND: Duration = Duration::from_secs(300);
    let what = format!("the peer bench {shown}");
    bounded(
        &what,
        PEER_BOUND,
        tokio::task::spawn_blocking(move || command.output()),
    )
    .await?
    .with_context(|| format!("{what} did not run to its end"))?
    .with_context(|| format!("cannot run {what} (pass a built binary to --peer-bench)"))
}

/// The side-by-side table: per mode, each side's median percentiles over the rounds and their
/// ratios (this adapter over the peer: below 1 is faster).
pub(super) fn table(comparisons: &[Comparison], nodes: usize) -> String {
    let mut table = format!(
        "Side by side with fuel-core 0.48.3's adapter (`--peer-bench`), N = {nodes}, median \
         of each percentile over {} alternating rounds:\n\n\
         | per block | this adapter p50 | p90 | p99 | fuel-core 0.48.3 p50 | p90 | p99 | p50 ratio | p99 ratio |\n\
         |---|---|---|---|---|---|---|---|---|\n",
        comparisons
            .first()
            .map_or(0, |comparison| comparison.ours.len())
    );
    for comparison in comparisons {
        let (ours, peer) = comparison.medians();
        table.push_str(&format!(
            "| {} | {:.0} µs | {:.0} µs | {:.0} µs | {:.0} µs | {:.0} µs | {:.0} µs | {} | {} |\n",
            match comparison.mode {
                Mode::Publish => "publish",
                Mode::Cycle => "cycle (leader state + publish)",
            },
            ours.p50_us,
            ours.p90_us,
            ours.p99_us,
            peer.p50_us,
            peer.p90_us,
            peer.p99_us,
            ratio_text(ours.p50_us, peer.p50_us),
            ratio_text(ours.p99_us, peer.p99_us),
        ));
    }
    table
}

fn ratio_text(ours: f64, peer: f64) -> String {
    ratio(ours, peer).map_or_else(|| "-".to_owned(), |value| format!("{value:.2}"))
}

impl Comparison {
    fn medians(&self) -> (Percentiles, Percentiles) {
        (
            Percentiles::median(&self.ours),
            Percentiles::median(&self.peer),
        )
    }
}

/// The goals on the comparison: the cycle p50 at most half the peer's; the publish alone no
/// slower at p50 and faster at p99.
pub(super) fn goals(comparisons: &[Comparison], nodes: usize) -> Vec<Goal> {
    let mut goals = Vec::new();
    for comparison in comparisons {
        let (ours, peer) = comparison.medians();
        let p50_ratio = ratio(ours.p50_us, peer.p50_us).unwrap_or(f64::INFINITY);
        let p99_ratio = ratio(ours.p99_us, peer.p99_us).unwrap_or(f64::INFINITY);
        let p50_measured = format!(
            "{p50_ratio:.2}x ({:.0} µs vs {:.0} µs)",
            ours.p50_us, peer.p50_us
        );
        match comparison.mode {
            Mode::Cycle => goals.push(Goal::at_most(
                format!(
                    "cycle (leader state + publish) p50 at N = {nodes} at most half of \
                     fuel-core 0.48.3's, side by side"
                ),
                p50_measured,
                p50_ratio,
                CYCLE_RATIO_LIMIT,
            )),
            Mode::Publish => {
                goals.push(Goal::at_most(
                    format!(
                        "publish p50 at N = {nodes} no slower than fuel-core 0.48.3's, side by \
                         side"
                    ),
                    p50_measured,
                    p50_ratio,
                    1.0,
                ));
                goals.push(Goal {
                    goal: format!(
                        "publish p99 at N = {nodes} faster than fuel-core 0.48.3's, side by side"
                    ),
                    measured: format!(
                        "{p99_ratio:.2}x ({:.0} µs vs {:.0} µs)",
                        ours.p99_us, peer.p99_us
                    ),
                    verdict: if p99_ratio < 1.0 {
                        Verdict::Met
                    } else {
                        Verdict::Missed
                    },
                });
            }
        }
    }
    goals
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests {
    use super::*;

    #[test]
    fn peer_line__when_the_peer_printed_its_line__then_its_percentiles() {
        // given: what the peer prints, after a log line
        let stdout = "connected\n{\"impl\":\"fuel-core-0.48.3\",\"mode\":\"cycle\",\"nodes\":3,\
                      \"blocks\":2000,\"p50_us\":430,\"p90_us\":520,\"p99_us\":700,\
                      \"max_us\":2100,\"blocks_per_s\":2200}\n";

        // when
        let percentiles = peer_line(stdout, Mode::Cycle, 3).unwrap();

        // then
        assert_eq!(
            percentiles,
            Percentiles {
                p50_us: 430.0,
                p90_us: 520.0,
                p99_us: 700.0
            }
        );
    }

    #[test]
    fn peer_line__when_another_mode_or_no_line__then_error_says_which() {
        // given
        let publish = "{\"mode\":\"publish\",\"nodes\":3,\"p50_us\":1,\"p90_us\":2,\"p99_us\":3}";

        // when
        let wrong_mode = peer_line(publish, Mode::Cycle, 3).unwrap_err();
        let nothing = peer_line("thread 'main' panicked", Mode::Publish, 3).unwrap_err();

        // then
        assert!(
            wrong_mode.to_string().contains("not cycle on 3"),
            "{wrong_mode}"
        );
        assert!(nothing.to_string().contains("no JSON line"), "{nothing}");
    }

    #[test]
    fn goals__when_ours_is_faster__then_met_and_the_table_shows_ratios() {
        // given: two rounds of each side, cycle and publish
        let run = |p50_us, p99_us| Percentiles {
            p50_us,
            p90_us: p50_us,
            p99_us,
        };
        let comparisons = vec![
            Comparison {
                mode: Mode::Publish,
                ours: vec![run(170.0, 300.0), run(180.0, 320.0)],
                peer: vec![run(200.0, 400.0), run(210.0, 420.0)],
            },
            Comparison {
                mode: Mode::Cycle,
                ours: vec![run(180.0, 320.0), run(190.0, 340.0)],
                peer: vec![run(420.0, 600.0), run(440.0, 640.0)],
            },
        ];

        // when
        let goals = goals(&comparisons, 3);
        let table = table(&comparisons, 3);

        // then
        let verdicts: Vec<_> = goals.iter().map(|goal| goal.verdict).collect();
        assert_eq!(verdicts, vec![Verdict::Met; 3]);
        assert!(
            goals[2].measured.starts_with("0.43x (185 µs vs 430 µs)"),
            "{:?}",
            goals[2]
        );
        assert!(
            table.contains(
                "| publish | 175 µs | 175 µs | 310 µs | 205 µs | 205 µs | 410 µs | 0.85 | 0.76 |"
            ),
            "{table}"
        );
    }
}
