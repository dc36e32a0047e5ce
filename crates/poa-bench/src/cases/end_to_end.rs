//! Case `end-to-end`: blocks per second of a producer in instant mode, built in-process as
//! `poa-node` wires it, with the time split by step from the service's own metrics, for the
//! no-op adapter and for 3 local Redis nodes. On Redis also with a deferred fsync (one per
//! [`DEFERRED_FSYNC_EVERY`] blocks), with one 4 KiB transaction per block instead of 16 of
//! 256 B, and on 3 more nodes with `appendfsync always`, and beside them the disk's raw
//! `fdatasync`: together they show what the commit spends its time on, and the goal's
//! comparison when both sides write to disk. The producers take turns in short rounds, so every comparison sees the
//! same machine noise.
//!
//! - `producer`: the wiring, the feeder and the measured rounds of one producer.
//! - `step_metrics`: the per-step totals read from the Prometheus registry (pure parsing).
//! - `disk`: the raw `fdatasync` probe.
//!
//! This file owns the variants, the schedule and the report; it measures through the modules
//! above only, and its words are in `templates/end-to-end.md`. Always on local servers
//! (`--redis-url` is for the publish cases).

mod disk;
mod producer;
mod step_metrics;

use std::num::NonZeroU32;
use std::time::Duration;

use adapter_chain::CommitDurability;
use anyhow::{Context, Result, anyhow};

use self::disk::FsyncProbe;
use self::producer::{BACKLOG_BLOCKS, Coordination, Measurement, Producer, Workload};
use crate::blocks::redis_config;
use crate::chart;
use crate::context::BenchContext;
use crate::fixtures::{start_servers, urls_of};
use crate::model::{CaseReport, Chart, Goal, Row};
use crate::prose::fill;
use crate::stats::Latencies;
use crate::templates::END_TO_END;
use poa_test_support::{RedisServer, RespValue};

const CASE: &str = "end-to-end";
/// Commits per fsync of the deferred variant. More commits per fsync save little more: each
/// fsync then writes the pages of every commit since the last one, and a crash costs more.
const DEFERRED_FSYNC_EVERY: u32 = 8;
/// Blocks of about 4 KiB, the middle size of the publish case: 16 transactions of 256 B, or
/// one of 4 KiB in the variant that isolates the cost per transaction.
const TRANSACTIONS_PER_BLOCK: usize = 16;
const TRANSACTION_BYTES: usize = 256;
/// Redis nodes of the Redis variants.
const REDIS_NODES: usize = 3;
/// The steps `poa-core` times, in the order of the produce path.
const STEPS: [&str; 6] = [
    "leader_state",
    "produce",
    "seal",
    "verify",
    "publish",
    "commit",
];
/// The steps that do not talk to Redis: what the goal weighs against the publish.
const LOCAL_STEPS: [&str; 4] = ["produce", "seal", "verify", "commit"];

/// Who the producer coordinates with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    /// The no-op adapter (a single node).
    Noop,
    /// Redis nodes as the harness starts them: no persistence.
    Redis,
    /// Redis nodes with `appendonly yes` and `appendfsync always`: each write of a publish
    /// reaches the node's disk before it is acknowledged.
    RedisAppendFsyncAlways,
}

impl Side {
    fn is_redis(self) -> bool {
        self != Self::Noop
    }
}

/// One measured configuration.
#[derive(Debug, Clone, Copy)]
struct Variant {
    side: Side,
    durability: CommitDurability,
    workload: Workload,
}

impl Variant {
    /// The default configuration: 16 transactions of 256 B, one fsync per block.
    fn standard(side: Side) -> Self {
        Self {
            side,
            durability: CommitDurability::Immediate,
            workload: Workload {
                transactions_per_block: TRANSACTIONS_PER_BLOCK,
                transaction_bytes: TRANSACTION_BYTES,
            },
        }
    }

    /// The default configuration on Redis nodes as the harness starts them.
    fn is_standard(self) -> bool {
        self.side == Side::Redis
            && self.durability == CommitDurability::Immediate
            && self.workload.transactions_per_block == TRANSACTIONS_PER_BLOCK
    }

