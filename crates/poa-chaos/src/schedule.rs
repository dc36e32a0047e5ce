//! The fault schedule: which fault starts when, for how long, on what, drawn from the seed alone.
//!
//! Pure: no clock, no process, no I/O, so the same seed and settings always give the same
//! schedule and the rules (budget, never every node down, a Redis quorum kept) are unit-tested.
//! It does not apply faults (that is `faults`); a target that depends on the running cluster
//! (the current leader) is left as [`NodePick::Leader`] and resolved when the fault starts.

use std::collections::BTreeSet;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

mod kind;
#[cfg(test)]
mod tests;

pub(crate) use kind::{FaultKind, NodePick, Stop};

/// A fault the schedule starts at `at` (from the start of the run) and heals after `lasts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct PlannedFault {
    /// Position in the schedule, from 0.
    pub(crate) id: usize,
    /// When it starts, from the start of the run.
    pub(crate) at: Duration,
    /// How long it stays before it is healed.
    pub(crate) lasts: Duration,
    /// What it does.
    pub(crate) kind: FaultKind,
}

impl PlannedFault {
    /// When the fault is healed.
    pub(crate) fn ends(&self) -> Duration {
        self.at + self.lasts
    }

    fn active_at(&self, time: Duration) -> bool {
        self.at <= time && time < self.ends()
    }
}

/// What the schedule is drawn for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ScheduleSettings {
    /// The seed; everything below is a pure function of it and these settings.
    pub(crate) seed: u64,
    /// Faults start after `warmup` and are all healed by `duration`.
    pub(crate) duration: Duration,
    /// Time without faults at the start, for the first leader to be elected.
    pub(crate) warmup: Duration,
    /// Number of nodes.
    pub(crate) nodes: usize,
    /// Number of Redis servers.
    pub(crate) redis: usize,
    /// Faults active at once, at most.
    pub(crate) fault_budget: usize,
    /// Lease TTL of the nodes: a freeze outlasts it.
    pub(crate) lease_ttl: Duration,
    /// Block time of the nodes: it turns a window counted in blocks into time.
    pub(crate) block_time: Duration,
    /// The streams' window the nodes and Redis servers run with.
    pub(crate) streams: StreamWindow,
    /// The nodes' `--quorum-disruption-budget`: extra nodes in every quorum, and the number of
    /// Redis servers that may lose their data within [`ScheduleSettings::data_loss_window`].
    pub(crate) quorum_disruption_budget: usize,
}

/// How much history the Redis servers keep, in blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StreamWindow {
    /// The nodes' `--stream-max-len`.
    pub(crate) max_len: u64,
    /// The servers' `stream-node-max-entries`: approximate trimming keeps fewer than
    /// `max_len` plus this many entries.
    pub(crate) node_max_entries: u64,
}

/// Heights the heights index keeps beyond twice the stream length (adapter-redis's
/// `write_block` keeps `2 * stream_max_len + 256`).
const INDEX_EXTRA_HEIGHTS: u64 = 256;

impl StreamWindow {
    /// The most blocks a stream holds: a node stopped for longer than this many blocks rejoins
    /// past the window.
    pub(crate) fn stream_blocks(&self) -> u64 {
        self.max_len + self.node_max_entries
    }

    /// The heights a heights index keeps: the write script refuses a second block at a height
    /// only while the height is among them.
    pub(crate) fn index_blocks(&self) -> u64 {
        2 * self.max_len + INDEX_EXTRA_HEIGHTS
    }
}

impl ScheduleSettings {
    /// Redis servers a quorum needs: a majority plus the disruption budget, at most all.
    pub(crate) fn quorum(&self) -> usize {
        quorum(self.redis, self.quorum_disruption_budget)
    }

    /// The window within which at most `quorum_disruption_budget` distinct Redis servers are
    /// restarted empty: the time a committed height stays in the heights index of the servers
    /// that kept it (index heights at one block per block time). Production under faults is
    /// slower than one block per block time, but not half as slow, so a height's whole life in
    /// an index spans at most two windows: at most twice the budget of its copies are lost, as
    /// many as quorums overlapping in `1 + 2 x budget` servers can spare.
    pub(crate) fn data_loss_window(&self) -> Duration {
        blocks_to_time(self.streams.index_blocks(), self.block_time)
    }
}

