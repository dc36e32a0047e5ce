//! Case `degraded`: the quorum publish with a bad node, each next to its healthy baseline on
//! the same adapter and servers: one node of 3 frozen with SIGSTOP, two of 5 frozen, and one
//! of 3 behind a proxy that holds every byte. Also reads the outstanding publish tasks gauge
//! while the fault lasts (each publish leaves a task waiting on the bad node).
//!
//! Always on local `redis-server`s, even with `--redis-url`: it must freeze them. Healthy and
//! degraded runs alternate in rounds, so machine noise falls on both alike. Owns no
//! production code; its words are in `templates/degraded.md`.

use std::time::Duration;

use adapter_redis::RedisConfig;
use anyhow::Result;
use poa_test_support::{FaultProxy, ProxyMode, RedisServer};

use crate::blocks::redis_config;
use crate::cases::publish::series::QuorumLeader;
use crate::chart;
use crate::context::BenchContext;
use crate::fixtures::{blocking, start_servers, urls_of};
use crate::model::{CaseReport, Goal, Row};
use crate::prose::fill;
use crate::stats::{Latencies, ratio};
use crate::templates::DEGRADED;

const CASE: &str = "degraded";
/// Block size of every series: the middle of the goals' sizes.
const BLOCK_BYTES: usize = 4 << 10;
/// The goal: degraded p50 within this factor of the healthy p50.
const RATIO_LIMIT: f64 = 1.2;
/// Bound on the outstanding tasks draining once the fault is lifted.
const DRAIN_BOUND: Duration = Duration::from_secs(5);
/// Bound on every node answering again once the fault is lifted.
const RECOVERY_BOUND: Duration = Duration::from_secs(10);

/// What goes wrong in a scenario.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// SIGSTOP the servers at these indexes.
    Freeze(&'static [usize]),
    /// Hold every byte to and from the last node at a proxy.
    Hold,
}

/// One bad-node scenario.
#[derive(Debug, Clone, Copy)]
struct Scenario {
    /// The report's name for it.
    label: &'static str,
    /// A short name for chart files.
    slug: &'static str,
    nodes: usize,
    fault: Fault,
}

impl Scenario {
    /// How many nodes still answer while the fault lasts.
    fn answering(self) -> usize {
        match self.fault {
            Fault::Freeze(indexes) => self.nodes - indexes.len(),
            Fault::Hold => self.nodes - 1,
        }
    }
}

const SCENARIOS: [Scenario; 3] = [
    Scenario {
        label: "1 of 3 frozen (SIGSTOP)",
        slug: "frozen-1-of-3",
        nodes: 3,
        fault: Fault::Freeze(&[2]),
    },
    Scenario {
        label: "2 of 5 frozen (SIGSTOP)",
        slug: "frozen-2-of-5",
        nodes: 5,
        fault: Fault::Freeze(&[3, 4]),
    },
    Scenario {
        label: "1 of 3 behind a hold-mode proxy",
        slug: "held-1-of-3",
        nodes: 3,
        fault: Fault::Hold,
    },
];

/// Latencies and gauge readings of one side (healthy or degraded) of a scenario.
#[derive(Default)]
struct Side {
    latencies: Latencies,
    outstanding: Vec<f64>,
}

impl Side {
    fn peak_outstanding(&self) -> f64 {
        self.outstanding.iter().copied().fold(0.0, f64::max)
    }

    fn mean_outstanding(&self) -> f64 {
        if self.outstanding.is_empty() {
            0.0
        } else {
            self.outstanding.iter().sum::<f64>() / self.outstanding.len() as f64
        }
    }
}

/// Both sides of one scenario, and the control.
struct Measured {
    scenario: Scenario,
    healthy: Side,
    degraded: Side,
    /// The answering nodes alone, every one of them needed for the quorum: the degraded
    /// quorum's arithmetic without a bad node to wait for.
    control: Side,
    /// Longest wait for the outstanding tasks to drain after the fault was lifted.
    longest_drain: Duration,
}

/// Measures case `degraded`.
///
/// # Errors
/// Fails when servers cannot start or freeze, or a publish fails.
pub(crate) async fn run(context: &BenchContext) -> Result<CaseReport> {
    let servers = start_servers(5).await?;
    let mut measured = Vec::new();
    for scenario in SCENARIOS {
        context.progress(CASE, scenario.label);
        measured.push(measure(context, &servers, scenario).await?);
    }
    let mut report = CaseReport::default();
    for result in &measured {
        add_scenario(&mut report, result)?;
    }
    report.notes = notes(context, &measured)?;
    Ok(report)
}

