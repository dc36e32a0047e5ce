//! Case `naive`: the baseline the fan-out is built to beat. The same fenced writes sent to one
//! node after another, each waiting for the previous reply (one one-node adapter per node,
//! published in turn through the port: production's own per-node path, only sequenced), next
//! to the adapter's real fan-out publish on the same servers, at
//! N = 3 and 5 and every block size; then with one node of 3 frozen (SIGSTOP), where the naive
//! sequence pays a node timeout per block and the fan-out does not.
//!
//! A sample is one block: the whole sequence, or one `publish_produced_block`. Leases are taken
//! before a series and are not timed. This module never changes the adapter's behaviour; it
//! only drives it. Its words are in `templates/naive.md`.

use std::time::Instant;

use adapter_chain::ReferenceChain;
use adapter_redis::RedisReconciliation;
use anyhow::{Context, Result, bail};
use poa_ports::{BlockReconciliationPort, LeaderState, ReconciliationError};
use poa_test_support::RedisServer;
use prometheus_client::registry::Registry;

use crate::blocks::{BLOCK_SIZES, block_of, node_timeout, redis_config};
use crate::chart;
use crate::cleanup::leftover_keys_note;
use crate::context::BenchContext;
use crate::fixtures::{HANG_BOUND, WARM_UP, bounded, start_servers};
use crate::model::{CaseReport, Row};
use crate::prose::fill;
use crate::stats::{Latencies, ratio};
use crate::templates::NAIVE;

const CASE: &str = "naive";
/// The node counts the goals name.
const NODE_COUNTS: [usize; 2] = [3, 5];
/// The block size of the frozen-node series and of the chart.
const CHART_SIZE: usize = 4 << 10;
/// The frozen node in the frozen series: the middle of the naive order, so even the sequence
/// that stops at a quorum meets it before it has one.
const FROZEN_NODE: usize = 1;

/// Where the naive sequence stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sequence {
    /// Every node, one after another.
    AllNodes,
    /// One after another until a quorum stored the block.
    StopAtQuorum,
}

/// What one series measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    /// One one-node adapter's publish after another.
    Naive(Sequence),
    /// The adapter's `publish_produced_block`.
    FanOut,
}

impl Method {
    const ALL: [Self; 3] = [
        Self::Naive(Sequence::AllNodes),
        Self::Naive(Sequence::StopAtQuorum),
        Self::FanOut,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::Naive(Sequence::AllNodes) => "naive sequence, all nodes",
            Self::Naive(Sequence::StopAtQuorum) => "naive sequence, stop at quorum",
            Self::FanOut => "fan-out quorum publish",
        }
    }
}

/// One measured series of this case.
struct Series {
    method: Method,
    nodes: usize,
    size: usize,
    /// Whether node [`FROZEN_NODE`] was frozen.
    frozen: bool,
    measured: Measured,
}

impl Series {
    fn variant(&self) -> String {
        if self.frozen {
            format!(
                "{}, node {} of 3 frozen",
                self.method.label(),
                FROZEN_NODE + 1
            )
        } else {
            self.method.label().to_owned()
        }
    }
}

/// Unanswered calls to healthy nodes a series tolerates: a stalled machine (two shared cores,
/// a debug build) may let a call run past the node timeout now and then; more means a node
/// is gone and the series cannot measure.
const MAX_UNEXPECTED_UNANSWERED: u64 = 20;

/// The samples of one series and the calls in it that got no answer in time.
struct Measured {
    latencies: Latencies,
    /// Write calls (naive) or publishes (fan-out) that ended without an answer. Their blocks
    /// are timed like any other: a frozen node's writes, or a healthy node stalled.
    unanswered: u64,
    /// Of those, the ones on nodes that were not frozen.
    unexpected: u64,
}

impl Measured {
    fn new() -> Self {
        Self {
            latencies: Latencies::new(),
            unanswered: 0,
            unexpected: 0,
        }
    }

    /// Counts one unanswered call (`expected` on the frozen node).
    ///
    /// # Errors
    /// Fails once more than [`MAX_UNEXPECTED_UNANSWERED`] calls to healthy nodes went
    /// unanswered.
    fn unanswered(&mut self, expected: bool, error: &dyn std::fmt::Display) -> Result<()> {
        self.unanswered += 1;
        if !expected {
            self.unexpected += 1;
        }
        if self.unexpected > MAX_UNEXPECTED_UNANSWERED {
            bail!(
                "{} calls to healthy nodes got no answer, the last: {error}",
                self.unexpected
            );
        }
        Ok(())
    }
}

