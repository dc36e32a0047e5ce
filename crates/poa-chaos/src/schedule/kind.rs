//! The kinds of fault the schedule draws, their targets, and what each takes out of service.
//!
//! Pure data: naming, display and the questions the scheduling rules and the run ask of a kind
//! (which node, link or Redis server it holds). Drawing kinds and lengths is `schedule`'s job.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use super::garbage::{Garbage, Servers};

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

/// How a node that falls behind is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Stop {
    /// SIGSTOP, SIGCONT at the heal: the process wakes up with its old state (a zombie).
    Freeze,
    /// SIGKILL, started again on the same data directory at the heal.
    Kill,
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
    /// Each connection of the link is reset once `after` more reply bytes went back to the node:
    /// the link dies in the middle of a reply (a script's, or a stream read's) after the request
    /// landed, so the outcome of a write is unknown.
    LinkCutReply {
        node: NodePick,
        redis: usize,
        after: usize,
    },
    /// Every link of the node swallows everything: the node is cut off from Redis.
    NodePartition { node: NodePick },
    /// The node process is stopped (SIGSTOP) for longer than the lease TTL, then continued: a
    /// zombie leader that must find itself fenced.
    NodeFreeze { node: NodePick },
    /// The node process is killed (SIGKILL) and started again on the same data directory.
    NodeKill { node: NodePick },
    /// The node is stopped for longer than the Redis streams' window, so it rejoins with a next
    /// height no stream holds any more. With `with_redis`, it is first cut off together with
    /// that one Redis server for `cut_off` (a partition: it and that server on one side, every
    /// other node and server on the other), then stopped; that server stays cut off from the
    /// other nodes until the heal, so it keeps whatever the node last wrote there.
    NodeFallBehind {
        node: NodePick,
        stop: Stop,
        with_redis: Option<usize>,
        cut_off: Duration,
    },
    /// A Redis server is killed and started again, with its append-only file (`keeps_data`)
    /// or empty (only within the quorum disruption budget).
    RedisRestart { redis: usize, keeps_data: bool },
    /// A Redis server is stopped (SIGSTOP): it accepts connections and answers nothing.
    RedisFreeze { redis: usize },
    /// A Redis server is killed and brought back from a snapshot of its data taken `age` before
    /// the fault (an operator's backup restored after a crash): it holds that moment's streams,
    /// heights index and epoch, and lost everything it acknowledged since. Only within the
    /// quorum disruption budget, as an empty restart.
    RedisRestoreSnapshot { redis: usize, age: Duration },
    /// Garbage written straight into the producer's keys on `servers` (one of them, or a
    /// quorum: `on_quorum`), and removed again by the harness at the heal. `salt` seeds the
    /// garbage's bytes.
    Corrupt {
        garbage: Garbage,
        servers: Servers,
        on_quorum: bool,
        salt: u64,
    },
    /// The node's chain file cannot grow (its file size limit is lowered below the file's
    /// size): every write fails as on a full disk, until the heal lifts the limit.
    NodeDiskFull { node: NodePick },
    /// The fleet's Redis list changes under load, as docs/operations.md 7.14 has it: the server
    /// at `position` of the current list is replaced by a new one, through the joint phase
    /// (`poa-node membership begin`, the producers restarted one at a time with both lists,
    /// `membership commit`, the producers restarted on the new list, the old server stopped).
    /// Its steps take the time they take: the run drives it to its end, not the schedule.
    MembershipChange { position: usize },
}

impl FaultKind {
    /// Every kind's name, in report order.
    pub(crate) const NAMES: [&'static str; 18] = [
        "link_down",
        "link_partition",
        "link_hold",
        "link_latency",
        "link_reset",
        "link_cut_reply",
        "node_partition",
        "node_freeze",
        "node_kill",
        "node_fall_behind",
        "redis_restart",
        "redis_restart_empty",
        "redis_freeze",
        "corrupt_one",
        "corrupt_quorum",
        "node_disk_full",
        "redis_restore_snapshot",
        "membership_change",
    ];

