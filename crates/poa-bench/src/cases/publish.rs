//! Case `publish`: the adapter's fenced quorum publish with N = 1, 3 and 5 nodes and blocks of
//! 256 B, 4 KiB and 64 KiB, one block after another, next to the raw `write_block` script on
//! one node of the same servers (the floor). Runs against local `redis-server`s, or against
//! the `--redis-url` servers when given (N = 1, 3 and 5 as far as they go, and N = all).
//!
//! At N = 3 a `cycle` series also times what a leader's production cycle asks of the adapter
//! per block: `leader_state` at the head below the block, then its publish (no local chain).
//! With `--peer-bench`, module `peer` runs a binary built from fuel-core 0.48.3's adapter on
//! the same servers, alternating with this adapter, and reports both side by side.
//!
//! The series of one size are interleaved in chunks (raw, N = 1, N = 3, N = 5, raw, ...), so
//! load from elsewhere on the machine falls on all of them alike rather than on whichever ran
//! last. Owns no production code and never changes what it measures.

mod peer;
pub(crate) mod series;

use std::time::Duration;

use anyhow::{Result, bail};
use poa_test_support::RedisServer;

use self::series::{
    BlockWriter, CycleLeader, QuorumLeader, RawQuorumWriter, RawWriter, write_blocks,
};
use crate::blocks::BLOCK_SIZES;
use crate::chart;
use crate::context::BenchContext;
use crate::fixtures::{blocking, start_servers, urls_of};
use crate::model::{CaseReport, Goal, Row, Verdict};
use crate::prose::fill;
use crate::report;
use crate::stats::{Latencies, ratio};
use crate::templates::PUBLISH;

const CASE: &str = "publish";
/// Local servers: enough for the largest quorum.
const LOCAL_NODES: usize = 5;
/// The node count the goals are judged at.
const GOAL_NODES: usize = 3;
/// The goal on the ratio of quorum publish p50 to raw script p50.
const RATIO_LIMIT: f64 = 2.0;
/// The goal on quorum publish p99, in microseconds.
const P99_LIMIT_US: f64 = 1_000.0;
/// Bound on emptying one local server.
const FLUSH_BOUND: Duration = Duration::from_secs(5);

/// What a series sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The raw script on the first node alone: the baseline of the goals.
    Raw,
    /// The raw script on N nodes at once, returning at the quorum: the machine's floor for N.
    RawQuorum,
    /// The adapter's quorum publish.
    Quorum,
    /// A leader's cycle through the adapter: `leader_state`, then the quorum publish.
    Cycle,
}

impl Kind {
    fn variant(self) -> &'static str {
        match self {
            Self::Raw => "raw write script, one node",
            Self::RawQuorum => "raw write script on all N at once, until quorum",
            Self::Quorum => "quorum publish",
            Self::Cycle => "leader cycle: leader state + quorum publish",
        }
    }

    fn legend(self, nodes: usize) -> String {
        match self {
            Self::Raw => "raw script, 1 node".to_owned(),
            Self::RawQuorum => format!("raw script x{nodes}, until quorum"),
            Self::Quorum => format!("quorum publish, N = {nodes}"),
            Self::Cycle => format!("leader state + publish, N = {nodes}"),
        }
    }
}

/// One series while it is measured.
enum Writer {
    Raw(RawWriter),
    RawQuorum(RawQuorumWriter),
    /// Boxed: the adapter is far larger than a raw writer.
    Quorum(Box<QuorumLeader>),
    Cycle(Box<CycleLeader>),
}

impl BlockWriter for Writer {
    async fn keep_lease(&mut self) -> Result<()> {
        match self {
            Self::Raw(writer) => writer.keep_lease().await,
            Self::RawQuorum(writer) => writer.keep_lease().await,
            Self::Quorum(leader) => leader.keep_lease().await,
            Self::Cycle(leader) => leader.keep_lease().await,
        }
    }

    async fn write_next(&mut self, block_bytes: usize) -> Result<Duration> {
        match self {
            Self::Raw(writer) => writer.write_next(block_bytes).await,
            Self::RawQuorum(writer) => writer.write_next(block_bytes).await,
            Self::Quorum(leader) => leader.write_next(block_bytes).await,
            Self::Cycle(leader) => leader.write_next(block_bytes).await,
        }
    }
}

/// One measured series.
struct Series {
    kind: Kind,
    nodes: usize,
    latencies: Latencies,
}

/// The measured series of one block size.
struct SizeResult {
    block_bytes: usize,
    series: Vec<Series>,
}

impl SizeResult {
    fn find(&self, kind: Kind, nodes: usize) -> Option<&Latencies> {
        self.series
            .iter()
            .find(|series| series.kind == kind && series.nodes == nodes)
            .map(|series| &series.latencies)
    }
}

