//! The fault schedule: which fault starts when, for how long, on what, drawn from the seed alone.
//!
//! Pure: no clock, no process, no I/O, so the same seed and settings always give the same
//! schedule and the rules (budget, never every node down, a Redis quorum kept) are unit-tested.
//! It does not apply faults (that is `faults`); a target that depends on the running cluster
//! (the current leader) is left as [`NodePick::Leader`] and resolved when the fault starts.

use std::fmt;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

#[cfg(test)]
mod tests;

/// Which node a fault hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum NodePick {
    /// The leader when the fault starts (or the lowest-numbered eligible node when none leads):
    /// the interesting target, since faults on followers rarely test failover.
    Leader,
    /// Node `n`.
    Index(usize),
}

impl fmt::Display for NodePick {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Leader => write!(f, "leader"),
            Self::Index(index) => write!(f, "n{index}"),
        }
    }
}

/// One kind of fault and its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub(crate) enum FaultKind {
    /// The node's link to one Redis refuses and resets every connection: that Redis is down for
    /// this node only.
    LinkDown { node: NodePick, redis: usize },
    /// The link swallows everything (a network partition); on heal its connections are reset,
    /// as TCP timeouts would, and new ones pass.
    LinkPartition { node: NodePick, redis: usize },
    /// The link accepts and buffers but forwards nothing (half-alive), then releases the bytes.
    LinkHold { node: NodePick, redis: usize },
    /// Every chunk on the link is delayed by `delay`.
    LinkLatency {
        node: NodePick,
        redis: usize,
        delay: Duration,
    },
    /// Every connection of the link is reset once; new ones pass at once.
    LinkReset { node: NodePick, redis: usize },
    /// Every link of the node swallows everything: the node is cut off from Redis.
    NodePartition { node: NodePick },
    /// The node process is stopped (SIGSTOP) for longer than the lease TTL, then continued: a
    /// zombie leader that must find itself fenced.
    NodeFreeze { node: NodePick },
    /// The node process is killed (SIGKILL) and started again on the same data directory.
    NodeKill { node: NodePick },
    /// A Redis server is killed and started again empty.
    RedisRestart { redis: usize },
    /// A Redis server is stopped (SIGSTOP): it accepts connections and answers nothing.
    RedisFreeze { redis: usize },
}

impl FaultKind {
    /// Every kind's name, in report order.
    pub(crate) const NAMES: [&'static str; 10] = [
        "link_down",
        "link_partition",
        "link_hold",
        "link_latency",
        "link_reset",
        "node_partition",
        "node_freeze",
        "node_kill",
        "redis_restart",
        "redis_freeze",
    ];

    /// The kind's name, as in reports.
    pub(crate) fn name(&self) -> &'static str {
        let index = match self {
            Self::LinkDown { .. } => 0,
            Self::LinkPartition { .. } => 1,
            Self::LinkHold { .. } => 2,
            Self::LinkLatency { .. } => 3,
            Self::LinkReset { .. } => 4,
            Self::NodePartition { .. } => 5,
            Self::NodeFreeze { .. } => 6,
            Self::NodeKill { .. } => 7,
            Self::RedisRestart { .. } => 8,
            Self::RedisFreeze { .. } => 9,
        };
        Self::NAMES[index]
    }

    /// The node the fault takes out of service entirely, if any.
    pub(crate) fn downed_node(&self) -> Option<NodePick> {
        match self {
            Self::NodePartition { node } | Self::NodeFreeze { node } | Self::NodeKill { node } => {
                Some(*node)
            }
            _ => None,
        }
    }

    /// The Redis server the fault takes out of service for every node, if any.
    pub(crate) fn downed_redis(&self) -> Option<usize> {
        match self {
            Self::RedisRestart { redis } | Self::RedisFreeze { redis } => Some(*redis),
            _ => None,
        }
    }

    /// The node whose link to one Redis the fault affects, if it is a link fault.
    pub(crate) fn link(&self) -> Option<(NodePick, usize)> {
        match *self {
            Self::LinkDown { node, redis }
            | Self::LinkPartition { node, redis }
            | Self::LinkHold { node, redis }
            | Self::LinkLatency { node, redis, .. }
            | Self::LinkReset { node, redis } => Some((node, redis)),
            _ => None,
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LinkLatency { node, redis, delay } => {
                write!(f, "{}({node}->r{redis}, {delay:?})", self.name())
            }
            _ => {
                if let Some((node, redis)) = self.link() {
                    write!(f, "{}({node}->r{redis})", self.name())
                } else if let Some(node) = self.downed_node() {
                    write!(f, "{}({node})", self.name())
                } else if let Some(redis) = self.downed_redis() {
                    write!(f, "{}(r{redis})", self.name())
                } else {
                    write!(f, "{}", self.name())
                }
            }
        }
    }
}

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
}