/// Relative weights of the kinds the schedule draws, after fuel-core's harness; an empty
/// restart is a restart the budget allows to lose data, so it has no weight of its own.
const WEIGHTS: [(Draw, u32); 12] = [
    (Draw::LinkDown, 8),
    (Draw::LinkPartition, 12),
    (Draw::LinkHold, 12),
    (Draw::LinkLatency, 14),
    (Draw::LinkReset, 8),
    (Draw::LinkCutReply, 12),
    (Draw::NodePartition, 10),
    (Draw::NodeFreeze, 12),
    (Draw::NodeKill, 12),
    (Draw::NodeFallBehind, 8),
    (Draw::RedisRestart, 10),
    (Draw::RedisFreeze, 4),
];
/// Attempts to draw a kind that fits the rules before giving up on one start time.
const DRAW_ATTEMPTS: usize = 20;

/// The kinds as drawn, before their parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Draw {
    LinkDown,
    LinkPartition,
    LinkHold,
    LinkLatency,
    LinkReset,
    LinkCutReply,
    NodePartition,
    NodeFreeze,
    NodeKill,
    NodeFallBehind,
    RedisRestart,
    RedisFreeze,
}

/// Draws the schedule for `settings`.
pub(crate) fn plan(settings: &ScheduleSettings) -> Vec<PlannedFault> {
    let mut rng = StdRng::seed_from_u64(settings.seed);
    let mut faults: Vec<PlannedFault> = Vec::new();
    // Faults end a second before the end so the last one's recovery is part of the run.
    let last_end = settings.duration.saturating_sub(Duration::from_secs(1));
    let mut time = settings.warmup;
    while time < last_end {
        time += millis(&mut rng, 200, 2000);
        if time >= last_end {
            break;
        }
        let active: Vec<&PlannedFault> = faults.iter().filter(|f| f.active_at(time)).collect();
        if active.len() >= settings.fault_budget {
            // Wait for the first active fault to heal, then draw the gap again.
            time = active.iter().map(|f| f.ends()).min().unwrap_or(time);
            continue;
        }
        let kinds: Vec<FaultKind> = active.iter().map(|f| f.kind).collect();
        for _ in 0..DRAW_ATTEMPTS {
            let kind = draw_kind(&mut rng, settings);
            let kind = with_data_loss_decided(kind, &faults, time, settings);
            if !fits(&kind, &kinds, settings) {
                continue;
            }
            let Some(lasts) = draw_length(&mut rng, &kind, settings, last_end - time) else {
                continue;
            };
            faults.push(PlannedFault {
                id: faults.len(),
                at: time,
                lasts,
                kind,
            });
            break;
        }
    }
    faults
}

/// The Redis servers a quorum needs out of `count`: a strict majority plus `budget`, at most
/// `count` (docs/protocol.md section 1).
pub(crate) fn quorum(count: usize, budget: usize) -> usize {
    (count / 2 + 1 + budget).min(count)
}

