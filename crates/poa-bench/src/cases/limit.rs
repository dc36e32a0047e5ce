//! Case `limit`: the physical floor of one Redis node. A `PING` round trip and the raw fenced
//! `write_block` script for each block size, one call at a time, over the client the adapter
//! builds for a node and with the script it loads (`crate::floor`). Nothing the adapter does can
//! be faster than these, so
//! they are reported as absolute numbers; the publish case measures its own raw baseline for
//! its ratio. Beside the adapter's `PING`, the same call through other clients on the same
//! server, in alternating rounds (module `clients`): how close the adapter's client is to the
//! wire, the one goal here. Its words are in `templates/limit.md`.
//!
//! Also owns the two helpers the naive and lease cases reuse: starting local `redis-server`s
//! off the async workers, and the hang bound around every awaited call. It must not decide
//! anything about quorums: one node only.

mod clients;

use std::time::Instant;

use anyhow::{Context, Result};

use crate::blocks::{BLOCK_SIZES, block_of};
use crate::chart;
use crate::cleanup::leftover_keys_note;
use crate::context::BenchContext;
use crate::fixtures::{HANG_BOUND, WARM_UP, bounded, start_servers};
use crate::floor::FloorNodes;
use crate::model::{CaseReport, Goal, Row, Verdict};
use crate::prose::fill;
use crate::stats::{Latencies, ratio};
use crate::templates::LIMIT;

use self::clients::PingClient;

const CASE: &str = "limit";
/// The goal on the adapter's `PING` p50 over `redis-benchmark`'s, same server, same run.
const PING_RATIO_LIMIT: f64 = 1.3;

/// Measures the `PING` round trip and the raw write script on one node: the first
/// `--redis-url`, else a local server.
///
/// # Errors
/// Fails when the node cannot be reached or refuses a write.
pub(crate) async fn run(context: &BenchContext) -> Result<CaseReport> {
    let (url, _local) = match context.redis_urls().first() {
        Some(url) => (url.clone(), Vec::new()),
        None => {
            let local = start_servers(1).await?;
            (local[0].url(), local)
        }
    };
    let mut rows = Vec::new();
    let mut series = Vec::new();

    let pings = ping_latencies(context, &url).await?;
    let mut goals = Vec::new();
    let mut notes = Vec::new();
    for (client, measured) in pings {
        match measured {
            Ok(latencies) => {
                rows.push(Row::new(CASE, client.variant(), 1, 0, &latencies));
                series.push((client.legend().to_owned(), latencies));
            }
            Err(error) => notes.push(format!("{}: not measured: {error:#}", client.variant())),
        }
    }
    goals.push(ping_goal(&rows));

    for size in BLOCK_SIZES {
        let writes = write_latencies(context, &url, size).await?;
        rows.push(Row::new(CASE, "raw write script", 1, size, &writes));
        series.push((format!("write_block, {} B", size), writes));
    }

    let chart_series: Vec<(String, &Latencies)> = series
        .iter()
        .map(|(name, latencies)| (name.clone(), latencies))
        .collect();
    let chart = chart::latency_cdf(
        "bench-limit-latency.svg",
        "One node: PING and the raw write script, one call at a time",
        &chart_series,
    )?;
    let server = if context.redis_urls().is_empty() {
        "a local `redis-server` on loopback"
    } else {
        "the first `--redis-url` server"
    };
    notes.insert(0, fill!(LIMIT, "method", server = server)?);
    notes.insert(1, LIMIT.text("ping")?);
    if !context.redis_urls().is_empty() {
        notes.push(leftover_keys_note());
    }
    Ok(CaseReport {
        rows,
        goals,
        charts: vec![chart],
        notes,
        failures: Vec::new(),
    })
}

