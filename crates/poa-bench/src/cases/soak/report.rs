//! The soak's section of the report: a row per process with each resource's start, end,
//! maximum and slope over the judged half, a goal per variant and resource with its verdict,
//! one chart per resource, and the method. A verdict that is not flat becomes a failure of
//! the run. Owns the arithmetic on the samples, not the sampling.

use anyhow::Result;

use super::Resource;
use super::drive::{
    FleetRun, NodeSeries, Plan, RANGE_READ_BLOCKS, RANGE_READ_DEPTH, RANGE_READ_EVERY, READ_EVERY,
    TRANSACTION_BYTES, TRANSACTIONS_PER_NODE_PER_SECOND,
};
use super::verdict::{self, Bound, Judgement, MIN_JUDGED_SAMPLES, MIN_JUDGED_SECONDS};
use crate::chart;
use crate::fleet::FleetSettings;
use crate::model::{CaseReport, Goal, Row, Verdict};
use crate::prose::fill;
use crate::stats::Latencies;
use crate::templates::SOAK;

/// Builds the section from every fleet's run.
///
/// # Errors
/// Fails when a chart cannot be drawn.
pub(crate) fn build(
    runs: &[FleetRun],
    plan: &Plan,
    settings: &FleetSettings,
    bounds: &[(Resource, Bound)],
    missing: Option<String>,
) -> Result<CaseReport> {
    let mut report = CaseReport::default();
    let mut comparisons = Vec::new();
    for run in runs {
        for node in &run.nodes {
            report.rows.push(row(run, node, settings));
        }
        for (resource, bound) in bounds {
            let goal = goal(run, *resource, *bound);
            if goal.verdict == Verdict::Missed {
                let finding = format!(
                    "{}: {} not flat: {}",
                    run.variant.name,
                    resource.label(),
                    goal.measured
                );
                if run.variant.shipped {
                    report.failures.push(finding);
                } else {
                    comparisons.push(fill!(SOAK, "not-flat", finding = finding)?);
                }
            }
            report.goals.push(goal);
        }
    }
    let markers: Vec<(f64, String)> = runs
        .first()
        .map(|run| {
            run.disruptions
                .iter()
                .map(|(seconds, what)| (*seconds / 60.0, short(what)))
                .collect()
        })
        .unwrap_or_default();
    for (resource, _) in bounds {
        let lines: Vec<(String, Vec<(f64, f64)>)> = runs
            .iter()
            .flat_map(|run| {
                run.nodes.iter().map(move |node| {
                    (
                        format!("{}, {}", run.variant.name, node.name),
                        thinned(
                            &node
                                .samples
                                .iter()
                                .map(|sample| (sample.seconds / 60.0, resource.of(&sample.reading)))
                                .collect::<Vec<_>>(),
                        ),
                    )
                })
            })
            .collect();
        report.charts.push(chart::lines(
            &format!("bench-soak-{}.svg", file_stem(*resource)),
            &format!("Soak: {} of every process", resource.label()),
            ("minutes", resource.label()),
            &lines,
            &markers,
        )?);
    }
    report.notes.extend(comparisons);
    report.notes.push(method(plan, settings, bounds)?);
    for run in runs {
        report.notes.push(summary(run)?);
    }
    report.notes.extend(missing);
    Ok(report)
}

/// The verdict of one resource of one process: over the samples of the process that ran at the
/// end (a restarted node's earlier processes are not judged).
fn judgement(
    run: &FleetRun,
    node: &NodeSeries,
    resource: Resource,
    bound: Bound,
) -> Option<Judgement> {
    let last_pid = node.samples.last()?.pid;
    let points: Vec<(f64, f64)> = node
        .samples
        .iter()
        .filter(|sample| sample.pid == last_pid)
        .map(|sample| (sample.seconds, resource.of(&sample.reading)))
        .collect();
    verdict::judge(&points, run.seconds, bound)
}