    /// The kind's name, as in reports.
    pub(crate) fn name(&self) -> &'static str {
        let index = match self {
            Self::LinkDown { .. } => 0,
            Self::LinkPartition { .. } => 1,
            Self::LinkHold { .. } => 2,
            Self::LinkLatency { .. } => 3,
            Self::LinkReset { .. } => 4,
            Self::LinkCutReply { .. } => 5,
            Self::NodePartition { .. } => 6,
            Self::NodeFreeze { .. } => 7,
            Self::NodeKill { .. } => 8,
            Self::NodeFallBehind { .. } => 9,
            Self::RedisRestart {
                keeps_data: true, ..
            } => 10,
            Self::RedisRestart {
                keeps_data: false, ..
            } => 11,
            Self::RedisFreeze { .. } => 12,
            Self::Corrupt {
                on_quorum: false, ..
            } => 13,
            Self::Corrupt {
                on_quorum: true, ..
            } => 14,
            Self::NodeDiskFull { .. } => 15,
            Self::RedisRestoreSnapshot { .. } => 16,
            Self::MembershipChange { .. } => 17,
        };
        Self::NAMES[index]
    }

    /// The node the fault takes out of service entirely, if any.
    pub(crate) fn downed_node(&self) -> Option<NodePick> {
        match self {
            Self::NodePartition { node }
            | Self::NodeFreeze { node }
            | Self::NodeKill { node }
            | Self::NodeFallBehind { node, .. }
            | Self::NodeDiskFull { node } => Some(*node),
            _ => None,
        }
    }

    /// The Redis server the fault takes out of service for every other node, if any.
    pub(crate) fn downed_redis(&self) -> Option<usize> {
        match self {
            Self::RedisRestart { redis, .. }
            | Self::RedisFreeze { redis }
            | Self::RedisRestoreSnapshot { redis, .. } => Some(*redis),
            Self::NodeFallBehind { with_redis, .. } => *with_redis,
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
            | Self::LinkReset { node, redis }
            | Self::LinkCutReply { node, redis, .. } => Some((node, redis)),
            _ => None,
        }
    }

    /// The Redis servers a corruption fault writes garbage into, if it is one.
    pub(crate) fn corrupted_redis(&self) -> Option<Servers> {
        match self {
            Self::Corrupt { servers, .. } => Some(*servers),
            _ => None,
        }
    }

    /// The Redis server that comes back without writes it acknowledged, if any: restarted
    /// empty, or restored from a snapshot (everything since the snapshot is gone).
    pub(crate) fn data_lost_on(&self) -> Option<usize> {
        match *self {
            Self::RedisRestart {
                redis,
                keeps_data: false,
            }
            | Self::RedisRestoreSnapshot { redis, .. } => Some(redis),
            _ => None,
        }
    }

    /// How long before the fault a restore's snapshot is taken, if it is one.
    pub(crate) fn snapshot_age(&self) -> Option<Duration> {
        match self {
            Self::RedisRestoreSnapshot { age, .. } => Some(*age),
            _ => None,
        }
    }

    /// The Redis server a fall-behind fault cuts off together with its node, if any: every
    /// other node's link to it is held by the fault.
    pub(crate) fn isolated_redis(&self) -> Option<usize> {
        match self {
            Self::NodeFallBehind { with_redis, .. } => *with_redis,
            _ => None,
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::LinkLatency { node, redis, delay } => {
                write!(f, "{}({node}->r{redis}, {delay:?})", self.name())
            }
            Self::LinkCutReply { node, redis, after } => {
                write!(f, "{}({node}->r{redis}, after {after} B)", self.name())
            }
            Self::NodeFallBehind {
                node,
                stop,
                with_redis,
                ..
            } => {
                let stop = match stop {
                    Stop::Freeze => "freeze",
                    Stop::Kill => "kill",
                };
                match with_redis {
                    Some(redis) => write!(f, "{}({node}, {stop}, with r{redis})", self.name()),
                    None => write!(f, "{}({node}, {stop})", self.name()),
                }
            }
            Self::Corrupt {
                garbage, servers, ..
            } => write!(f, "{}({garbage} on {servers})", self.name()),
            Self::RedisRestoreSnapshot { redis, age } => {
                write!(f, "{}(r{redis}, {age:?} old)", self.name())
            }
            Self::MembershipChange { position } => {
                write!(f, "{}(list position {position})", self.name())
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