/// Measures the naive sequences and the fan-out publish, healthy on the `--redis-url` servers
/// or local ones, and with one node frozen on local ones.
///
/// # Errors
/// Fails when a server cannot start or a healthy node refuses or misses a write.
pub(crate) async fn run(context: &BenchContext) -> Result<CaseReport> {
    let local = if context.redis_urls().is_empty() {
        start_servers(NODE_COUNTS[NODE_COUNTS.len() - 1]).await?
    } else {
        Vec::new()
    };
    let urls: Vec<String> = if local.is_empty() {
        context.redis_urls().to_vec()
    } else {
        local.iter().map(RedisServer::url).collect()
    };
    let mut counts: Vec<usize> = NODE_COUNTS
        .into_iter()
        .filter(|count| *count <= urls.len())
        .collect();
    if counts.is_empty() {
        counts.push(urls.len());
    }

    let mut series = Vec::new();
    for &nodes in &counts {
        for size in BLOCK_SIZES {
            for method in Method::ALL {
                series.push(measure(context, &urls[..nodes], size, method, None).await?);
            }
        }
    }
    let frozen_note = if local.len() >= 3 {
        let urls: Vec<String> = local[..3].iter().map(RedisServer::url).collect();
        for method in Method::ALL {
            let frozen = Some(&local[FROZEN_NODE]);
            series.push(measure(context, &urls, CHART_SIZE, method, frozen).await?);
        }
        None
    } else {
        Some(fill!(
            NAIVE,
            "no-frozen-series",
            leftover_keys = leftover_keys_note()
        )?)
    };

    let chart_nodes = counts[0];
    let chart_series: Vec<(String, &Latencies)> = series
        .iter()
        .filter(|one| one.nodes == chart_nodes && one.size == CHART_SIZE)
        .map(|one| (one.variant(), &one.measured.latencies))
        .collect();
    let chart = chart::latency_cdf(
        "bench-naive-latency.svg",
        &format!("Naive sequence vs fan-out, N = {chart_nodes}, 4 KiB blocks"),
        &chart_series,
    )?;
    let mut notes = vec![method_note(&series, chart_nodes)?];
    notes.extend(frozen_note);
    Ok(CaseReport {
        rows: rows(&series),
        goals: Vec::new(),
        charts: vec![chart],
        notes,
        failures: Vec::new(),
    })
}

/// One series of `method` on `urls`; with `frozen`, that server (node [`FROZEN_NODE`]) is frozen
/// once the leases are taken and thawed before this returns, also on failure.
async fn measure(
    context: &BenchContext,
    urls: &[String],
    size: usize,
    method: Method,
    frozen: Option<&RedisServer>,
) -> Result<Series> {
    let mut series = Series {
        method,
        nodes: urls.len(),
        size,
        frozen: frozen.is_some(),
        measured: Measured::new(),
    };
    let samples = match method {
        Method::Naive(_) if frozen.is_some() => context.scale(100, 3),
        _ => context.scale(2_000, 60),
    };
    let name = format!("{}, N = {}, {size} B", series.variant(), urls.len());
    context.progress(CASE, format_args!("{name} x {samples}"));
    series.measured = match method {
        Method::Naive(sequence) => {
            naive_sequence(context, urls, size, sequence, samples, frozen).await
        }
        Method::FanOut => fan_out_publish(context, urls, size, samples, frozen).await,
    }
    .with_context(|| name.clone())?;
    Ok(series)
}

/// Freezes a server for as long as it lives; thaws it on drop, so no path leaves it stopped.
struct Frozen<'a>(&'a RedisServer);

impl<'a> Frozen<'a> {
    fn freeze(server: &'a RedisServer) -> Self {
        server.freeze();
        Self(server)
    }
}

impl Drop for Frozen<'_> {
    fn drop(&mut self) {
        self.0.thaw();
    }
}