fn row(run: &FleetRun, node: &NodeSeries, settings: &FleetSettings) -> Row {
    let mut row = Row::new(
        "soak",
        format!("{}, {}", run.variant.name, node.name),
        settings.redis_nodes,
        TRANSACTION_BYTES,
        &Latencies::new(),
    );
    let first = node.samples.first();
    let last = node.samples.last();
    let rss = |sample: Option<&super::drive::Sample>| {
        sample.map_or(0.0, |sample| Resource::Rss.of(&sample.reading))
    };
    row = row
        .with_value("rss_start_mib", rss(first))
        .with_value("rss_end_mib", rss(last));
    for (resource, name) in [
        (Resource::Rss, "rss"),
        (Resource::Descriptors, "fds"),
        (Resource::Threads, "threads"),
        (Resource::Connections, "tcp"),
    ] {
        let unbounded = Bound {
            per_hour: f64::MAX,
            ceiling: f64::MAX,
        };
        let judged = judgement(run, node, resource, unbounded);
        row = row
            .with_value(
                format!("{name}_max_2nd_half"),
                judged.map_or(f64::NAN, |judged| judged.max),
            )
            .with_value(
                format!("{name}_per_hour_2nd_half"),
                judged.map_or(f64::NAN, |judged| judged.per_hour),
            );
    }
    let heights = node.samples.iter().filter_map(|sample| sample.height);
    let blocks = heights.clone().max().unwrap_or(0) - heights.min().unwrap_or(0);
    row.with_value("blocks", blocks as f64)
        .with_value("restarts", f64::from(node.restarts))
}

fn goal(run: &FleetRun, resource: Resource, bound: Bound) -> Goal {
    let stated = format!(
        "{}: {} flat over the second half on every process (slope <= {}/h, max <= {})",
        run.variant.name,
        resource.label(),
        bound.per_hour,
        bound.ceiling
    );
    let judgements: Option<Vec<Judgement>> = run
        .nodes
        .iter()
        .map(|node| judgement(run, node, resource, bound))
        .collect();
    let Some(judgements) = judgements else {
        return Goal {
            goal: stated,
            measured: format!(
                "not judged: the second half of this {:.0} s run spans less than \
                 {MIN_JUDGED_SECONDS} s or holds fewer than {MIN_JUDGED_SAMPLES} samples",
                run.seconds
            ),
            verdict: Verdict::NotMeasured,
        };
    };
    let worst_slope = judgements
        .iter()
        .map(|judged| judged.per_hour)
        .fold(f64::MIN, f64::max);
    let max = judgements
        .iter()
        .map(|judged| judged.max)
        .fold(f64::MIN, f64::max);
    Goal {
        goal: stated,
        measured: format!("worst slope {worst_slope:+.1}/h, max {max:.1}"),
        verdict: if judgements.iter().all(|judged| judged.flat) {
            Verdict::Met
        } else {
            Verdict::Missed
        },
    }
}

fn method(plan: &Plan, settings: &FleetSettings, bounds: &[(Resource, Bound)]) -> Result<String> {
    let disruptions = plan
        .disruptions
        .iter()
        .map(|(fraction, what)| {
            fill!(
                SOAK,
                "method-disruption-item",
                disruption = what.label(),
                percent = fraction * 100.0,
            )
        })
        .collect::<Result<Vec<_>>>()?;
    let bounds = bounds
        .iter()
        .map(|(resource, bound)| {
            fill!(
                SOAK,
                "method-bound-item",
                resource = resource.label(),
                per_hour = bound.per_hour,
                ceiling = bound.ceiling,
            )
        })
        .collect::<Result<Vec<_>>>()?;
    fill!(
        SOAK,
        "method",
        fleet = settings.describe(),
        chain_cache_mib = settings.chain_cache_mib.unwrap_or_default(),
        transactions_per_node_per_second = TRANSACTIONS_PER_NODE_PER_SECOND,
        transaction_bytes = TRANSACTION_BYTES,
        read_every = READ_EVERY,
        range_read_blocks = RANGE_READ_BLOCKS,
        range_read_depth = RANGE_READ_DEPTH,
        range_read_every = RANGE_READ_EVERY,
        duration_s = plan.duration.as_secs(),
        disruptions = disruptions.join(", "),
        every_s = plan.every.as_secs_f64(),
        bounds = bounds.join("; "),
    )
}

fn summary(run: &FleetRun) -> Result<String> {
    let disruptions = run
        .disruptions
        .iter()
        .map(|(seconds, what)| {
            fill!(
                SOAK,
                "summary-disruption-item",
                disruption = what,
                seconds = *seconds,
            )
        })
        .collect::<Result<Vec<_>>>()?;
    fill!(
        SOAK,
        "summary",
        variant = &run.variant.name,
        requests_ok = run.requests_ok,
        requests_failed = run.requests_failed,
        leader_changes = run.leader_changes,
        disruptions = disruptions.join(", "),
    )
}

/// Most points a chart draws per series: an hour at one per 30 s, so a chart stays small.
const CHART_POINTS: usize = 120;

