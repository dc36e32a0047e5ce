//! Scale measurement `stragglers`: the outstanding publish tasks during and after a burst of
//! blocks published as fast as possible while one node of 3 straggles, once frozen with
//! SIGSTOP (thawed when the burst ends) and once behind a proxy that holds every byte (kept
//! holding, so only the node timeouts end the tasks). Reports the gauge's peak, how long it
//! took to drain back to 0 after the burst, and whether it did.
//!
//! Always on local `redis-server`s (it must freeze one). Owns no production code.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use poa_test_support::{FaultProxy, ProxyMode, RedisServer};

use crate::blocks::node_timeout;
use crate::cases::publish::series::{GaugeSampler, QuorumLeader, write_blocks};
use crate::chart;
use crate::context::BenchContext;
use crate::fixtures::{blocking, start_servers, urls_of};
use crate::model::{CaseReport, Row};
use crate::prose::fill;
use crate::stats::Latencies;
use crate::templates::SCALE;

const CASE: &str = "scale";
const BLOCK_BYTES: usize = 4 << 10;
/// Bound on the gauge draining after the burst: far above the node timeout.
const DRAIN_BOUND: Duration = Duration::from_secs(10);
/// Bound on every node answering before the burst.
const READY_BOUND: Duration = Duration::from_secs(10);
/// How often the gauge is sampled.
const SAMPLE_PERIOD: Duration = Duration::from_millis(2);
/// How long the sampler keeps going after the gauge drained, so the chart shows it flat.
const TAIL: Duration = Duration::from_millis(50);

/// How the third node straggles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Straggler {
    /// SIGSTOP during the burst, SIGCONT when it ends.
    Frozen,
    /// Held by a proxy during the burst and after it: only the node timeouts end the tasks.
    Held,
}

impl Straggler {
    fn label(self) -> &'static str {
        match self {
            Self::Frozen => "1 of 3 frozen, thawed when the burst ends",
            Self::Held => "1 of 3 held by a proxy, never released",
        }
    }

    fn legend(self) -> &'static str {
        match self {
            Self::Frozen => "frozen, thawed at burst end",
            Self::Held => "held, timeouts only",
        }
    }
}

/// One burst and what the gauge did.
struct Burst {
    straggler: Straggler,
    blocks: u64,
    latencies: Latencies,
    burst: Duration,
    /// Time from the end of the burst (the thaw) until the gauge read 0, if it did.
    drain: Option<Duration>,
    /// `(ms since the burst started, outstanding tasks)`.
    samples: Vec<(f64, f64)>,
}

impl Burst {
    fn peak(&self) -> f64 {
        self.samples
            .iter()
            .map(|sample| sample.1)
            .fold(0.0, f64::max)
    }
}

/// Measures `stragglers`.
///
/// # Errors
/// Fails when servers cannot start or a publish fails.
pub(crate) async fn measure(context: &BenchContext) -> Result<CaseReport> {
    let servers = start_servers(3).await?;
    let mut bursts = Vec::new();
    for straggler in [Straggler::Frozen, Straggler::Held] {
        context.progress(
            CASE,
            format_args!("stragglers: burst with {}", straggler.label()),
        );
        bursts.push(burst(context, &servers, straggler).await?);
    }
    report(&bursts)
}