    fn label(self) -> String {
        let coordination = if self.side.is_redis() {
            format!("{REDIS_NODES} Redis nodes")
        } else {
            "no-op adapter".to_owned()
        };
        format!("{coordination}, {}", self.short_label())
    }

    /// What sets the variant apart from the defaults, in a few words, for chart labels.
    fn chart_name(self) -> String {
        if self.side == Side::RedisAppendFsyncAlways {
            "appendfsync always".to_owned()
        } else if let CommitDurability::Deferred { fsync_every } = self.durability {
            format!("fsync every {fsync_every}")
        } else if self.workload.transactions_per_block != TRANSACTIONS_PER_BLOCK {
            format!(
                "{} x {} B tx",
                self.workload.transactions_per_block, self.workload.transaction_bytes
            )
        } else {
            "defaults".to_owned()
        }
    }

    /// The variant without its coordination.
    fn short_label(self) -> String {
        let redis_disk = if self.side == Side::RedisAppendFsyncAlways {
            "appendfsync always, "
        } else {
            ""
        };
        let fsync = match self.durability {
            CommitDurability::Immediate => "fsync every block".to_owned(),
            CommitDurability::Deferred { fsync_every } => {
                format!("fsync every {fsync_every} blocks")
            }
        };
        format!(
            "{redis_disk}{fsync}, {} tx x {} B",
            self.workload.transactions_per_block, self.workload.transaction_bytes
        )
    }
}

/// How long the case measures.
#[derive(Debug, Clone, Copy)]
struct Schedule {
    /// Blocks each producer commits before its first round.
    warm_up_blocks: u64,
    /// Rounds per producer.
    rounds: u64,
    /// Feeding time of one round.
    round: Duration,
    /// `fdatasync` samples after each round of turns.
    fsync_samples: u64,
}

/// Measures case `end-to-end`.
///
/// # Errors
/// Fails when the servers, the chain or the adapter cannot start, or a producer stalls.
pub(crate) async fn run(context: &BenchContext) -> Result<CaseReport> {
    let deferred = CommitDurability::Deferred {
        fsync_every: NonZeroU32::new(DEFERRED_FSYNC_EVERY)
            .ok_or_else(|| anyhow!("the deferred fsync interval is zero"))?,
    };
    let variants = [
        Variant::standard(Side::Noop),
        Variant::standard(Side::Redis),
        Variant {
            durability: deferred,
            ..Variant::standard(Side::Redis)
        },
        Variant {
            workload: Workload {
                transactions_per_block: 1,
                transaction_bytes: TRANSACTIONS_PER_BLOCK * TRANSACTION_BYTES,
            },
            ..Variant::standard(Side::Redis)
        },
        Variant::standard(Side::RedisAppendFsyncAlways),
    ];
    let schedule = Schedule {
        warm_up_blocks: context.scale(200, 10),
        rounds: context.scale(12, 1),
        round: Duration::from_secs(1),
        fsync_samples: context.scale(100, 20),
    };
    let data_root = tempfile::tempdir().context("cannot create the data root")?;
    let servers = start_servers(REDIS_NODES).await?;
    let persistent = start_servers(REDIS_NODES).await?;
    let persistent = append_fsync_always(persistent).await?;

    let mut producers = Vec::new();
    for variant in variants {
        context.progress(CASE, format_args!("starting {}", variant.label()));
        let coordination = match variant.side {
            Side::Noop => Coordination::Noop,
            Side::Redis => Coordination::Redis(Box::new(redis_config(
                urls_of(&servers),
                context.unique_key(CASE),
            ))),
            Side::RedisAppendFsyncAlways => Coordination::Redis(Box::new(redis_config(
                urls_of(&persistent),
                context.unique_key(CASE),
            ))),
        };
        let mut producer = Producer::start(
            coordination,
            variant.durability,
            variant.workload,
            data_root.path(),
        )
        .await
        .with_context(|| format!("{} could not start", variant.label()))?;
        producer
            .warm_up(schedule.warm_up_blocks)
            .await
            .with_context(|| format!("{} did not warm up", variant.label()))?;
        producers.push((variant, producer));
    }
    let mut probe = FsyncProbe::create(data_root.path())?;
    for round in 1..=schedule.rounds {
        context.progress(
            CASE,
            format_args!(
                "round {round} of {}: each producer in turn",
                schedule.rounds
            ),
        );
        for (variant, producer) in &mut producers {
            producer
                .measure_round(schedule.round)
                .await
                .with_context(|| format!("{} could not be measured", variant.label()))?;
        }
        probe = probe.sample(schedule.fsync_samples).await?;
    }
    let mut measured = Vec::new();
    for (variant, producer) in producers {
        let measurement = producer.finish().await?;
        context.progress(
            CASE,
            format_args!(
                "{}: {:.0} blocks/s over {} blocks",
                variant.label(),
                measurement.blocks_per_second(),
                measurement.blocks
            ),
        );
        measured.push((variant, measurement));
    }
    let _ = tokio::task::spawn_blocking(move || drop((servers, persistent))).await;
    report(&measured, probe.latencies(), schedule)
}