/// One block after another, each published through one one-node adapter per node in order,
/// one publish in flight: the writes production sends to each node, through its own per-node
/// path, only sequenced instead of fanned out. With `frozen`, node [`FROZEN_NODE`] is frozen
/// once the leases are taken. A publish without an answer is counted and the sequence goes on
/// to the next node; any other failure fails the series.
async fn naive_sequence(
    context: &BenchContext,
    urls: &[String],
    size: usize,
    sequence: Sequence,
    samples: u64,
    frozen: Option<&RedisServer>,
) -> Result<Measured> {
    let quorum = urls.len() / 2 + 1;
    let key = context.unique_key("naive-sequence");
    let mut adapters = Vec::with_capacity(urls.len());
    for url in urls {
        adapters.push(leading_adapter(vec![url.clone()], key.clone()).await?);
    }
    let mut measured = Measured::new();
    {
        let _frozen = frozen.map(Frozen::freeze);
        let warm_up = if frozen.is_some() { 1 } else { WARM_UP };
        for height in 1..=warm_up + samples {
            let block = block_of(height, size);
            let started = Instant::now();
            let mut stored = 0;
            for (node, adapter) in adapters.iter().enumerate() {
                match bounded(
                    "publish",
                    HANG_BOUND,
                    adapter.publish_produced_block(&block),
                )
                .await?
                {
                    Ok(()) => stored += 1,
                    Err(error @ ReconciliationError::NoQuorum { .. }) => {
                        let expected = frozen.is_some() && node == FROZEN_NODE;
                        measured.unanswered(expected, &error)?;
                    }
                    Err(error) => return Err(error.into()),
                }
                if sequence == Sequence::StopAtQuorum && stored == quorum {
                    break;
                }
            }
            let elapsed = started.elapsed();
            if height > warm_up {
                measured.latencies.record(elapsed);
            }
        }
    }
    for adapter in &adapters {
        adapter.shutdown(HANG_BOUND).await;
    }
    Ok(measured)
}

/// An adapter over `urls` under `key` that took the lease and leads a reconciled, empty log.
async fn leading_adapter(
    urls: Vec<String>,
    key: String,
) -> Result<RedisReconciliation<ReferenceChain>> {
    let mut registry = Registry::default();
    let config = redis_config(urls, key);
    let adapter = bounded(
        "connecting the adapter",
        HANG_BOUND,
        RedisReconciliation::connect(config, crate::blocks::verifier(), Some(&mut registry)),
    )
    .await??;
    let state = bounded(
        "leader_state",
        HANG_BOUND,
        adapter.leader_state(crate::blocks::head_below(1)),
    )
    .await??;
    if state != LeaderState::ReconciledLeader {
        bail!("the adapter does not lead on a fresh lease key");
    }
    Ok(adapter)
}

/// The adapter's fan-out publish at rising heights after it took the lease on a fresh key.
/// With `frozen`, that server is frozen once the lease is taken. A publish that found no
/// quorum in time is counted and timed; any other failure fails the series.
async fn fan_out_publish(
    context: &BenchContext,
    urls: &[String],
    size: usize,
    samples: u64,
    frozen: Option<&RedisServer>,
) -> Result<Measured> {
    let adapter = leading_adapter(urls.to_vec(), context.unique_key("naive-fan-out")).await?;
    let mut measured = Measured::new();
    {
        let _frozen = frozen.map(Frozen::freeze);
        for height in 1..=WARM_UP + samples {
            let block = block_of(height, size);
            let started = Instant::now();
            match bounded(
                "publish",
                HANG_BOUND,
                adapter.publish_produced_block(&block),
            )
            .await?
            {
                Ok(()) => {}
                Err(error @ ReconciliationError::NoQuorum { .. }) => {
                    measured.unanswered(false, &error)?;
                }
                Err(error) => return Err(error.into()),
            }
            let elapsed = started.elapsed();
            if height > WARM_UP {
                measured.latencies.record(elapsed);
            }
        }
    }
    adapter.shutdown(HANG_BOUND).await;
    Ok(measured)
}

/// One row per series with its unanswered calls; naive rows also carry their p50 as a
/// multiple of the fan-out's at the same node count, size and health.
fn rows(series: &[Series]) -> Vec<Row> {
    series
        .iter()
        .map(|one| {
            let latencies = &one.measured.latencies;
            let row = Row::new(CASE, one.variant(), one.nodes, one.size, latencies)
                .with_value("unanswered_calls", one.measured.unanswered as f64);
            match p50_vs_fan_out(series, one) {
                Some(ratio) => row.with_value("p50_vs_fan_out", ratio),
                None => row,
            }
        })
        .collect()
}