/// `PING` round trips through every client of [`PingClient::ALL`], in alternating rounds so
/// load from elsewhere on the machine falls on all of them alike; a client that cannot be
/// measured (no `redis-benchmark`, a URL it cannot take) says why.
async fn ping_latencies(
    context: &BenchContext,
    url: &str,
) -> Result<Vec<(PingClient, Result<Latencies>)>> {
    let rounds = context.scale(5, 2);
    let per_round = context.scale(20_000, 1_000) / rounds;
    context.progress(
        CASE,
        format_args!(
            "PING x {per_round} x {rounds} rounds through {} clients",
            PingClient::ALL.len()
        ),
    );
    let mut measured: Vec<(PingClient, Result<Latencies>)> = PingClient::ALL
        .iter()
        .map(|&client| (client, Ok(Latencies::new())))
        .collect();
    for _ in 0..rounds {
        for (client, total) in &mut measured {
            let Ok(sum) = total else {
                continue;
            };
            let key = context.unique_key("limit-ping");
            match client.pings(url, key, per_round).await {
                Ok(latencies) => sum.add(&latencies),
                // The adapter's own row is what the case is for: its failure fails the case.
                Err(error) if *client == PingClient::Adapter => return Err(error),
                Err(error) => *total = Err(error),
            }
        }
    }
    Ok(measured)
}

/// The adapter's `PING` p50 within [`PING_RATIO_LIMIT`] of `redis-benchmark`'s, the other
/// clients beside it.
fn ping_goal(rows: &[Row]) -> Goal {
    let goal = format!(
        "one call through the adapter's client: PING p50 within {PING_RATIO_LIMIT}x of \
         redis-benchmark's on the same server"
    );
    let p50 = |client: PingClient| {
        rows.iter()
            .find(|row| row.variant == client.variant())
            .map(|row| row.latency.p50_us as f64)
    };
    let (Some(adapter), Some(wire)) = (p50(PingClient::Adapter), p50(PingClient::RedisBenchmark))
    else {
        return Goal {
            goal,
            measured: "not measured: redis-benchmark did not run (see the notes)".to_owned(),
            verdict: Verdict::NotMeasured,
        };
    };
    let value = ratio(adapter, wire).unwrap_or(f64::INFINITY);
    let beside: Vec<String> = [
        (PingClient::AdapterOffWorker, "fred called from block_on"),
        (
            PingClient::AdapterCurrentThread,
            "fred on a current-thread runtime",
        ),
        (PingClient::RedisCrate, "redis crate async"),
        (PingClient::RedisCrateBlocking, "redis crate blocking"),
    ]
    .into_iter()
    .filter_map(|(client, name)| p50(client).map(|p50| format!("{name} {p50:.0} µs")))
    .collect();
    Goal::at_most(
        goal,
        format!(
            "{value:.2}x ({adapter:.0} µs vs {wire:.0} µs; {})",
            beside.join(", ")
        ),
        value,
        PING_RATIO_LIMIT,
    )
}

/// Raw `write_block` calls of `size`-byte blocks at rising heights, under a lease key of
/// their own. Each write re-arms the lease's TTL, so one promote covers the whole series.
async fn write_latencies(context: &BenchContext, url: &str, size: usize) -> Result<Latencies> {
    let samples = context.scale(5_000, 200);
    context.progress(CASE, format_args!("raw write script, {size} B x {samples}"));
    let floor = connect(url, context.unique_key(&format!("limit-write-{size}"))).await?;
    let node = floor.node(0)?;
    let epoch = bounded("promote", HANG_BOUND, node.take_lease()).await??;
    let mut latencies = Latencies::new();
    for height in 1..=WARM_UP + samples {
        let block = block_of(height, size);
        let started = Instant::now();
        bounded("write_block", HANG_BOUND, node.write_block(epoch, &block)).await??;
        if height > WARM_UP {
            latencies.record(started.elapsed());
        }
    }
    Ok(latencies)
}

/// One node at `url`, its membership written under `key` (a fresh prefix), connected as the
/// adapter connects a node.
async fn connect(url: &str, key: String) -> Result<FloorNodes> {
    bounded(
        "connecting to the node",
        HANG_BOUND,
        FloorNodes::connect(vec![url.to_owned()], key),
    )
    .await?
    .context("cannot connect to the node")
}