/// The fault of a scenario, switched on and off.
enum FaultSwitch<'a> {
    /// These servers get SIGSTOP, then SIGCONT.
    Frozen(Vec<&'a RedisServer>),
    /// This proxy holds, then passes.
    Held(FaultProxy),
}

impl FaultSwitch<'_> {
    /// Applies (`true`) or lifts (`false`) the fault. SIGSTOP/SIGCONT and a proxy mode are
    /// one cheap call each: harmless on an async thread.
    fn set(&self, faulty: bool) {
        match self {
            Self::Frozen(servers) => {
                for server in servers {
                    if faulty {
                        server.freeze();
                    } else {
                        server.thaw();
                    }
                }
            }
            Self::Held(proxy) => proxy.set_mode(if faulty {
                ProxyMode::Hold
            } else {
                ProxyMode::Pass
            }),
        }
    }
}

/// Alternates healthy and degraded runs of one scenario on one adapter.
async fn measure(
    context: &BenchContext,
    servers: &[RedisServer],
    scenario: Scenario,
) -> Result<Measured> {
    let mut urls = urls_of(&servers[..scenario.nodes]);
    let switch = match scenario.fault {
        Fault::Hold => {
            let upstream = servers[scenario.nodes - 1].addr();
            let proxy = blocking("starting the fault proxy", move || {
                FaultProxy::start(upstream)
            })
            .await?;
            if let Some(last) = urls.last_mut() {
                *last = proxy.url();
            }
            FaultSwitch::Held(proxy)
        }
        Fault::Freeze(indexes) => FaultSwitch::Frozen(
            indexes
                .iter()
                .filter_map(|&index| servers.get(index))
                .collect(),
        ),
    };
    let mut leader = QuorumLeader::lead(urls, context.unique_key(scenario.slug)).await?;
    let mut control = QuorumLeader::lead_with(all_needed(
        urls_of(&servers[..scenario.answering()]),
        context.unique_key(&format!("{}-control", scenario.slug)),
    ))
    .await?;
    let (rounds, per_round) = rounds(context);
    let extra_warm_up = context.scale(50, 5);
    let mut sides = [Side::default(), Side::default(), Side::default()];
    let [healthy, control_side, degraded] = &mut sides;
    let mut longest_drain = Duration::ZERO;
    for _ in 0..rounds {
        leader
            .warm_up(BLOCK_BYTES, extra_warm_up, RECOVERY_BOUND)
            .await?;
        publish_side(&mut leader, per_round, healthy).await?;
        control
            .warm_up(BLOCK_BYTES, extra_warm_up, RECOVERY_BOUND)
            .await?;
        publish_side(&mut control, per_round, control_side).await?;
        switch.set(true);
        let outcome = publish_side(&mut leader, per_round, degraded).await;
        // Lifted before any error is returned: a frozen server must not outlive the case.
        switch.set(false);
        outcome?;
        longest_drain = longest_drain.max(leader.drained(DRAIN_BOUND).await?);
    }
    leader.stop().await;
    control.stop().await;
    let [healthy, control, degraded] = sides;
    Ok(Measured {
        scenario,
        healthy,
        degraded,
        control,
        longest_drain,
    })
}

/// How many rounds of how many publishes per side: short rounds, so noise on the machine
/// falls on every side alike.
fn rounds(context: &BenchContext) -> (u64, u64) {
    (context.scale(8, 1), context.scale(375, 60))
}

/// The configuration of `urls` with a quorum of every node: the disruption budget raises the
/// majority to all of them.
fn all_needed(urls: Vec<String>, lease_key: String) -> RedisConfig {
    let nodes = urls.len();
    RedisConfig {
        quorum_disruption_budget: nodes - (nodes / 2 + 1),
        ..redis_config(urls, lease_key)
    }
}

/// Publishes `count` blocks, recording each latency and, between publishes (off the clock),
/// the outstanding publish tasks.
async fn publish_side(leader: &mut QuorumLeader, count: u64, side: &mut Side) -> Result<()> {
    for _ in 0..count {
        side.latencies
            .record(leader.publish_next(BLOCK_BYTES).await?);
        side.outstanding.push(leader.outstanding_tasks()?);
    }
    Ok(())
}

