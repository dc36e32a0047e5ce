//! Case `limit`: the physical floor of one Redis node. A `PING` round trip and the raw fenced
//! `write_block` script for each block size, one call at a time, over the adapter's own client
//! (`adapter_redis::probe::NodeProbe`). Nothing the adapter does can be faster than these, so
//! they are reported as absolute numbers without a goal; the publish case measures its own raw
//! baseline for its ratio.
//!
//! Also owns the two helpers the naive and lease cases reuse: starting local `redis-server`s
//! off the async workers, and the hang bound around every awaited call. It must not decide
//! anything about quorums: one node only.

use std::time::Instant;

use adapter_chain::ReferenceChain;
use adapter_redis::probe::NodeProbe;
use anyhow::{Context, Result};

use crate::blocks::{BLOCK_SIZES, block_of, redis_config};
use crate::chart;
use crate::cleanup::leftover_keys_note;
use crate::context::BenchContext;
use crate::fixtures::{HANG_BOUND, WARM_UP, bounded, start_servers};
use crate::model::{CaseReport, Row};
use crate::stats::Latencies;

const CASE: &str = "limit";

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
    rows.push(Row::new(CASE, "PING round trip", 1, 0, &pings));
    series.push(("PING".to_owned(), pings));

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
    let mut notes = vec![format!(
        "Measured on {server}, one call in flight at a time, each sample one call timed from \
         the client's side (the `write_block` sample includes encoding the block, as a publish \
         does; building it does not). These are the floor every other case is held against: \
         no goal here. The publish case takes its own raw baseline in its run for its ratio \
         goal."
    )];
    if !context.redis_urls().is_empty() {
        notes.push(leftover_keys_note());
    }
    Ok(CaseReport {
        rows,
        goals: Vec::new(),
        charts: vec![chart],
        notes,
        failures: Vec::new(),
    })
}

/// `PING` round trips over the scripts' connection.
async fn ping_latencies(context: &BenchContext, url: &str) -> Result<Latencies> {
    let samples = context.scale(20_000, 1_000);
    context.progress(CASE, format_args!("PING x {samples}"));
    let probe = connect(url, context.unique_key("limit-ping")).await?;
    let mut latencies = Latencies::new();
    for sample in 0..WARM_UP + samples {
        let started = Instant::now();
        bounded("PING", HANG_BOUND, probe.ping(0)).await??;
        if sample >= WARM_UP {
            latencies.record(started.elapsed());
        }
    }
    Ok(latencies)
}

/// Raw `write_block` calls of `size`-byte blocks at rising heights, under a lease key of
/// their own. Each write re-arms the lease's TTL, so one promote covers the whole series.
async fn write_latencies(context: &BenchContext, url: &str, size: usize) -> Result<Latencies> {
    let samples = context.scale(5_000, 200);
    context.progress(CASE, format_args!("raw write script, {size} B x {samples}"));
    let probe = connect(url, context.unique_key(&format!("limit-write-{size}"))).await?;
    let epoch = bounded("promote", HANG_BOUND, probe.take_lease(0)).await??;
    let mut latencies = Latencies::new();
    for height in 1..=WARM_UP + samples {
        let block = block_of(height, size);
        let started = Instant::now();
        bounded(
            "write_block",
            HANG_BOUND,
            probe.write_block::<ReferenceChain>(0, epoch, &block),
        )
        .await??;
        if height > WARM_UP {
            latencies.record(started.elapsed());
        }
    }
    Ok(latencies)
}

async fn connect(url: &str, key: String) -> Result<NodeProbe> {
    bounded(
        "connecting the probe",
        HANG_BOUND,
        NodeProbe::connect(redis_config(vec![url.to_owned()], key)),
    )
    .await?
    .context("cannot connect the probe to the node")
}
