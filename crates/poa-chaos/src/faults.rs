//! Starting and healing scheduled faults on the running cluster, and what the active faults
//! leave reachable.
//!
//! Owns the translation of a [`FaultKind`] into proxy modes and process signals, and the
//! bookkeeping of which concrete node, link or Redis server each active fault holds. It does not
//! decide when faults happen (the schedule) nor judge their effect (the checks).

use std::thread;
use std::time::Duration;

use anyhow::Result;
use poa_test_support::ProxyMode;

use crate::cluster::Cluster;
use crate::schedule::{FaultKind, NodePick, PlannedFault, quorum};

/// How long a healed partition's connections stay reset before new ones may pass: long enough
/// for every proxied connection to see the reset.
const RESET_SETTLE: Duration = Duration::from_millis(50);

/// A fault started on concrete targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ActiveFault {
    /// The scheduled fault.
    pub(crate) planned: PlannedFault,
    /// The node it hits, once [`NodePick::Leader`] is resolved.
    pub(crate) node: Option<usize>,
}

impl ActiveFault {
    /// A readable description with the resolved node, e.g. `node_freeze(leader=n1)`.
    pub(crate) fn describe(&self) -> String {
        let kind = self.planned.kind;
        match (
            self.node,
            kind.downed_node().or(kind.link().map(|(pick, _)| pick)),
        ) {
            (Some(node), Some(NodePick::Leader)) => {
                format!("#{} {kind} [leader=n{node}]", self.planned.id)
            }
            _ => format!("#{} {kind}", self.planned.id),
        }
    }

    /// Whether the fault takes its node out of service.
    fn downs_node(&self, node: usize) -> bool {
        self.node == Some(node) && self.planned.kind.downed_node().is_some()
    }

    /// Whether the fault makes the link from `node` to `redis` unusable within a node timeout.
    fn breaks_link(&self, node: usize, redis: usize) -> bool {
        let kind = self.planned.kind;
        if self.downs_node(node) || kind.downed_redis() == Some(redis) {
            return true;
        }
        // A link reset lasts one instant: connections are re-opened at once.
        let lasting = !matches!(kind, FaultKind::LinkReset { .. });
        lasting && self.node == Some(node) && kind.link().is_some_and(|(_, r)| r == redis)
    }

    fn clashes_with(&self, other: &ActiveFault) -> bool {
        let (kind, other_kind) = (self.planned.kind, other.planned.kind);
        let same_node = self.node.is_some() && self.node == other.node;
        let same_redis =
            kind.downed_redis().is_some() && kind.downed_redis() == other_kind.downed_redis();
        let same_link = same_node
            && kind
                .link()
                .zip(other_kind.link())
                .is_some_and(|((_, a), (_, b))| a == b);
        let node_down =
            same_node && (kind.downed_node().is_some() || other_kind.downed_node().is_some());
        same_redis || same_link || node_down
    }
}

/// Whether some live node reaches a quorum of live Redis servers through working links.
pub(crate) fn quorum_reachable(active: &[ActiveFault], nodes: usize, redis: usize) -> bool {
    (0..nodes).any(|node| {
        let downed = active.iter().any(|fault| fault.downs_node(node));
        let reachable = (0..redis)
            .filter(|&r| !active.iter().any(|fault| fault.breaks_link(node, r)))
            .count();
        !downed && reachable >= quorum(redis)
    })
}

/// Resolves the fault's target and starts it, or returns `None` when the resolved target is
/// already held by an active fault (possible with a budget above one, since the leader moves).
///
/// # Errors
/// Fails only when a process the fault needs cannot be signalled or restarted.
pub(crate) fn start(
    cluster: &mut Cluster,
    planned: &PlannedFault,
    leader: Option<usize>,
    active: &[ActiveFault],
) -> Result<Option<ActiveFault>> {
    let pick = planned
        .kind
        .downed_node()
        .or(planned.kind.link().map(|(pick, _)| pick));
    let node = pick.map(|pick| match pick {
        NodePick::Index(index) => index,
        NodePick::Leader => leader
            .filter(|&leader| !active.iter().any(|fault| fault.downs_node(leader)))
            .unwrap_or_else(|| {
                (0..cluster.nodes.len())
                    .find(|&node| !active.iter().any(|fault| fault.downs_node(node)))
                    .unwrap_or(0)
            }),
    });
    let fault = ActiveFault {
        planned: *planned,
        node,
    };
    if active.iter().any(|other| fault.clashes_with(other)) {
        return Ok(None);
    }
    apply(cluster, &fault, true)?;
    Ok(Some(fault))
}

/// Heals `fault`: the proxy passes again, the process runs again, the Redis server answers.
///
/// # Errors
/// Fails when a killed node cannot be started again.
pub(crate) fn heal(cluster: &mut Cluster, fault: &ActiveFault) -> Result<()> {
    apply(cluster, fault, false)
}