fn add_scenario(report: &mut CaseReport, measured: &Measured) -> Result<()> {
    let scenario = measured.scenario;
    let quantile = |side: &Side, quantile: f64| side.latencies.quantile_us(quantile) as f64;
    let healthy_p50 = quantile(&measured.healthy, 0.5);
    let degraded_p50 = quantile(&measured.degraded, 0.5);
    let p50_ratio = ratio(degraded_p50, healthy_p50).unwrap_or(f64::INFINITY);
    let healthy_name = format!("healthy baseline of: {}", scenario.label);
    let control_name = control_label(scenario);
    report
        .rows
        .push(side_row(&healthy_name, scenario.nodes, &measured.healthy));
    report.rows.push(side_row(
        &control_name,
        scenario.answering(),
        &measured.control,
    ));
    let mut row = side_row(scenario.label, scenario.nodes, &measured.degraded)
        .with_value("p50_vs_healthy", p50_ratio);
    for (name, q) in [("p50_vs_control", 0.5), ("p99_vs_control", 0.99)] {
        if let Some(value) = ratio(
            quantile(&measured.degraded, q),
            quantile(&measured.control, q),
        ) {
            row = row.with_value(name, value);
        }
    }
    report.rows.push(row);
    let goal = match scenario.fault {
        Fault::Freeze(&[_]) => {
            "one frozen node of three: publish p50 within 1.2x of the healthy case".to_owned()
        }
        _ => format!(
            "{}: publish p50 within 1.2x of the healthy case (the healthy quorum's latency \
             unchanged)",
            scenario.label
        ),
    };
    report.goals.push(Goal::at_most(
        goal,
        format!(
            "{p50_ratio:.2}x ({degraded_p50:.0} µs vs {healthy_p50:.0} µs); p99 {:.0} µs vs \
             {:.0} µs healthy, {:.0} µs for the {} answering nodes alone",
            quantile(&measured.degraded, 0.99),
            quantile(&measured.healthy, 0.99),
            quantile(&measured.control, 0.99),
            scenario.answering()
        ),
        p50_ratio,
        RATIO_LIMIT,
    ));
    report.charts.push(chart::latency_cdf(
        &format!("bench-degraded-{}.svg", scenario.slug),
        &format!("Quorum publish, {}, 4 KiB blocks", scenario.label),
        &[
            ("healthy".to_owned(), &measured.healthy.latencies),
            (scenario.label.to_owned(), &measured.degraded.latencies),
            (control_name, &measured.control.latencies),
        ],
    )?);
    Ok(())
}

/// The control's name: the answering nodes alone, all of them needed.
fn control_label(scenario: Scenario) -> String {
    format!(
        "control of: {}: the {} answering nodes alone, all needed",
        scenario.label,
        scenario.answering()
    )
}

fn side_row(variant: &str, nodes: usize, side: &Side) -> Row {
    Row::new(CASE, variant, nodes, BLOCK_BYTES, &side.latencies)
        .with_value("outstanding_tasks_peak", side.peak_outstanding())
        .with_value("outstanding_tasks_mean", side.mean_outstanding())
}

fn notes(context: &BenchContext, measured: &[Measured]) -> Result<Vec<String>> {
    let (rounds, per_round) = rounds(context);
    let drains = measured
        .iter()
        .map(|result| {
            fill!(
                DEGRADED,
                "drain",
                scenario = result.scenario.label,
                peak = result.degraded.peak_outstanding(),
                mean = result.degraded.mean_outstanding(),
                drain_ms = result.longest_drain.as_millis(),
            )
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(vec![
        fill!(DEGRADED, "method", rounds = rounds, per_round = per_round)?,
        fill!(DEGRADED, "outstanding", drains = drains.join("; "))?,
        fill!(
            DEGRADED,
            "reading",
            cores = std::thread::available_parallelism().map_or(0, usize::from),
            control_ratios = control_ratios(measured)?,
        )?,
    ])
}

/// `1 of 3 frozen (SIGSTOP): p50 0.99x, p99 0.65x; ...`: degraded over control.
fn control_ratios(measured: &[Measured]) -> Result<String> {
    let ratios = measured
        .iter()
        .map(|result| {
            let over_control = |quantile: f64| {
                ratio(
                    result.degraded.latencies.quantile_us(quantile) as f64,
                    result.control.latencies.quantile_us(quantile) as f64,
                )
                .map_or_else(|| "-".to_owned(), |value| format!("{value:.2}x"))
            };
            fill!(
                DEGRADED,
                "control-ratio",
                scenario = result.scenario.label,
                p50 = over_control(0.5),
                p99 = over_control(0.99),
            )
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(ratios.join("; "))
}
