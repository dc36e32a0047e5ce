//! Case `lease`: acquiring the leader lease on 3 local nodes, healthy and with a half-alive
//! node (accepts TCP, never answers) in place of the third, through the adapter's port exactly
//! as a follower takes the lead (`leader_state` on a free lease) and,
//! on the same servers, the `rslock` crate (module `rslock`). The goal: with the half-alive
//! node, acquisition within about one node timeout.
//!
//! A sample is one acquisition, timed alone: the adapter releases through the port before each
//! one (untimed),
//! rslock locks a fresh resource. Always local servers: a half-alive node cannot be put among
//! `--redis-url` servers. This module measures; it never changes the adapter. Its words are in
//! `templates/lease.md`.

mod rslock;

use std::time::{Duration, Instant};

use adapter_chain::ReferenceChain;
use adapter_redis::RedisReconciliation;
use anyhow::{Context, Result, bail};
use poa_ports::{BlockReconciliationPort, LeaderState};
use poa_test_support::{HalfAliveListener, RedisServer};
use prometheus_client::registry::Registry;

use crate::blocks::{head_below, node_timeout, redis_config, verifier};
use crate::chart;
use crate::context::BenchContext;
use crate::fixtures::{HANG_BOUND, WARM_UP, bounded, start_servers};
use crate::model::{CaseReport, Goal, Row};
use crate::prose::fill;
use crate::stats::{Latencies, ratio};
use crate::templates::LEASE;

const CASE: &str = "lease";
const NODES: usize = 3;
/// The goal's "about one node timeout", as a multiple of it.
const GOAL_NODE_TIMEOUTS: f64 = 1.5;
/// Warm-up acquisitions of the half-alive series (each costs a node timeout or more).
const HALF_ALIVE_WARM_UP: u64 = 2;

/// When the adapter's acquisition starts after its release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    /// At once: the goal's sample.
    AtOnce,
    /// After the previous attempt's per-node tasks have ended (two node timeouts: a promote
    /// and the release of its possible grant), as a follower's next poll cycle starts.
    Settled,
}