/// Publishes one burst with the straggler in place and follows the gauge until it drains.
async fn burst(
    context: &BenchContext,
    servers: &[RedisServer],
    straggler: Straggler,
) -> Result<Burst> {
    let mut urls = urls_of(servers);
    let proxy = if straggler == Straggler::Held {
        let upstream = servers[2].addr();
        let proxy = blocking("starting the fault proxy", move || {
            FaultProxy::start(upstream)
        })
        .await?;
        urls[2] = proxy.url();
        Some(proxy)
    } else {
        None
    };
    let mut leader = QuorumLeader::lead(urls, context.unique_key("stragglers")).await?;
    leader.warm_up(BLOCK_BYTES, 20, READY_BOUND).await?;
    if leader.drained(DRAIN_BOUND).await.is_err() {
        bail!("publish tasks were still outstanding before the burst");
    }
    let blocks = context.scale(3_000, 300);
    match &proxy {
        Some(proxy) => proxy.set_mode(ProxyMode::Hold),
        None => servers[2].freeze(),
    }
    let started = Instant::now();
    let sampler = GaugeSampler::start(leader.registry(), SAMPLE_PERIOD);
    let mut latencies = Latencies::new();
    let published = write_blocks(&mut leader, blocks, BLOCK_BYTES, &mut latencies).await;
    let burst = started.elapsed();
    // Thawed before any error is returned: a frozen server must not outlive the measurement.
    if proxy.is_none() {
        servers[2].thaw();
    }
    published?;
    let drain = leader.drained(DRAIN_BOUND).await.ok();
    tokio::time::sleep(TAIL).await;
    let samples = sampler
        .finish()
        .await?
        .into_iter()
        .map(|(at, outstanding)| (at.as_secs_f64() * 1e3, outstanding))
        .collect();
    if let Some(proxy) = &proxy {
        proxy.set_mode(ProxyMode::Pass);
    }
    leader.stop().await;
    Ok(Burst {
        straggler,
        blocks,
        latencies,
        burst,
        drain,
        samples,
    })
}

fn report(bursts: &[Burst]) -> Result<CaseReport> {
    let mut report = CaseReport::default();
    let mut findings = Vec::new();
    for burst in bursts {
        let blocks_per_second = burst.blocks as f64 / burst.burst.as_secs_f64().max(1e-9);
        let drain_ms = burst
            .drain
            .map_or(f64::NAN, |drain| drain.as_secs_f64() * 1e3);
        report.rows.push(
            Row::new(
                CASE,
                format!("stragglers: {}", burst.straggler.label()),
                3,
                BLOCK_BYTES,
                &burst.latencies,
            )
            .with_value("blocks_per_second", blocks_per_second)
            .with_value("outstanding_tasks_peak", burst.peak())
            .with_value("drain_ms", drain_ms)
            .with_value(
                "returned_to_zero",
                f64::from(u8::from(burst.drain.is_some())),
            ),
        );
        findings.push(match burst.drain {
            Some(drain) => fill!(
                SCALE,
                "stragglers-drained-item",
                straggler = burst.straggler.label(),
                peak = burst.peak(),
                blocks = burst.blocks,
                burst_ms = burst.burst.as_millis(),
                drain_ms = drain.as_millis(),
            )?,
            None => fill!(
                SCALE,
                "stragglers-stuck-item",
                straggler = burst.straggler.label(),
                peak = burst.peak(),
                bound_s = DRAIN_BOUND.as_secs(),
            )?,
        });
    }
    // Time counts from each burst's end, so the drains line up at 0 whatever the burst took.
    let series: Vec<(String, Vec<(f64, f64)>)> = bursts
        .iter()
        .map(|burst| {
            let end_ms = burst.burst.as_secs_f64() * 1e3;
            let points = burst
                .samples
                .iter()
                .map(|&(at_ms, outstanding)| (at_ms - end_ms, outstanding))
                .collect();
            (burst.straggler.legend().to_owned(), points)
        })
        .collect();
    let markers = [(0.0, "burst ends".to_owned())];
    report.charts.push(chart::lines(
        "bench-scale-stragglers.svg",
        "Outstanding publish tasks during and after a burst, 1 of 3 nodes straggling",
        (
            "ms since the burst ended (negative: during the burst)",
            "poa_outstanding_publish_tasks",
        ),
        &series,
        &markers,
    )?);
    report.notes.push(fill!(
        SCALE,
        "stragglers",
        sample_ms = SAMPLE_PERIOD.as_millis(),
        node_timeout_ms = node_timeout().as_millis(),
        findings = findings.join("; "),
    )?);
    Ok(report)
}