fn apply(cluster: &mut Cluster, fault: &ActiveFault, starting: bool) -> Result<()> {
    let node = fault.node.unwrap_or(0);
    match fault.planned.kind {
        FaultKind::LinkDown { redis, .. } | FaultKind::LinkReset { redis, .. } => {
            set_link(cluster, node, redis, ProxyMode::Reset, starting);
        }
        FaultKind::LinkHold { redis, .. } => {
            set_link(cluster, node, redis, ProxyMode::Hold, starting)
        }
        FaultKind::LinkLatency { redis, delay, .. } => {
            set_link(cluster, node, redis, ProxyMode::Latency(delay), starting);
        }
        FaultKind::LinkPartition { redis, .. } => {
            if starting {
                cluster.proxies[node][redis].set_mode(ProxyMode::Blackhole);
            } else {
                reset_then_pass(&cluster.proxies[node][redis..=redis]);
            }
        }
        FaultKind::NodePartition { .. } => {
            if starting {
                for proxy in &cluster.proxies[node] {
                    proxy.set_mode(ProxyMode::Blackhole);
                }
            } else {
                reset_then_pass(&cluster.proxies[node]);
            }
        }
        FaultKind::NodeFreeze { .. } => {
            if starting {
                cluster.nodes[node].freeze();
            } else {
                cluster.nodes[node].thaw();
            }
        }
        FaultKind::NodeKill { .. } => {
            if starting {
                cluster.nodes[node].kill();
            } else {
                cluster.nodes[node].spawn()?;
            }
        }
        FaultKind::RedisRestart { redis } => {
            if starting {
                cluster.redis[redis].stop();
            } else {
                cluster.redis[redis].restart();
            }
        }
        FaultKind::RedisFreeze { redis } => {
            if starting {
                cluster.redis[redis].freeze();
            } else {
                cluster.redis[redis].thaw();
            }
        }
    }
    Ok(())
}

fn set_link(cluster: &Cluster, node: usize, redis: usize, mode: ProxyMode, starting: bool) {
    let mode = if starting { mode } else { ProxyMode::Pass };
    cluster.proxies[node][redis].set_mode(mode);
}

/// A blackholed connection has lost bytes, so its RESP stream is out of step: it must be torn
/// down (as TCP would after a long partition), never resumed.
fn reset_then_pass(proxies: &[poa_test_support::FaultProxy]) {
    for proxy in proxies {
        proxy.set_mode(ProxyMode::Reset);
    }
    thread::sleep(RESET_SETTLE);
    for proxy in proxies {
        proxy.set_mode(ProxyMode::Pass);
    }
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests {
    use super::*;

    fn active(id: usize, kind: FaultKind, node: Option<usize>) -> ActiveFault {
        ActiveFault {
            planned: PlannedFault {
                id,
                at: Duration::ZERO,
                lasts: Duration::from_secs(1),
                kind,
            },
            node,
        }
    }

    #[test]
    fn quorum_reachable__when_one_redis_is_down__then_holds() {
        // given
        let faults = [active(0, FaultKind::RedisRestart { redis: 1 }, None)];

        // when / then
        assert!(quorum_reachable(&faults, 3, 3));
    }

    #[test]
    fn quorum_reachable__when_two_of_three_redis_are_down__then_fails() {
        // given
        let faults = [
            active(0, FaultKind::RedisRestart { redis: 0 }, None),
            active(1, FaultKind::RedisFreeze { redis: 2 }, None),
        ];

        // when / then
        assert!(!quorum_reachable(&faults, 3, 3));
    }

    #[test]
    fn quorum_reachable__when_the_only_node_is_partitioned__then_fails() {
        // given
        let pick = NodePick::Index(0);
        let faults = [active(0, FaultKind::NodePartition { node: pick }, Some(0))];

        // when / then
        assert!(!quorum_reachable(&faults, 1, 3));
        assert!(quorum_reachable(&faults, 2, 3));
    }

    #[test]
    fn quorum_reachable__when_a_node_lost_two_links_and_another_is_frozen__then_the_third_reaches()
    {
        // given
        let leader = NodePick::Leader;
        let faults = [
            active(
                0,
                FaultKind::LinkHold {
                    node: leader,
                    redis: 0,
                },
                Some(0),
            ),
            active(
                1,
                FaultKind::LinkDown {
                    node: leader,
                    redis: 1,
                },
                Some(0),
            ),
            active(2, FaultKind::NodeFreeze { node: leader }, Some(1)),
        ];

        // when / then
        assert!(quorum_reachable(&faults, 3, 3));
        assert!(!quorum_reachable(&faults, 2, 3));
    }

    #[test]
    fn clashes_with__when_two_faults_hold_one_node__then_clash_unless_both_are_other_links() {
        // given
        let pick = NodePick::Leader;
        let freeze = active(0, FaultKind::NodeFreeze { node: pick }, Some(1));
        let link_a = active(
            1,
            FaultKind::LinkHold {
                node: pick,
                redis: 0,
            },
            Some(1),
        );
        let link_b = active(
            2,
            FaultKind::LinkDown {
                node: pick,
                redis: 1,
            },
            Some(1),
        );
        let link_a_again = active(
            3,
            FaultKind::LinkDown {
                node: pick,
                redis: 0,
            },
            Some(1),
        );

        // when / then
        assert!(freeze.clashes_with(&link_a));
        assert!(!link_a.clashes_with(&link_b));
        assert!(link_a.clashes_with(&link_a_again));
    }
}