/// Turns on the append-only file with an fsync per write on every server (they are empty, so
/// no rewrite of existing data runs).
///
/// # Errors
/// Fails when a server refuses the setting.
async fn append_fsync_always(servers: Vec<RedisServer>) -> Result<Vec<RedisServer>> {
    tokio::task::spawn_blocking(move || {
        for server in &servers {
            for (name, value) in [("appendonly", "yes"), ("appendfsync", "always")] {
                let reply = server.command(&[b"CONFIG", b"SET", name.as_bytes(), value.as_bytes()]);
                if reply != RespValue::Simple("OK".to_owned()) {
                    anyhow::bail!("{} refused {name} {value}: {reply:?}", server.url());
                }
            }
        }
        Ok(servers)
    })
    .await
    .context("setting appendfsync always failed (did a redis-server stop?)")?
}

/// Mean microseconds per block of `step` (zero when the step was never observed).
fn step_mean_us(measurement: &Measurement, step: &str) -> f64 {
    measurement
        .steps
        .step(step)
        .mean_seconds()
        .map_or(0.0, |seconds| seconds * 1e6)
}

/// Mean microseconds per block of the steps that never talk to Redis.
fn local_mean_us(measurement: &Measurement) -> f64 {
    LOCAL_STEPS
        .iter()
        .map(|step| step_mean_us(measurement, step))
        .sum()
}

fn report(
    measured: &[(Variant, Measurement)],
    fsync: &Latencies,
    schedule: Schedule,
) -> Result<CaseReport> {
    let mut report = CaseReport::default();
    for (variant, measurement) in measured {
        let blocks = measurement.blocks.max(1) as f64;
        let mut row = Row::new(
            CASE,
            variant.label(),
            if variant.side.is_redis() {
                REDIS_NODES
            } else {
                0
            },
            (measurement.block_bytes as f64 / blocks).round() as usize,
            &measurement.block_times,
        )
        .with_value("blocks_per_second", measurement.blocks_per_second())
        .with_value(
            "transactions_per_block",
            measurement.transactions as f64 / blocks,
        );
        let mut stepped_us = 0.0;
        for step in STEPS {
            let mean = step_mean_us(measurement, step);
            stepped_us += mean;
            row = row.with_value(format!("{step}_us"), mean);
        }
        let other_us = (measurement.block_times.summary().mean_us - stepped_us).max(0.0);
        report.rows.push(row.with_value("other_us", other_us));
    }
    report.rows.push(Row::new(
        CASE,
        "disk floor: fdatasync of one rewritten 4 KiB page",
        0,
        disk::PAGE_BYTES,
        fsync,
    ));
    report.goals = goals(measured);
    for (redis, name) in [(false, "noop"), (true, "redis")] {
        report.charts.push(steps_chart(measured, redis, name)?);
    }
    report.notes = notes(measured, fsync, schedule)?;
    Ok(report)
}

/// Bars of the mean time per block of each step, the variants of one coordination side by
/// side (the no-op adapter has no leader state or publish worth a bar).
fn steps_chart(measured: &[(Variant, Measurement)], redis: bool, name: &str) -> Result<Chart> {
    let bars: Vec<(String, f64)> = STEPS
        .iter()
        .filter(|step| redis || !matches!(**step, "leader_state" | "publish"))
        .flat_map(|step| {
            measured
                .iter()
                .filter(|(variant, _)| variant.side.is_redis() == redis)
                .map(move |(variant, measurement)| {
                    (
                        format!("{step}: {}", variant.chart_name()),
                        step_mean_us(measurement, step),
                    )
                })
        })
        .collect();
    let caption = if redis {
        format!("Instant mode on {REDIS_NODES} Redis nodes: mean time per block by step")
    } else {
        "Instant mode with the no-op adapter: mean time per block by step".to_owned()
    };
    chart::bars(
        &format!("bench-end-to-end-steps-{name}.svg"),
        &caption,
        "µs per block",
        &bars,
    )
}