fn draw_kind(rng: &mut StdRng, settings: &ScheduleSettings) -> FaultKind {
    let total: u32 = WEIGHTS.iter().map(|(_, weight)| weight).sum();
    let mut ticket = rng.gen_range(0..total);
    let mut index = 0;
    while ticket >= WEIGHTS[index].1 {
        ticket -= WEIGHTS[index].1;
        index += 1;
    }
    let node = if rng.gen_bool(0.5) {
        NodePick::Leader
    } else {
        NodePick::Index(rng.gen_range(0..settings.nodes))
    };
    let redis = rng.gen_range(0..settings.redis);
    match WEIGHTS[index].0 {
        Draw::LinkDown => FaultKind::LinkDown { node, redis },
        Draw::LinkPartition => FaultKind::LinkPartition { node, redis },
        Draw::LinkHold => FaultKind::LinkHold { node, redis },
        Draw::LinkLatency => FaultKind::LinkLatency {
            node,
            redis,
            delay: millis(rng, 50, 500),
        },
        Draw::LinkReset => FaultKind::LinkReset { node, redis },
        Draw::LinkCutReply => FaultKind::LinkCutReply {
            node,
            redis,
            after: draw_cut_offset(rng),
        },
        Draw::NodePartition => FaultKind::NodePartition { node },
        Draw::NodeFreeze => FaultKind::NodeFreeze { node },
        Draw::NodeKill => FaultKind::NodeKill { node },
        Draw::NodeFallBehind => {
            let stop = if rng.gen_bool(0.5) {
                Stop::Freeze
            } else {
                Stop::Kill
            };
            // Cut off with one server for longer than the lease TTL: a leader's last blocks are
            // then left on that server alone while the others elect a new leader elsewhere.
            let with_redis = (settings.redis > 1 && rng.gen_bool(0.5)).then_some(redis);
            let cut_off = match with_redis {
                Some(_) => settings.lease_ttl + millis(rng, 500, 1500),
                None => Duration::ZERO,
            };
            FaultKind::NodeFallBehind {
                node,
                stop,
                with_redis,
                cut_off,
            }
        }
        Draw::RedisRestart => FaultKind::RedisRestart {
            redis,
            keeps_data: true,
        },
        Draw::RedisFreeze => FaultKind::RedisFreeze { redis },
    }
}

/// Reply bytes a cut link still delivers: half the time 1-48 bytes, inside the next small reply
/// (a script's: a stream entry id, an epoch, a lease check); half the time 256 B-64 KiB,
/// log-uniform, inside a stream read of blocks with transactions.
fn draw_cut_offset(rng: &mut StdRng) -> usize {
    if rng.gen_bool(0.5) {
        rng.gen_range(1..=48)
    } else {
        let exponent: f64 = rng.gen_range(8.0..=16.0);
        // At most 2^16: the conversion cannot truncate.
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "a positive float below 65537"
        )]
        let after = 2_f64.powf(exponent) as usize;
        after
    }
}

/// A restart loses the server's data when the budget allows it: fewer than
/// `quorum_disruption_budget` other servers were restarted empty within the data-loss window
/// before `time`. With a budget of 0, every restart keeps its data.
fn with_data_loss_decided(
    kind: FaultKind,
    planned: &[PlannedFault],
    time: Duration,
    settings: &ScheduleSettings,
) -> FaultKind {
    let FaultKind::RedisRestart { redis, .. } = kind else {
        return kind;
    };
    let window = settings.data_loss_window();
    let mut emptied: BTreeSet<usize> = planned
        .iter()
        .filter(|fault| fault.at + window > time)
        .filter_map(|fault| match fault.kind {
            FaultKind::RedisRestart {
                redis,
                keeps_data: false,
            } => Some(redis),
            _ => None,
        })
        .collect();
    emptied.insert(redis);
    FaultKind::RedisRestart {
        redis,
        keeps_data: emptied.len() > settings.quorum_disruption_budget,
    }
}

