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

mod garbage;
mod kind;
#[cfg(test)]
mod tests;

pub(crate) use garbage::{Anchor, Garbage, ProducerKey, Servers};
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

    /// When a restore's snapshot is taken, if the fault is one.
    pub(crate) fn snapshot_at(&self) -> Option<Duration> {
        self.kind
            .snapshot_age()
            .map(|age| self.at.saturating_sub(age))
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
    /// The kinds drawn (see [`kinds_named`]); [`ALL_KINDS`] by default.
    pub(crate) kinds: KindSet,
}

/// A set of the kinds the schedule draws, by their position in [`WEIGHTS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KindSet(u32);

/// Every kind drawn without `--only`: all but a membership change, which replaces a server
/// of the fleet's list for the rest of the run and is drawn only when named.
pub(crate) const ALL_KINDS: KindSet = KindSet(!(1 << MEMBERSHIP_CHANGE_DRAW));

/// The position of [`Draw::MembershipChange`] in [`WEIGHTS`].
const MEMBERSHIP_CHANGE_DRAW: usize = 15;
/// The kinds a membership change may be drawn with: faults on a node's process or on all its
/// links, which name no server. The others name a server (or a link to one) by its index, and
/// the change replaces servers: their rules (a quorum of the servers kept clean) count the
/// servers of one list.
const MEMBERSHIP_CHANGE_COMPANIONS: [Draw; 4] = [
    Draw::NodePartition,
    Draw::NodeFreeze,
    Draw::NodeKill,
    Draw::NodeDiskFull,
];

impl KindSet {
    fn contains(self, draw: usize) -> bool {
        self.0 & (1 << draw) != 0
    }

    /// Whether the set holds a membership change and a kind that may not come with it: one
    /// that names a Redis server or a link to one by its index (see
    /// [`MEMBERSHIP_CHANGE_COMPANIONS`]).
    pub(crate) fn mixes_membership_change(self) -> bool {
        let companions = MEMBERSHIP_CHANGE_COMPANIONS
            .iter()
            .filter_map(|draw| WEIGHTS.iter().position(|(known, _, _)| known == draw))
            .fold(1 << MEMBERSHIP_CHANGE_DRAW, |set, draw| set | (1 << draw));
        self.contains(MEMBERSHIP_CHANGE_DRAW) && self.0 & !companions != 0
    }
}