/// Measures case `publish`.
///
/// # Errors
/// Fails when servers cannot start, a node cannot be reached, or a write is refused.
pub(crate) async fn run(context: &BenchContext) -> Result<CaseReport> {
    let given = context.redis_urls().to_vec();
    let local = if given.is_empty() {
        start_servers(LOCAL_NODES).await?
    } else {
        Vec::new()
    };
    let urls = if given.is_empty() {
        urls_of(&local)
    } else {
        given.clone()
    };
    let counts = node_counts(urls.len());
    let mut results = Vec::new();
    for block_bytes in BLOCK_SIZES {
        context.progress(
            CASE,
            format_args!(
                "{} blocks, N = {} and the raw script",
                size_label(block_bytes),
                list(&counts)
            ),
        );
        results.push(measure_size(context, &urls, &counts, block_bytes).await?);
        flush(&local).await?;
    }
    let mut report = CaseReport::default();
    for result in &results {
        add_size(&mut report, result)?;
    }
    report.goals = goals(&results);
    report.notes = notes(context, &given, &counts, &results)?;
    if let Some(peer) = context.peer_bench() {
        if urls.len() < GOAL_NODES {
            bail!("--peer-bench compares at N = {GOAL_NODES}: give at least {GOAL_NODES} servers");
        }
        let nodes = &urls[..GOAL_NODES];
        let comparisons = peer::compare(context, peer, nodes).await?;
        report.goals.extend(peer::goals(&comparisons, GOAL_NODES));
        report.notes.push(peer::table(&comparisons, GOAL_NODES));
        report.notes.push(format!(
            "Side by side: the peer is a binary built from fuel-core 0.48.3's own adapter \
             (`RedisLeaderLeaseAdapter`), run by the harness on the same {GOAL_NODES} servers \
             with the same node timeout (100 ms); it times its default block (a header and a \
             signature), this adapter a {} block. In each round this adapter runs first with a \
             fresh leader and key prefix, then the peer (its own prefix), publish alone, then \
             the cycle (`leader_state` then the publish, what a leader's production cycle asks \
             per block); each side warms up with 100 unrecorded blocks. The peer drives its \
             adapter from its `#[tokio::main]` `block_on`, where every reply wakes the caller \
             across threads (section 1 shows what that costs one call); this adapter is called \
             from a runtime worker, as `poa-node` runs its node. `--peer-bench PATH` runs the \
             comparison, PATH a peer bench binary built from fuel-core 0.48.3's adapter (it \
             takes the URLs, a block count, the node timeout and the mode, and prints one JSON \
             line of latencies); without it the case runs alone.",
            size_label(peer::PEER_BLOCK_BYTES)
        ));
    }
    Ok(report)
}

/// The node counts measured over `available` servers: 1, 3 and 5 as far as they go, and all.
fn node_counts(available: usize) -> Vec<usize> {
    let mut counts: Vec<usize> = [1, 3, 5, available]
        .into_iter()
        .filter(|count| (1..=available).contains(count))
        .collect();
    counts.sort_unstable();
    counts.dedup();
    counts
}

/// Measures the raw script, the parallel raw script and the quorum publish for every node
/// count at one block size, interleaved in chunks.
async fn measure_size(
    context: &BenchContext,
    urls: &[String],
    counts: &[usize],
    block_bytes: usize,
) -> Result<SizeResult> {
    let Some(first) = urls.first() else {
        bail!("no redis server to measure");
    };
    let samples = context.scale(3_000, 60);
    let chunk = context.scale(250, 20);
    let warm_up = context.scale(100, 10);
    let mut writers = vec![(
        Kind::Raw,
        1,
        Writer::Raw(RawWriter::connect(first.clone(), context.unique_key("publish-raw")).await?),
    )];
    for &count in counts {
        let nodes = urls[..count].to_vec();
        if count > 1 {
            let key = context.unique_key(&format!("publish-raw-{count}"));
            let writer = RawQuorumWriter::connect(nodes.clone(), key).await?;
            writers.push((Kind::RawQuorum, count, Writer::RawQuorum(writer)));
        }
        let key = context.unique_key(&format!("publish-{count}"));
        let leader = QuorumLeader::lead(nodes.clone(), key).await?;
        writers.push((Kind::Quorum, count, Writer::Quorum(Box::new(leader))));
        if count == GOAL_NODES {
            let key = context.unique_key(&format!("publish-cycle-{count}"));
            let leader = CycleLeader(QuorumLeader::lead(nodes, key).await?);
            writers.push((Kind::Cycle, count, Writer::Cycle(Box::new(leader))));
        }
    }
    let mut measured = Vec::new();
    for (kind, nodes, mut writer) in writers {
        write_blocks(&mut writer, warm_up, block_bytes, &mut Latencies::new()).await?;
        measured.push((kind, nodes, writer, Latencies::new()));
    }
    let mut left = samples;
    while left > 0 {
        let this_chunk = left.min(chunk);
        for (_, _, writer, latencies) in &mut measured {
            write_blocks(writer, this_chunk, block_bytes, latencies).await?;
        }
        left -= this_chunk;
    }
    let mut series = Vec::new();
    for (kind, nodes, writer, latencies) in measured {
        match writer {
            Writer::Quorum(leader) => leader.stop().await,
            Writer::Cycle(leader) => leader.0.stop().await,
            Writer::Raw(_) | Writer::RawQuorum(_) => {}
        }
        series.push(Series {
            kind,
            nodes,
            latencies,
        });
    }
    Ok(SizeResult {
        block_bytes,
        series,
    })
}