/// A naive series' p50 over the fan-out p50 at the same node count, size and health; `None`
/// for a fan-out series or when no fan-out matches.
fn p50_vs_fan_out(series: &[Series], one: &Series) -> Option<f64> {
    if one.method == Method::FanOut {
        return None;
    }
    let fan_out = series.iter().find(|other| {
        other.method == Method::FanOut
            && other.nodes == one.nodes
            && other.size == one.size
            && other.frozen == one.frozen
    })?;
    ratio(
        one.measured.latencies.quantile_us(0.5) as f64,
        fan_out.measured.latencies.quantile_us(0.5) as f64,
    )
}

/// The method and the headline ratios, in words: one paragraph.
fn method_note(series: &[Series], nodes: usize) -> Result<String> {
    let p50_ms = |method: Method, frozen: bool| {
        series
            .iter()
            .find(|one| {
                one.method == method
                    && one.frozen == frozen
                    && one.nodes == nodes
                    && one.size == CHART_SIZE
            })
            .map(|one| one.measured.latencies.quantile_us(0.5) as f64 / 1000.0)
    };
    let mut sentences = vec![NAIVE.text("method")?];
    let all = p50_ms(Method::Naive(Sequence::AllNodes), false);
    let quorum = p50_ms(Method::Naive(Sequence::StopAtQuorum), false);
    let fan_out = p50_ms(Method::FanOut, false);
    if let (Some(all), Some(quorum), Some(fan_out)) = (all, quorum, fan_out) {
        sentences.push(fill!(
            NAIVE,
            "healthy",
            nodes = nodes,
            all = all,
            quorum = quorum,
            fan_out = fan_out
        )?);
    }
    let frozen_all = p50_ms(Method::Naive(Sequence::AllNodes), true);
    let frozen_quorum = p50_ms(Method::Naive(Sequence::StopAtQuorum), true);
    let frozen_fan_out = p50_ms(Method::FanOut, true);
    if let (Some(all), Some(quorum), Some(fan_out)) = (frozen_all, frozen_quorum, frozen_fan_out) {
        sentences.push(fill!(
            NAIVE,
            "frozen",
            frozen_node = FROZEN_NODE + 1,
            node_timeout_ms = node_timeout().as_millis(),
            all = all,
            quorum = quorum,
            fan_out = fan_out,
        )?);
    }
    let naive_ahead = series.iter().any(|one| {
        one.method == Method::Naive(Sequence::StopAtQuorum)
            && !one.frozen
            && p50_vs_fan_out(series, one).is_some_and(|ratio| ratio < 1.0)
    });
    if naive_ahead {
        sentences.push(NAIVE.text("cores")?);
    }
    Ok(sentences.join(" "))
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn series(method: Method, frozen: bool, p50_us: u64) -> Series {
        let mut latencies = Latencies::new();
        latencies.record(Duration::from_micros(p50_us));
        Series {
            method,
            nodes: 3,
            size: CHART_SIZE,
            frozen,
            measured: Measured {
                latencies,
                unanswered: 0,
                unexpected: 0,
            },
        }
    }

    #[test]
    fn rows__when_healthy_and_frozen_series__then_naive_rows_compare_with_the_fan_out_of_their_health()
     {
        // given
        let naive = Method::Naive(Sequence::AllNodes);
        let series = vec![
            series(naive, false, 900),
            series(Method::FanOut, false, 300),
            series(naive, true, 100_000),
            series(Method::FanOut, true, 400),
        ];

        // when
        let rows = rows(&series);

        // then
        let healthy = rows[0].value("p50_vs_fan_out").unwrap();
        let degraded = rows[2].value("p50_vs_fan_out").unwrap();
        assert!((healthy - 3.0).abs() < 0.01, "{healthy}");
        assert!((degraded - 250.0).abs() < 0.5, "{degraded}");
        assert_eq!(rows[1].value("p50_vs_fan_out"), None);
        assert_eq!(rows[3].value("p50_vs_fan_out"), None);
        assert!(
            rows[2].variant.ends_with("node 2 of 3 frozen"),
            "{}",
            rows[2].variant
        );
    }
}