/// `points` cut to at most [`CHART_POINTS`]: each run of consecutive points becomes its last
/// time with its largest value, so a spike still shows.
fn thinned(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let per_point = points.len().div_ceil(CHART_POINTS).max(1);
    points
        .chunks(per_point)
        .filter_map(|chunk| {
            let (time, _) = chunk.last()?;
            let value = chunk
                .iter()
                .map(|(_, value)| *value)
                .fold(f64::MIN, f64::max);
            Some((*time, value))
        })
        .collect()
}

/// A chart marker's label: the first word of what was done.
fn short(what: &str) -> String {
    what.split_whitespace().next().unwrap_or("event").to_owned()
}

fn file_stem(resource: Resource) -> &'static str {
    match resource {
        Resource::Rss => "rss",
        Resource::Descriptors => "descriptors",
        Resource::Threads => "threads",
        Resource::Connections => "connections",
    }
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests {
    use std::time::Duration;

    use super::super::drive::{Sample, Variant};
    use super::*;
    use crate::process_probe::Reading;

    const BOUND: Bound = Bound {
        per_hour: 8.0,
        ceiling: 170.0,
    };

    /// A fleet of one node read every 10 s for an hour, its RSS from `rss_mib(seconds)`.
    fn run(shipped: bool, rss_mib: impl Fn(f64) -> f64) -> FleetRun {
        let samples = (0..=360_u32)
            .map(|step| {
                let seconds = f64::from(step) * 10.0;
                Sample {
                    seconds,
                    pid: 7,
                    height: Some(u64::from(step) * 40),
                    reading: Reading {
                        rss_kib: (rss_mib(seconds) * 1_024.0) as u64,
                        hwm_kib: (rss_mib(seconds) * 1_024.0) as u64,
                        descriptors: 23,
                        threads: 12,
                        connections: 8,
                    },
                }
            })
            .collect();
        FleetRun {
            variant: Variant {
                name: if shipped { "shipped" } else { "comparison" }.to_owned(),
                environment: Vec::new(),
                shipped,
            },
            nodes: vec![NodeSeries {
                name: "node 1".to_owned(),
                samples,
                restarts: 0,
            }],
            disruptions: Vec::new(),
            leader_changes: 0,
            requests_ok: 1,
            requests_failed: 0,
            seconds: 3_600.0,
        }
    }

    /// The section of `runs`, judged on RSS only.
    fn judged_rss(runs: &[FleetRun]) -> CaseReport {
        let plan = Plan {
            duration: Duration::from_secs(3_600),
            every: Duration::from_secs(10),
            disruptions: Vec::new(),
        };
        build(
            runs,
            &plan,
            &FleetSettings::FAST_LOOPBACK,
            &[(Resource::Rss, BOUND)],
            None,
        )
        .unwrap()
    }

    #[test]
    fn build__when_only_a_comparison_variant_leaks__then_a_finding_and_no_failure() {
        // given: the shipped variant flat at 30 MiB, the comparison growing 20 MiB per hour
        let runs = [
            run(true, |_| 30.0),
            run(false, |seconds| 30.0 + 20.0 * seconds / 3_600.0),
        ];

        // when
        let report = judged_rss(&runs);

        // then
        assert!(report.failures.is_empty(), "{:?}", report.failures);
        assert!(
            report
                .notes
                .iter()
                .any(|note| note.starts_with("**Not flat**") && note.contains("comparison")),
            "{:?}",
            report.notes
        );
        assert_eq!(report.goals[0].verdict, Verdict::Met);
        assert_eq!(report.goals[1].verdict, Verdict::Missed);
    }

    #[test]
    fn thinned__when_an_hour_of_samples__then_at_most_the_chart_points_and_spikes_kept() {
        // given: 721 samples, one spike
        let points: Vec<(f64, f64)> = (0..=720_u32)
            .map(|step| (f64::from(step), if step == 333 { 99.0 } else { 1.0 }))
            .collect();

        // when
        let thin = thinned(&points);

        // then
        assert!(thin.len() <= CHART_POINTS, "{}", thin.len());
        assert!(thin.iter().any(|(_, value)| *value == 99.0));
        assert_eq!(thin.last(), Some(&(720.0, 1.0)));
    }

    #[test]
    fn build__when_the_shipped_variant_leaks__then_the_run_fails() {
        // given
        let runs = [run(true, |seconds| 30.0 + 20.0 * seconds / 3_600.0)];

        // when
        let report = judged_rss(&runs);

        // then
        assert_eq!(report.failures.len(), 1, "{:?}", report.failures);
        assert!(report.failures[0].contains("shipped: RSS (MiB) not flat"));
    }
}