/// Empties local servers between sizes, so large streams of one size do not weigh on the next.
async fn flush(local: &[RedisServer]) -> Result<()> {
    for server in local {
        let addr = server.addr();
        blocking("flushing a local server", move || {
            poa_test_support::resp::request(addr, &[b"FLUSHALL"], FLUSH_BOUND)
                .map(drop)
                .map_err(|error| anyhow::anyhow!("cannot flush the server at {addr}: {error}"))
        })
        .await??;
    }
    Ok(())
}

/// The rows and the CDF chart of one size.
fn add_size(report: &mut CaseReport, result: &SizeResult) -> Result<()> {
    let block_bytes = result.block_bytes;
    let raw_p50 = result
        .find(Kind::Raw, 1)
        .map_or(0.0, |raw| raw.quantile_us(0.5) as f64);
    for series in &result.series {
        let p50 = series.latencies.quantile_us(0.5) as f64;
        let mut row = Row::new(
            CASE,
            series.kind.variant(),
            series.nodes,
            block_bytes,
            &series.latencies,
        );
        if series.kind != Kind::Raw
            && let Some(value) = ratio(p50, raw_p50)
        {
            row = row.with_value("p50_vs_raw", value);
        }
        if series.kind == Kind::Quorum
            && let Some(floor) = result.find(Kind::RawQuorum, series.nodes)
            && let Some(value) = ratio(p50, floor.quantile_us(0.5) as f64)
        {
            row = row.with_value("p50_vs_floor", value);
        }
        if series.kind == Kind::Cycle
            && let Some(publish) = result.find(Kind::Quorum, series.nodes)
            && let Some(value) = ratio(p50, publish.quantile_us(0.5) as f64)
        {
            row = row.with_value("p50_vs_publish", value);
        }
        report.rows.push(row);
    }
    let curves: Vec<(String, &Latencies)> = result
        .series
        .iter()
        .map(|series| (series.kind.legend(series.nodes), &series.latencies))
        .collect();
    report.charts.push(chart::latency_cdf(
        &format!(
            "bench-publish-{}.svg",
            size_label(block_bytes).replace(' ', "")
        ),
        &format!(
            "Quorum publish vs raw write script, {} blocks",
            size_label(block_bytes)
        ),
        &curves,
    )?);
    Ok(())
}

/// `256 B`, `4 KiB`, `64 KiB`.
fn size_label(bytes: usize) -> String {
    report::bytes(bytes as u64)
}

/// Both goals at N = 3, judged at every block size, with the machine's floor beside them.
fn goals(results: &[SizeResult]) -> Vec<Goal> {
    let mut goals = Vec::new();
    for result in results {
        let size = size_label(result.block_bytes);
        let ratio_goal = format!(
            "quorum publish p50 at N = {GOAL_NODES} no more than {RATIO_LIMIT}x the raw \
             single-node script p50 ({size})"
        );
        let p99_goal = format!("quorum publish p99 at N = {GOAL_NODES} under 1 ms ({size})");
        let (Some(quorum), Some(raw)) = (
            result.find(Kind::Quorum, GOAL_NODES),
            result.find(Kind::Raw, 1),
        ) else {
            let measured = format!("not measured: fewer than {GOAL_NODES} servers given");
            for goal in [ratio_goal, p99_goal] {
                goals.push(Goal {
                    goal,
                    measured: measured.clone(),
                    verdict: Verdict::NotMeasured,
                });
            }
            continue;
        };
        let floor = result.find(Kind::RawQuorum, GOAL_NODES);
        let quantile_of = |latencies: Option<&Latencies>, quantile: f64| {
            latencies.map_or(0.0, |latencies| latencies.quantile_us(quantile) as f64)
        };
        let p50 = quantile_of(Some(quorum), 0.5);
        let raw_p50 = quantile_of(Some(raw), 0.5);
        let floor_p50 = quantile_of(floor, 0.5);
        let p50_ratio = ratio(p50, raw_p50).unwrap_or(f64::INFINITY);
        goals.push(Goal::at_most(
            ratio_goal,
            format!(
                "{p50_ratio:.2}x ({p50:.0} µs vs {raw_p50:.0} µs; the raw script on \
                 {GOAL_NODES} nodes at once until quorum: {floor_p50:.0} µs)"
            ),
            p50_ratio,
            RATIO_LIMIT,
        ));
        let p99 = quantile_of(Some(quorum), 0.99);
        goals.push(Goal {
            goal: p99_goal,
            measured: format!(
                "{p99:.0} µs (raw script, one node: {:.0} µs; on {GOAL_NODES} at once until \
                 quorum: {:.0} µs)",
                quantile_of(Some(raw), 0.99),
                quantile_of(floor, 0.99)
            ),
            verdict: if p99 < P99_LIMIT_US {
                Verdict::Met
            } else {
                Verdict::Missed
            },
        });
    }
    goals
}