/// The per-block leader state, at most this share of the publish: a leader that holds a
/// locally valid, reconciled lease asks Redis for nothing but the publish.
const LEADER_STATE_SHARE_OF_PUBLISH: f64 = 0.1;
/// The block interval, at most this multiple of the longer of the two paths that overlap: the
/// commit of a block and the production of the next (produce, seal, verify, publish).
const INTERVAL_OVER_LONGER_PATH: f64 = 1.25;

/// The goals of the standard variant (3 Redis nodes, one fsync per block), then the local
/// steps against the publish for each Redis variant.
fn goals(measured: &[(Variant, Measurement)]) -> Vec<Goal> {
    let standard = measured
        .iter()
        .filter(|(variant, _)| variant.is_standard())
        .flat_map(|(_, measurement)| overlap_goals(measurement));
    let local_against_publish = measured
        .iter()
        .filter(|(variant, _)| variant.side.is_redis())
        .map(|(variant, measurement)| {
            let local = local_mean_us(measurement);
            let publish = step_mean_us(measurement, "publish");
            Goal::at_most(
                format!(
                    "instant mode, {REDIS_NODES} Redis nodes ({}): produce + seal + verify + \
                     commit <= publish",
                    variant.short_label()
                ),
                format!(
                    "{:.2}x ({local:.0} µs vs {publish:.0} µs; commit {:.0} µs)",
                    local / publish.max(f64::MIN_POSITIVE),
                    step_mean_us(measurement, "commit")
                ),
                local,
                publish,
            )
        });
    standard.chain(local_against_publish).collect()
}

/// The standard variant's two goals: the leader state against the publish, and the block
/// interval against the longer of the commit and the rest of the cycle, which overlap.
fn overlap_goals(measurement: &Measurement) -> [Goal; 2] {
    let leader_state = step_mean_us(measurement, "leader_state");
    let publish = step_mean_us(measurement, "publish");
    let commit = step_mean_us(measurement, "commit");
    let production: f64 = ["produce", "seal", "verify", "publish"]
        .iter()
        .map(|step| step_mean_us(measurement, step))
        .sum();
    let longer = commit.max(production);
    let interval = measurement.block_times.summary().mean_us;
    [
        Goal::at_most(
            format!(
                "instant mode, {REDIS_NODES} Redis nodes (fsync every block): per-block leader \
                 state at most {LEADER_STATE_SHARE_OF_PUBLISH}x the publish"
            ),
            format!(
                "{:.3}x ({leader_state:.1} µs vs {publish:.0} µs)",
                leader_state / publish.max(f64::MIN_POSITIVE)
            ),
            leader_state,
            publish * LEADER_STATE_SHARE_OF_PUBLISH,
        ),
        Goal::at_most(
            format!(
                "instant mode, {REDIS_NODES} Redis nodes (fsync every block): block interval at \
                 most {INTERVAL_OVER_LONGER_PATH}x the longer of the commit and produce + seal + \
                 verify + publish"
            ),
            format!(
                "{:.2}x ({interval:.0} µs; commit {commit:.0} µs, produce + seal + verify + \
                 publish {production:.0} µs)",
                interval / longer.max(f64::MIN_POSITIVE)
            ),
            interval,
            longer * INTERVAL_OVER_LONGER_PATH,
        ),
    ]
}

/// The Redis variant for which `pick` holds.
fn redis_variant(
    measured: &[(Variant, Measurement)],
    pick: impl Fn(&Variant) -> bool,
) -> Option<&Measurement> {
    measured
        .iter()
        .find(|(variant, _)| variant.side.is_redis() && pick(variant))
        .map(|(_, measurement)| measurement)
}