/// Whether `kind` may start while `active` are active: never every node down, never the Redis
/// quorum broken, never two faults on the same node, Redis server or link.
fn fits(kind: &FaultKind, active: &[FaultKind], settings: &ScheduleSettings) -> bool {
    let downed_nodes = active.iter().filter(|f| f.downed_node().is_some()).count();
    let downed_redis = active.iter().filter(|f| f.downed_redis().is_some()).count();
    if kind.downed_node().is_some() && downed_nodes + 1 >= settings.nodes {
        return false;
    }
    if kind.downed_redis().is_some() && downed_redis + 1 > settings.redis - settings.quorum() {
        return false;
    }
    // A leader pick and an index pick may be the same node: overlaps are refused (and skipped at
    // run time when they would collide), so two faults never fight over one proxy or process.
    let same_node = |a: Option<NodePick>, b: Option<NodePick>| match (a, b) {
        (Some(NodePick::Index(a)), Some(NodePick::Index(b))) => a == b,
        (Some(_), Some(_)) => true,
        _ => false,
    };
    active.iter().all(|other| {
        let node_of = |f: &FaultKind| f.downed_node().or(f.link().map(|(node, _)| node));
        let redis_clash =
            kind.downed_redis().is_some() && kind.downed_redis() == other.downed_redis();
        let link_clash = match (kind.link(), other.link()) {
            (Some((a, ra)), Some((b, rb))) => ra == rb && same_node(Some(a), Some(b)),
            _ => false,
        };
        let node_clash = (kind.downed_node().is_some() || other.downed_node().is_some())
            && same_node(node_of(kind), node_of(other));
        // A server cut off with a falling-behind node holds every other node's link to it.
        let isolation_clash = |a: &FaultKind, b: &FaultKind| {
            a.isolated_redis()
                .is_some_and(|redis| b.link().is_some_and(|(_, r)| r == redis))
        };
        !redis_clash
            && !link_clash
            && !node_clash
            && !isolation_clash(kind, other)
            && !isolation_clash(other, kind)
    })
}

/// How long `kind` lasts, at most `remaining`; `None` when a fault that must outlast a window
/// does not fit in the time left.
fn draw_length(
    rng: &mut StdRng,
    kind: &FaultKind,
    settings: &ScheduleSettings,
    remaining: Duration,
) -> Option<Duration> {
    let length = match kind {
        FaultKind::LinkReset { .. } => Duration::from_millis(100),
        FaultKind::LinkHold { .. } => millis(rng, 500, 4000),
        FaultKind::LinkCutReply { .. } => millis(rng, 500, 4000),
        FaultKind::NodePartition { .. } => millis(rng, 2000, 6000),
        // Longer than the TTL so the lease lapses and another node leads before the thaw.
        FaultKind::NodeFreeze { .. } => settings.lease_ttl + millis(rng, 300, 2500),
        FaultKind::NodeKill { .. } | FaultKind::RedisRestart { .. } => millis(rng, 300, 3000),
        FaultKind::RedisFreeze { .. } => millis(rng, 500, 3000),
        FaultKind::LinkDown { .. }
        | FaultKind::LinkPartition { .. }
        | FaultKind::LinkLatency { .. } => millis(rng, 1000, 5000),
        FaultKind::NodeFallBehind { cut_off, .. } => {
            return draw_fall_behind_length(rng, *cut_off, settings, remaining);
        }
    };
    Some(length.min(remaining))
}

/// Half the time past the heights index too (1.1-1.4 index windows), when that fits: then the
/// write script no longer refuses a second block at the node's next height on the servers that
/// kept the first. Otherwise past the stream only (1.5-2.5 stream windows). The margins cover
/// production slower than one block per block time.
fn draw_fall_behind_length(
    rng: &mut StdRng,
    cut_off: Duration,
    settings: &ScheduleSettings,
    remaining: Duration,
) -> Option<Duration> {
    let past_index = rng.gen_bool(0.5);
    let index = blocks_to_time(settings.streams.index_blocks(), settings.block_time);
    let stream = blocks_to_time(settings.streams.stream_blocks(), settings.block_time);
    let past_index_length = cut_off + whole_millis(index.mul_f64(rng.gen_range(1.1..=1.4)));
    let past_stream_length = cut_off + whole_millis(stream.mul_f64(rng.gen_range(1.5..=2.5)));
    [
        past_index.then_some(past_index_length),
        Some(past_stream_length),
    ]
    .into_iter()
    .flatten()
    .find(|length| *length <= remaining)
}

fn whole_millis(duration: Duration) -> Duration {
    Duration::from_millis(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
}

fn blocks_to_time(blocks: u64, block_time: Duration) -> Duration {
    block_time.saturating_mul(u32::try_from(blocks).unwrap_or(u32::MAX))
}

fn millis(rng: &mut StdRng, low: u64, high: u64) -> Duration {
    Duration::from_millis(rng.gen_range(low..=high))
}