/// Relative weights of the kinds, in [`FaultKind::NAMES`] order, after fuel-core's harness.
const WEIGHTS: [u32; 10] = [8, 12, 12, 14, 8, 10, 12, 12, 10, 4];
/// Attempts to draw a kind that fits the rules before giving up on one start time.
const DRAW_ATTEMPTS: usize = 20;

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
            if fits(&kind, &kinds, settings) {
                let lasts = draw_length(&mut rng, &kind, settings).min(last_end - time);
                faults.push(PlannedFault {
                    id: faults.len(),
                    at: time,
                    lasts,
                    kind,
                });
                break;
            }
        }
    }
    faults
}

/// A majority of `count` servers.
pub(crate) fn quorum(count: usize) -> usize {
    count / 2 + 1
}

fn draw_kind(rng: &mut StdRng, settings: &ScheduleSettings) -> FaultKind {
    let total: u32 = WEIGHTS.iter().sum();
    let mut ticket = rng.gen_range(0..total);
    let mut index = 0;
    while ticket >= WEIGHTS[index] {
        ticket -= WEIGHTS[index];
        index += 1;
    }
    let node = if rng.gen_bool(0.5) {
        NodePick::Leader
    } else {
        NodePick::Index(rng.gen_range(0..settings.nodes))
    };
    let redis = rng.gen_range(0..settings.redis);
    match index {
        0 => FaultKind::LinkDown { node, redis },
        1 => FaultKind::LinkPartition { node, redis },
        2 => FaultKind::LinkHold { node, redis },
        3 => FaultKind::LinkLatency {
            node,
            redis,
            delay: millis(rng, 50, 500),
        },
        4 => FaultKind::LinkReset { node, redis },
        5 => FaultKind::NodePartition { node },
        6 => FaultKind::NodeFreeze { node },
        7 => FaultKind::NodeKill { node },
        8 => FaultKind::RedisRestart { redis },
        _ => FaultKind::RedisFreeze { redis },
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
    if kind.downed_redis().is_some() && downed_redis + 1 > settings.redis - quorum(settings.redis) {
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
        !redis_clash && !link_clash && !node_clash
    })
}

fn draw_length(rng: &mut StdRng, kind: &FaultKind, settings: &ScheduleSettings) -> Duration {
    match kind {
        FaultKind::LinkReset { .. } => Duration::from_millis(100),
        FaultKind::LinkHold { .. } => millis(rng, 500, 4000),
        FaultKind::NodePartition { .. } => millis(rng, 2000, 6000),
        // Longer than the TTL so the lease lapses and another node leads before the thaw.
        FaultKind::NodeFreeze { .. } => settings.lease_ttl + millis(rng, 300, 2500),
        FaultKind::NodeKill { .. } | FaultKind::RedisRestart { .. } => millis(rng, 300, 3000),
        FaultKind::RedisFreeze { .. } => millis(rng, 500, 3000),
        FaultKind::LinkDown { .. }
        | FaultKind::LinkPartition { .. }
        | FaultKind::LinkLatency { .. } => millis(rng, 1000, 5000),
    }
}

fn millis(rng: &mut StdRng, low: u64, high: u64) -> Duration {
    Duration::from_millis(rng.gen_range(low..=high))
}