/// One measured series of this case.
struct Series {
    variant: &'static str,
    latencies: Latencies,
    /// Named counts for the row: failed acquisitions, calls that reached the bound.
    counts: Vec<(&'static str, u64)>,
}

/// Measures both leases, healthy and with one half-alive node of 3.
///
/// # Errors
/// Fails when the servers cannot start or a series acquires nothing at all.
pub(crate) async fn run(context: &BenchContext) -> Result<CaseReport> {
    let servers = start_servers(NODES).await?;
    let half_alive = tokio::task::spawn_blocking(HalfAliveListener::start)
        .await
        .context("cannot start the half-alive listener")?;
    let healthy: Vec<String> = servers.iter().map(RedisServer::url).collect();
    let mut with_half_alive = healthy[..NODES - 1].to_vec();
    with_half_alive.push(half_alive.url());
    // rslock gets the adapter's TTL; a lock that takes longer than its TTL is worthless, so
    // that is also the bound of each rslock call.
    let ttl = redis_config(healthy.clone(), String::new()).lease_ttl;
    let healthy_samples = (WARM_UP, context.scale(2_000, 60));
    let half_alive_samples = (HALF_ALIVE_WARM_UP, context.scale(100, 4));

    let series = [
        adapter_series(
            context,
            "adapter lease, healthy",
            &healthy,
            healthy_samples,
            Start::AtOnce,
        )
        .await?,
        adapter_series(
            context,
            "adapter lease, node 3 half-alive",
            &with_half_alive,
            half_alive_samples,
            Start::AtOnce,
        )
        .await?,
        adapter_series(
            context,
            "adapter lease, node 3 half-alive, earlier tasks ended",
            &with_half_alive,
            half_alive_samples,
            Start::Settled,
        )
        .await?,
        rslock_series(context, "rslock, healthy", &healthy, healthy_samples, ttl).await?,
        rslock_series(
            context,
            "rslock, node 3 half-alive",
            &with_half_alive,
            (1, context.scale(20, 2)),
            ttl,
        )
        .await?,
    ];

    let timeout_us = node_timeout().as_micros() as f64;
    let rows = series
        .iter()
        .map(|one| {
            let p50 = one.latencies.quantile_us(0.5) as f64;
            let row = Row::new(CASE, one.variant, NODES, 0, &one.latencies)
                .with_value("p50_node_timeouts", ratio(p50, timeout_us).unwrap_or(0.0));
            one.counts.iter().fold(row, |row, (name, count)| {
                row.with_value(*name, *count as f64)
            })
        })
        .collect();
    let bars: Vec<(String, f64)> = series
        .iter()
        .flat_map(|one| {
            [(0.5, "p50"), (0.99, "p99")].map(|(quantile, label)| {
                let ms = one.latencies.quantile_us(quantile) as f64 / 1000.0;
                (format!("{}, {label}", one.variant), ms)
            })
        })
        .collect();
    let chart = chart::bars(
        "bench-lease-acquisition.svg",
        "Lease acquisition on 3 nodes: p50 and p99",
        "ms",
        &bars,
    )?;
    Ok(CaseReport {
        rows,
        goals: vec![goal(&series[1], &series[4])],
        charts: vec![chart],
        notes: vec![
            method_note(ttl)?,
            finding_note(&series[1], &series[2], &series[4])?,
        ],
        failures: Vec::new(),
    })
}

/// The goal: the adapter's acquisition with the half-alive node against one node timeout,
/// with rslock's beside it.
fn goal(ours: &Series, theirs: &Series) -> Goal {
    let timeout = node_timeout();
    let timeout_us = timeout.as_micros() as f64;
    let in_timeouts = |latencies: &Latencies, quantile: f64| {
        let us = latencies.quantile_us(quantile) as f64;
        (us / 1000.0, ratio(us, timeout_us).unwrap_or(0.0))
    };
    let (p50_ms, p50_x) = in_timeouts(&ours.latencies, 0.5);
    let (p99_ms, p99_x) = in_timeouts(&ours.latencies, 0.99);
    let (rslock_ms, rslock_x) = in_timeouts(&theirs.latencies, 0.5);
    Goal::at_most(
        format!(
            "acquisition with a half-alive node within about one node timeout ({} ms; p99 at \
             most {GOAL_NODE_TIMEOUTS}x)",
            timeout.as_millis()
        ),
        format!(
            "p50 {p50_ms:.1} ms ({p50_x:.2}x), p99 {p99_ms:.1} ms ({p99_x:.2}x); rslock p50 \
             {rslock_ms:.1} ms ({rslock_x:.2}x)"
        ),
        p99_x,
        GOAL_NODE_TIMEOUTS,
    )
}

/// The adapter's lease: release (untimed), then one timed acquisition, `warm_up` + `samples`
/// times, on a lease key of the series' own; with [`Start::Settled`] a pause (untimed) of two
/// node timeouts between the two.
///
/// # Errors
/// Fails when a call hangs or no acquisition succeeds.
async fn adapter_series(
    context: &BenchContext,
    variant: &'static str,
    urls: &[String],
    (warm_up, samples): (u64, u64),
    start: Start,
) -> Result<Series> {
    context.progress(CASE, format_args!("{variant} x {samples}"));
    let config = redis_config(urls.to_vec(), context.unique_key("lease"));
    // The membership of these fresh nodes, written as an operator does when a node is down at
    // the start (`membership init`): no process bootstraps it then by itself.
    bounded(
        "initialising the membership",
        HANG_BOUND,
        adapter_redis::init_membership(config.clone()),
    )
    .await?
    .context("cannot initialise the membership")?;
    let adapter: RedisReconciliation<ReferenceChain> = bounded(
        "connecting the adapter",
        HANG_BOUND,
        RedisReconciliation::connect(config, verifier(), Some(&mut Registry::default())),
    )
    .await?
    .context("cannot connect the adapter")?;
    let mut latencies = Latencies::new();
    let mut failed = 0;
    for sample in 0..warm_up + samples {
        bounded("release", HANG_BOUND, adapter.release()).await??;
        if start == Start::Settled {
            tokio::time::sleep(node_timeout().saturating_mul(2)).await;
        }
        let started = Instant::now();
        let state = bounded(
            "leader_state",
            HANG_BOUND,
            adapter.leader_state(head_below(1)),
        )
        .await?;
        let elapsed = started.elapsed();
        if sample < warm_up {
            continue;
        }
        match state {
            Ok(LeaderState::ReconciledLeader) => latencies.record(elapsed),
            // Another leader, or no quorum for the lease or the reads: not acquired.
            Ok(_) | Err(_) => failed += 1,
        }
    }
    bounded("release", HANG_BOUND, adapter.release()).await??;
    adapter.shutdown(HANG_BOUND).await;
    if latencies.is_empty() {
        bail!("{variant}: no acquisition succeeded in {samples} tries");
    }
    Ok(Series {
        variant,
        latencies,
        counts: vec![("failed", failed)],
    })
}

/// rslock on the same servers, each call bounded by the TTL.
///
/// # Errors
/// Fails when rslock grants no lock at all.
async fn rslock_series(
    context: &BenchContext,
    variant: &'static str,
    urls: &[String],
    samples: (u64, u64),
    ttl: Duration,
) -> Result<Series> {
    context.progress(CASE, format_args!("{variant} x {}", samples.1));
    let locks = rslock::lock_latencies(context, urls, samples, ttl, ttl)
        .await
        .with_context(|| variant)?;
    Ok(Series {
        variant,
        latencies: locks.latencies,
        counts: vec![("failed", locks.failed), ("timed_out", locks.timed_out)],
    })
}

/// How the samples were taken.
fn method_note(ttl: Duration) -> Result<String> {
    fill!(
        LEASE,
        "method",
        ttl_s = ttl.as_secs(),
        node_timeout_ms = node_timeout().as_millis(),
    )
}

/// Where the adapter's time with a half-alive node goes, and rslock's, with this run's numbers.
fn finding_note(at_once: &Series, settled: &Series, rslock: &Series) -> Result<String> {
    let p50_ms = |series: &Series| series.latencies.quantile_us(0.5) as f64 / 1000.0;
    fill!(
        LEASE,
        "finding",
        at_once = p50_ms(at_once),
        settled = p50_ms(settled),
        rslock = p50_ms(rslock),
    )
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests {
    use crate::model::Verdict;

    use super::*;

    fn series(millis: &[u64]) -> Series {
        let mut latencies = Latencies::new();
        for value in millis {
            latencies.record(Duration::from_millis(*value));
        }
        Series {
            variant: "v",
            latencies,
            counts: Vec::new(),
        }
    }

    #[test]
    fn goal__when_p99_is_within_or_beyond_one_and_a_half_node_timeouts__then_met_or_missed() {
        // given: node timeout 100 ms
        let rslock = series(&[1_000]);
        let about_one = series(&[101, 102, 104]);
        let two = series(&[101, 102, 200]);

        // when
        let met = goal(&about_one, &rslock);
        let missed = goal(&two, &rslock);

        // then
        assert_eq!(met.verdict, Verdict::Met, "{}", met.measured);
        assert_eq!(missed.verdict, Verdict::Missed, "{}", missed.measured);
        assert!(met.measured.contains("rslock p50 1000"), "{}", met.measured);
    }
}