fn notes(
    measured: &[(Variant, Measurement)],
    fsync: &Latencies,
    schedule: Schedule,
) -> Result<Vec<String>> {
    let mut notes = vec![fill!(
        END_TO_END,
        "method",
        redis_nodes = REDIS_NODES,
        warm_up_blocks = schedule.warm_up_blocks,
        rounds = schedule.rounds,
        backlog_blocks = BACKLOG_BLOCKS,
        round_s = schedule.round.as_secs_f64(),
        fsync_samples = schedule.fsync_samples,
    )?];
    let standard = redis_variant(measured, |variant| variant.is_standard());
    let deferred = redis_variant(measured, |variant| {
        variant.durability != CommitDurability::Immediate
    });
    let single = redis_variant(measured, |variant| {
        variant.workload.transactions_per_block != TRANSACTIONS_PER_BLOCK
    });
    let persistent = redis_variant(measured, |variant| {
        variant.side == Side::RedisAppendFsyncAlways
    });
    if let (Some(standard), Some(deferred), Some(single), Some(persistent)) =
        (standard, deferred, single, persistent)
    {
        notes.push(findings(standard, deferred, single, fsync)?);
        notes.push(like_with_like(standard, persistent)?);
        notes.push(choice(standard, fsync)?);
    }
    if let Some((variant, measurement)) = measured
        .iter()
        .find(|(_, measurement)| measurement.failures.is_some())
    {
        notes.push(fill!(
            END_TO_END,
            "failed-cycles",
            variant = variant.label(),
            error = measurement.failures.as_deref().unwrap_or_default(),
        )?);
    }
    Ok(notes)
}

/// The finding in numbers: where a block's time goes with 3 Redis nodes, and what the fsync
/// and the transaction count cost.
fn findings(
    standard: &Measurement,
    deferred: &Measurement,
    single: &Measurement,
    fsync: &Latencies,
) -> Result<String> {
    let commit = |measurement: &Measurement| step_mean_us(measurement, "commit");
    let fsync_us = fsync.quantile_us(0.5) as f64;
    fill!(
        END_TO_END,
        "findings",
        redis_nodes = REDIS_NODES,
        block_us = standard.block_times.summary().mean_us,
        commit_us = commit(standard),
        publish_us = step_mean_us(standard, "publish"),
        leader_state_us = step_mean_us(standard, "leader_state"),
        produce_seal_verify_us = local_mean_us(standard) - commit(standard),
        fsync_us = fsync_us,
        commit_over_fsync = commit(standard) / fsync_us.max(1.0),
        fsync_every = DEFERRED_FSYNC_EVERY,
        deferred_commit_us = commit(deferred),
        blocks_per_second = standard.blocks_per_second(),
        deferred_blocks_per_second = deferred.blocks_per_second(),
        transactions_per_block = TRANSACTIONS_PER_BLOCK,
        single_commit_us = commit(single),
        single_blocks_per_second = single.blocks_per_second(),
    )
}

/// The goal's comparison when the Redis side writes to disk too.
fn like_with_like(standard: &Measurement, persistent: &Measurement) -> Result<String> {
    let publish = step_mean_us(persistent, "publish");
    let local = local_mean_us(persistent);
    fill!(
        END_TO_END,
        "like-with-like",
        publish_us = publish,
        standard_publish_us = step_mean_us(standard, "publish"),
        local_us = local,
        local_over_publish = local / publish.max(f64::MIN_POSITIVE),
        blocks_per_second = persistent.blocks_per_second(),
        standard_blocks_per_second = standard.blocks_per_second(),
    )
}

/// The durability choice, why, and what a crash would cost, as the code stands.
fn choice(standard: &Measurement, fsync: &Latencies) -> Result<String> {
    let publish = step_mean_us(standard, "publish");
    let floor = fsync.quantile_us(0.5) as f64;
    let reach = END_TO_END.text(if floor >= publish {
        "reach-floor-above-publish"
    } else {
        "reach-floor-below-publish"
    })?;
    fill!(
        END_TO_END,
        "choice",
        floor_us = floor,
        floor_over_publish = floor / publish.max(1.0),
        publish_us = publish,
        reach = reach,
        stream_max_len = adapter_redis::RedisConfig::default().stream_max_len,
    )
}