/// The set of kinds `names` names.
///
/// # Errors
/// Names the first unknown kind and lists the known ones.
pub(crate) fn kinds_named(names: &[String]) -> Result<KindSet, String> {
    let mut set = 0_u32;
    for name in names {
        let Some(position) = WEIGHTS.iter().position(|(_, known, _)| known == name) else {
            let known: Vec<&str> = WEIGHTS.iter().map(|(_, known, _)| *known).collect();
            return Err(format!(
                "unknown fault kind `{name}`; the kinds are {}",
                known.join(", ")
            ));
        };
        set |= 1 << position;
    }
    Ok(KindSet(set))
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

/// The kinds the schedule draws, by the name `--only` knows them by, and their relative
/// weights, after fuel-core's harness. The names are the kinds' own, except that an empty
/// restart is a restart the budget allows to lose data (`redis_restart` stands for both) and
/// `corrupt` stands for garbage on one server and on a quorum. A restore from a snapshot is
/// drawn only when the run has a disruption budget to spend on it: without one its weight is 0,
/// so such a run draws the schedule it drew before the kind existed. A membership change is
/// drawn only when `--only` names it (see [`ALL_KINDS`]).
const WEIGHTS: [(Draw, &str, u32); 16] = [
    (Draw::LinkDown, "link_down", 8),
    (Draw::LinkPartition, "link_partition", 12),
    (Draw::LinkHold, "link_hold", 12),
    (Draw::LinkLatency, "link_latency", 14),
    (Draw::LinkReset, "link_reset", 8),
    (Draw::LinkCutReply, "link_cut_reply", 12),
    (Draw::NodePartition, "node_partition", 10),
    (Draw::NodeFreeze, "node_freeze", 12),
    (Draw::NodeKill, "node_kill", 12),
    (Draw::NodeFallBehind, "node_fall_behind", 8),
    (Draw::RedisRestart, "redis_restart", 10),
    (Draw::RedisFreeze, "redis_freeze", 4),
    (Draw::Corrupt, "corrupt", 16),
    (Draw::NodeDiskFull, "node_disk_full", 6),
    (Draw::RedisRestoreSnapshot, "redis_restore_snapshot", 8),
    (Draw::MembershipChange, "membership_change", 8),
];
/// Heights above the head of a far-above forgery: within the stream window of a short run, far
/// enough that every height between is still to be produced.
const FORGED_ABOVE: std::ops::RangeInclusive<u64> = 20..=40;
/// The share of corruption faults written on a quorum of servers rather than on one.
const CORRUPT_QUORUM_SHARE: f64 = 0.4;
/// Attempts to draw a kind that fits the rules before giving up on one start time.
const DRAW_ATTEMPTS: usize = 20;
/// How old a restored snapshot is, at least: heights have moved on (tens of blocks at 100 ms)
/// and, with faults every few seconds, often the epoch too.
const MIN_SNAPSHOT_AGE: Duration = Duration::from_secs(2);
/// How old a restored snapshot is, at most (also at most the data-loss window and the time
/// since the warm-up): a nightly backup is older, but a run is a minute long.
const MAX_SNAPSHOT_AGE: Duration = Duration::from_secs(30);
/// The time the schedule reserves for a membership change: about what its steps take on a
/// loaded debug build (four restarts, two commands, the window copied to the new server). The
/// run drives a change to its end however long it takes; the schedule only starts the next one
/// after this.
const MEMBERSHIP_CHANGE_LENGTH: Duration = Duration::from_secs(20);

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
    Corrupt,
    NodeDiskFull,
    RedisRestoreSnapshot,
    MembershipChange,
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
            let kind = draw_kind(&mut rng, settings, time);
            let kind = with_data_loss_decided(kind, &faults, time, settings);
            if !fits(&kind, &kinds, settings)
                || !within_data_loss_budget(&kind, &faults, time, settings)
                || !snapshot_fits(&kind, &faults, time, settings)
            {
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

fn draw_kind(rng: &mut StdRng, settings: &ScheduleSettings, time: Duration) -> FaultKind {
    let weight = |index: usize| {
        let (draw, _, weight) = WEIGHTS[index];
        let spendable = draw != Draw::RedisRestoreSnapshot || settings.quorum_disruption_budget > 0;
        if settings.kinds.contains(index) && spendable {
            weight
        } else {
            0
        }
    };
    let total: u32 = (0..WEIGHTS.len()).map(weight).sum();
    let mut ticket = rng.gen_range(0..total.max(1));
    let mut index = 0;
    while index + 1 < WEIGHTS.len() && ticket >= weight(index) {
        ticket -= weight(index);
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
        Draw::Corrupt => {
            let garbage = Garbage::drawn(
                rng.gen_range(0..Garbage::KINDS),
                rng.gen_range(FORGED_ABOVE),
            );
            let on_quorum = rng.gen_bool(CORRUPT_QUORUM_SHARE);
            let count = if on_quorum { settings.quorum() } else { 1 };
            FaultKind::Corrupt {
                garbage,
                servers: Servers::consecutive(redis, count, settings.redis),
                on_quorum,
                salt: rng.r#gen(),
            }
        }
        Draw::NodeDiskFull => FaultKind::NodeDiskFull { node },
        // Too early for a snapshot old enough: age zero, which `snapshot_fits` refuses.
        Draw::RedisRestoreSnapshot => FaultKind::RedisRestoreSnapshot {
            redis,
            age: oldest_snapshot(settings, time).map_or(Duration::ZERO, |oldest| {
                Duration::from_millis(
                    rng.gen_range(whole_millis_of(MIN_SNAPSHOT_AGE)..=whole_millis_of(oldest)),
                )
            }),
        },
        Draw::MembershipChange => FaultKind::MembershipChange { position: redis },
    }
}

/// The oldest snapshot a restore at `time` may bring back: [`MAX_SNAPSHOT_AGE`], but taken
/// after the warm-up (a leader has written the first blocks) and within the data-loss window
/// (everything the restore loses was written within it, as with an empty restart); `None` when
/// that is younger than [`MIN_SNAPSHOT_AGE`].
fn oldest_snapshot(settings: &ScheduleSettings, time: Duration) -> Option<Duration> {
    let oldest = MAX_SNAPSHOT_AGE
        .min(time.saturating_sub(settings.warmup))
        .min(settings.data_loss_window());
    (oldest >= MIN_SNAPSHOT_AGE).then_some(oldest)
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
/// `quorum_disruption_budget` other servers lost data (restarted empty or restored from a
/// snapshot) within the data-loss window before `time`. With a budget of 0, every restart keeps
/// its data.
fn with_data_loss_decided(
    kind: FaultKind,
    planned: &[PlannedFault],
    time: Duration,
    settings: &ScheduleSettings,
) -> FaultKind {
    let FaultKind::RedisRestart { redis, .. } = kind else {
        return kind;
    };
    let mut lost = servers_that_lost_data(planned, time, settings);
    lost.insert(redis);
    FaultKind::RedisRestart {
        redis,
        keeps_data: lost.len() > settings.quorum_disruption_budget,
    }
}

/// The quorum disruption budget rule (docs/operations.md section 2, "How the budget
/// compensates"; docs/chaos.md, "Data loss within the budget"): at most
/// `quorum_disruption_budget` distinct servers lose data within one data-loss window, so never
/// more at once either. A server restored from a snapshot lost what it acknowledged since the
/// snapshot, a subset of what an empty restart at the same time loses (the snapshot is younger
/// than the window): it counts exactly as an empty restart does. A restart that keeps its data,
/// or any other kind, spends nothing.
fn within_data_loss_budget(
    kind: &FaultKind,
    planned: &[PlannedFault],
    time: Duration,
    settings: &ScheduleSettings,
) -> bool {
    let Some(redis) = kind.data_lost_on() else {
        return true;
    };
    let mut lost = servers_that_lost_data(planned, time, settings);
    lost.insert(redis);
    lost.len() <= settings.quorum_disruption_budget
}

/// The servers `planned` made lose data within the data-loss window before `time`.
fn servers_that_lost_data(
    planned: &[PlannedFault],
    time: Duration,
    settings: &ScheduleSettings,
) -> BTreeSet<usize> {
    let window = settings.data_loss_window();
    planned
        .iter()
        .filter(|fault| fault.at + window > time)
        .filter_map(|fault| fault.kind.data_lost_on())
        .collect()
}

/// A restore's snapshot is taken from a server that answers and holds only what the producers
/// wrote: at least [`MIN_SNAPSHOT_AGE`] before the fault, after the warm-up, within the
/// data-loss window, and at a moment when no fault takes that server down (stopped, frozen,
/// restored) or holds garbage on it (the harness removes garbage at the heal; a snapshot must
/// not bring it back). Faults planned later start after `time`, so `planned` is all there is.
fn snapshot_fits(
    kind: &FaultKind,
    planned: &[PlannedFault],
    time: Duration,
    settings: &ScheduleSettings,
) -> bool {
    let FaultKind::RedisRestoreSnapshot { redis, age } = *kind else {
        return true;
    };
    let Some(oldest) = oldest_snapshot(settings, time) else {
        return false;
    };
    if age < MIN_SNAPSHOT_AGE || age > oldest {
        return false;
    }
    let taken = time - age;
    !planned.iter().filter(|f| f.active_at(taken)).any(|f| {
        f.kind.downed_redis() == Some(redis)
            || f.kind
                .corrupted_redis()
                .is_some_and(|servers| servers.contains(redis))
    })
}

/// Whether `kind` may start while `active` are active: never every node down, never the Redis
/// quorum broken, never two faults on the same node, Redis server or link.
fn fits(kind: &FaultKind, active: &[FaultKind], settings: &ScheduleSettings) -> bool {
    let downed_nodes = active.iter().filter(|f| f.downed_node().is_some()).count();
    if kind.downed_node().is_some() && downed_nodes + 1 >= settings.nodes {
        return false;
    }
    if !keeps_clean_servers(kind, active, settings) {
        return false;
    }
    // One membership change at a time: the next begins from the list the last one committed.
    let changing = |f: &FaultKind| matches!(f, FaultKind::MembershipChange { .. });
    if changing(kind) && active.iter().any(changing) {
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

/// Servers out of service for production: down (stopped, frozen, cut off) or holding garbage.
/// A Redis fault or garbage on one server starts only while a quorum of clean, reachable
/// servers remains, so "garbage on fewer than a quorum" always leaves production a quorum;
/// garbage on a quorum starts only while every server is up, and nothing else takes a server
/// meanwhile. Never two corruption faults at once, never garbage on a server that is down.
fn keeps_clean_servers(
    kind: &FaultKind,
    active: &[FaultKind],
    settings: &ScheduleSettings,
) -> bool {
    let out_of_service: usize = active
        .iter()
        .map(|f| {
            usize::from(f.downed_redis().is_some()) + f.corrupted_redis().map_or(0, Servers::len)
        })
        .sum();
    let spare = settings.redis - settings.quorum();
    if let Some(servers) = kind.corrupted_redis() {
        let busy = active.iter().any(|other| {
            other.corrupted_redis().is_some()
                || other
                    .downed_redis()
                    .is_some_and(|redis| servers.contains(redis))
        });
        let on_quorum = matches!(
            kind,
            FaultKind::Corrupt {
                on_quorum: true,
                ..
            }
        );
        return !busy
            && if on_quorum {
                out_of_service == 0
            } else {
                out_of_service + servers.len() <= spare
            };
    }
    if let Some(redis) = kind.downed_redis() {
        let corrupted = active.iter().any(|other| {
            other
                .corrupted_redis()
                .is_some_and(|servers| servers.contains(redis))
        });
        return !corrupted && out_of_service < spare;
    }
    true
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
        FaultKind::NodeKill { .. }
        | FaultKind::RedisRestart { .. }
        | FaultKind::RedisRestoreSnapshot { .. } => millis(rng, 300, 3000),
        FaultKind::RedisFreeze { .. } => millis(rng, 500, 3000),
        FaultKind::Corrupt {
            on_quorum: false, ..
        } => millis(rng, 1000, 5000),
        // Longer than a failover on a quorum, so a stop there is long enough to be judged by
        // whether it was reported.
        FaultKind::Corrupt {
            on_quorum: true, ..
        } => settings.lease_ttl * 2 + millis(rng, 1000, 3000),
        // Well within the nodes' chain recovery window (60 s): the node must recover, not exit.
        FaultKind::NodeDiskFull { .. } => millis(rng, 1000, 8000),
        FaultKind::LinkDown { .. }
        | FaultKind::LinkPartition { .. }
        | FaultKind::LinkLatency { .. } => millis(rng, 1000, 5000),
        FaultKind::NodeFallBehind { cut_off, .. } => {
            return draw_fall_behind_length(rng, *cut_off, settings, remaining);
        }
        FaultKind::MembershipChange { .. } => {
            return (MEMBERSHIP_CHANGE_LENGTH <= remaining).then_some(MEMBERSHIP_CHANGE_LENGTH);
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
    Duration::from_millis(whole_millis_of(duration))
}

fn whole_millis_of(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn blocks_to_time(blocks: u64, block_time: Duration) -> Duration {
    block_time.saturating_mul(u32::try_from(blocks).unwrap_or(u32::MAX))
}

fn millis(rng: &mut StdRng, low: u64, high: u64) -> Duration {
    Duration::from_millis(rng.gen_range(low..=high))
}