fn notes(
    context: &BenchContext,
    given: &[String],
    counts: &[usize],
    results: &[SizeResult],
) -> Result<Vec<String>> {
    let servers = if given.is_empty() {
        format!(
            "{LOCAL_NODES} local `redis-server`s on loopback (no persistence), emptied between \
             block sizes"
        )
    } else {
        format!(
            "the {} `--redis-url` servers given (N = {}; the raw script runs on the first; \
             the harness removes the run's keys from them when it ends)",
            given.len(),
            list(counts)
        )
    };
    let samples = context.scale(3_000, 60);
    Ok(vec![
        fill!(PUBLISH, "method", servers = servers, samples = samples)?,
        format!(
            "Reading: a publish returns when the fastest quorum stored the block, so at N = 3 it \
             waits for the second of three script calls running at once. The series \
             \"raw write script on all N at once, until quorum\" is exactly that without the \
             adapter (one spawned task per node, return at the quorum; it encodes the block once \
             per node where the adapter encodes it once): the floor this machine sets for N \
             nodes. Quorum publish p50 over that floor at N = {GOAL_NODES}: {}. Where the quorum \
             publish misses the 2x goal while sitting on its floor, the cost is not the \
             adapter's but the servers': {} The leader cycle at N = {GOAL_NODES} adds \
             `leader_state` to each publish: a leader whose lease is locally valid and whose \
             leadership is reconciled answers it without a round trip, so the cycle over the \
             publish alone ({}) is the cost of that local check.",
            p50_ratios(results, Kind::Quorum, Kind::RawQuorum),
            if given.is_empty() {
                format!(
                    "here N server processes and the client share {} cores, so the N script \
                     calls of one publish queue for CPU instead of running side by side.",
                    std::thread::available_parallelism().map_or(0, usize::from)
                )
            } else {
                "the slowest member of the fastest quorum sets the time.".to_owned()
            },
            p50_ratios(results, Kind::Cycle, Kind::Quorum),
        ),
        "The p99 goal is judged beside what the servers allow: each p99 goal line also gives \
         the raw script's own p99. On a loaded machine every series' tail is set by processes \
         descheduled for a few milliseconds, and a raw script p99 above 1 ms means no client \
         could meet the goal there."
            .to_owned(),
    ])
}

/// `1, 3, 5`.
fn list(counts: &[usize]) -> String {
    counts
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `1.02x at 256 B, ...`: `over`'s p50 over `under`'s at the goal's N, per size (the quorum
/// publish over the parallel raw script: how far it is from its floor).
fn p50_ratios(results: &[SizeResult], over: Kind, under: Kind) -> String {
    let ratios: Vec<String> = results
        .iter()
        .filter_map(|result| {
            let over = result.find(over, GOAL_NODES)?.quantile_us(0.5) as f64;
            let under = result.find(under, GOAL_NODES)?.quantile_us(0.5) as f64;
            let value = ratio(over, under)?;
            Some(format!("{value:.2}x at {}", size_label(result.block_bytes)))
        })
        .collect();
    if ratios.is_empty() {
        "not measured".to_owned()
    } else {
        ratios.join(", ")
    }
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests {
    use super::*;

    #[test]
    fn node_counts__when_servers_vary__then_one_three_five_as_far_as_they_go_and_all() {
        // given / when / then
        assert_eq!(node_counts(1), vec![1]);
        assert_eq!(node_counts(2), vec![1, 2]);
        assert_eq!(node_counts(3), vec![1, 3]);
        assert_eq!(node_counts(4), vec![1, 3, 4]);
        assert_eq!(node_counts(5), vec![1, 3, 5]);
        assert_eq!(node_counts(7), vec![1, 3, 5, 7]);
    }
}
