//! Starting and healing scheduled faults on the running cluster, and what the active faults
//! leave reachable.
//!
//! Owns the translation of a [`FaultKind`] into proxy modes and process signals, and the
//! bookkeeping of which concrete node, link or Redis server each active fault holds. It does not
//! decide when faults happen (the schedule) nor judge their effect (the checks).

use std::thread;
use std::time::Duration;

use anyhow::{Result, bail};
use poa_test_support::{FaultProxy, ProxyMode, Snapshot};

use crate::cluster::Cluster;
use crate::schedule::{FaultKind, NodePick, PlannedFault, Stop};

/// How long a healed partition's connections stay reset before new ones may pass: long enough
/// for every proxied connection to see the reset.
const RESET_SETTLE: Duration = Duration::from_millis(50);
/// Delay per chunk on a falling-behind node's links to the servers it is about to be cut off
/// from, before the cut: round trips stay within the node timeout, so a leader keeps
/// producing, but each of its writes to those servers waits this long in the proxy, where the
/// cut drops it while the write to the server it keeps lands. Its last block is then left on
/// that one server.
const DEGRADE_LATENCY: Duration = Duration::from_millis(40);
/// How long the links are degraded before the cut.
const DEGRADE_TIME: Duration = Duration::from_millis(500);
/// The file size limit of a node whose disk is full: inside the chain file's header page, so
/// every data page write fails ("File too large"), as on a full disk.
const DISK_FULL_FILE_SIZE: u64 = 4096;

/// A fault started on concrete targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ActiveFault {
    /// The scheduled fault.
    pub(crate) planned: PlannedFault,
    /// The node it hits, once [`NodePick::Leader`] is resolved.
    pub(crate) node: Option<usize>,
    /// Whether a falling-behind node has been cut off with its server yet.
    pub(crate) cut: bool,
    /// Whether a falling-behind node has been stopped yet (after its cut-off).
    pub(crate) stopped: bool,
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

    /// Whether a falling-behind fault is due to cut its node off with its server at `now`.
    pub(crate) fn cut_due(&self, now: Duration) -> bool {
        self.planned.kind.isolated_redis().is_some()
            && !self.cut
            && now >= self.planned.at + DEGRADE_TIME
    }

    /// The node a falling-behind fault is due to stop at `now` (from the start of the run):
    /// its cut-off is over and it has not been stopped yet.
    pub(crate) fn stop_due(&self, now: Duration) -> Option<usize> {
        match self.planned.kind {
            FaultKind::NodeFallBehind { cut_off, .. }
                if !self.stopped && now >= self.planned.at + cut_off =>
            {
                self.node
            }
            _ => None,
        }
    }

    /// Whether the fault takes its node out of service.
    pub(crate) fn downs_node(&self, node: usize) -> bool {
        self.node == Some(node) && self.planned.kind.downed_node().is_some()
    }

    /// Whether the fault makes the link from `node` to `redis` unusable within a node timeout.
    fn breaks_link(&self, node: usize, redis: usize) -> bool {
        let kind = self.planned.kind;
        if self.downs_node(node) || kind.downed_redis() == Some(redis) {
            return true;
        }
        // A server holding garbage may refuse the next block: no quorum is counted on it.
        if kind
            .corrupted_redis()
            .is_some_and(|servers| servers.contains(redis))
        {
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
        let isolation = |a: FaultKind, b: FaultKind| {
            a.isolated_redis()
                .is_some_and(|redis| b.link().is_some_and(|(_, r)| r == redis))
        };
        // Never two corruption faults at once, never garbage on a server that is down.
        let garbage = |a: FaultKind, b: FaultKind| {
            a.corrupted_redis().is_some_and(|servers| {
                b.corrupted_redis().is_some()
                    || b.downed_redis()
                        .is_some_and(|redis| servers.contains(redis))
            })
        };
        // One membership change at a time (one started late may meet the last one unfinished).
        let changes = matches!(kind, FaultKind::MembershipChange { .. })
            && matches!(other_kind, FaultKind::MembershipChange { .. });
        same_redis
            || changes
            || same_link
            || node_down
            || isolation(kind, other_kind)
            || isolation(other_kind, kind)
            || garbage(kind, other_kind)
            || garbage(other_kind, kind)
    }
}

/// Whether a producer that can produce is healthy: some live node, not `excluded` (a node that
/// fell past the streams' window and has not caught up cannot produce), reaches `quorum`
/// Redis servers through working links, not counting servers that hold garbage.
pub(crate) fn producer_available(
    active: &[ActiveFault],
    redis: usize,
    quorum: usize,
    excluded: &[bool],
) -> bool {
    (0..excluded.len()).any(|node| {
        let downed = active.iter().any(|fault| fault.downs_node(node));
        let reachable = (0..redis)
            .filter(|&r| !active.iter().any(|fault| fault.breaks_link(node, r)))
            .count();
        !downed && !excluded[node] && reachable >= quorum
    })
}

/// Resolves the fault's target, or returns `None` when the resolved target is already held by
/// an active fault (possible with a budget above one, since the leader moves).
pub(crate) fn resolve(
    planned: &PlannedFault,
    nodes: usize,
    leader: Option<usize>,
    active: &[ActiveFault],
) -> Option<ActiveFault> {
    let pick = planned
        .kind
        .downed_node()
        .or(planned.kind.link().map(|(pick, _)| pick));
    let node = pick.map(|pick| match pick {
        NodePick::Index(index) => index,
        NodePick::Leader => leader
            .filter(|&leader| !active.iter().any(|fault| fault.downs_node(leader)))
            .unwrap_or_else(|| {
                (0..nodes)
                    .find(|&node| !active.iter().any(|fault| fault.downs_node(node)))
                    .unwrap_or(0)
            }),
    });
    let fault = ActiveFault {
        planned: *planned,
        node,
        cut: false,
        stopped: false,
    };
    (!active.iter().any(|other| fault.clashes_with(other))).then_some(fault)
}

/// Starts a resolved fault. A falling-behind node is only cut off here; [`stop`] stops it.
/// Garbage is written by the run (`corrupt`), which knows the chain's head.
///
/// # Errors
/// Fails only when a process the fault needs cannot be signalled, limited or restarted.
pub(crate) fn start(cluster: &mut Cluster, fault: &ActiveFault) -> Result<()> {
    apply(cluster, fault, true, None)
}

/// Cuts a falling-behind node off together with its server, after its links degraded.
pub(crate) fn cut(cluster: &mut Cluster, fault: &mut ActiveFault) {
    if let (Some(redis), Some(node)) = (fault.planned.kind.isolated_redis(), fault.node) {
        partition(&isolation_links(&cluster.proxies, node, redis), true);
        fault.cut = true;
    }
}

/// Stops a falling-behind node once its cut-off is over.
pub(crate) fn stop(cluster: &mut Cluster, fault: &mut ActiveFault) {
    if let (FaultKind::NodeFallBehind { stop, .. }, Some(node)) = (fault.planned.kind, fault.node) {
        match stop {
            Stop::Freeze => cluster.nodes[node].freeze(),
            Stop::Kill => cluster.nodes[node].kill(),
        }
        fault.stopped = true;
    }
}

/// Heals `fault`: the proxy passes again, the process runs again, the Redis server answers
/// (a restored one holding `snapshot`, the data the run took from it earlier), the disk takes
/// writes again (a node that exited meanwhile is started again, as its supervisor would).
/// Garbage is removed by the run.
///
/// # Errors
/// Fails when a killed node cannot be started again, a limit cannot be lifted, or a restore
/// has no snapshot.
pub(crate) fn heal(
    cluster: &mut Cluster,
    fault: &ActiveFault,
    snapshot: Option<&Snapshot>,
) -> Result<()> {
    apply(cluster, fault, false, snapshot)
}

fn apply(
    cluster: &mut Cluster,
    fault: &ActiveFault,
    starting: bool,
    snapshot: Option<&Snapshot>,
) -> Result<()> {
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
        FaultKind::LinkCutReply { redis, after, .. } => {
            set_link(cluster, node, redis, ProxyMode::CloseAfter(after), starting);
        }
        FaultKind::LinkPartition { redis, .. } => {
            partition(&[&cluster.proxies[node][redis]], starting);
        }
        FaultKind::NodePartition { .. } => {
            let links: Vec<&FaultProxy> = cluster.proxies[node].iter().collect();
            partition(&links, starting);
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
        FaultKind::NodeFallBehind {
            stop, with_redis, ..
        } => {
            if let Some(redis) = with_redis {
                if starting {
                    let degraded = cluster.proxies[node]
                        .iter()
                        .enumerate()
                        .filter(|(r, _)| *r != redis);
                    for (_, proxy) in degraded {
                        proxy.set_mode(ProxyMode::Latency(DEGRADE_LATENCY));
                    }
                } else {
                    partition(&isolation_links(&cluster.proxies, node, redis), false);
                }
            }
            if !starting && fault.stopped {
                match stop {
                    Stop::Freeze => cluster.nodes[node].thaw(),
                    Stop::Kill => cluster.nodes[node].spawn()?,
                }
            }
        }
        FaultKind::RedisRestart { redis, keeps_data } => {
            if starting {
                cluster.redis[redis].stop();
            } else if keeps_data {
                cluster.redis[redis].restart_keeping_data();
            } else {
                cluster.redis[redis].restart();
            }
        }
        // Killed at the start, as a crash; at the heal its data is replaced by the snapshot and
        // it starts on the same port (then its append-only file is rewritten from that data).
        FaultKind::RedisRestoreSnapshot { redis, .. } => {
            if starting {
                cluster.redis[redis].stop();
            } else if let Some(snapshot) = snapshot {
                cluster.redis[redis].restore(snapshot);
            } else {
                bail!(
                    "#{} {}: no snapshot to restore r{redis} from",
                    fault.planned.id,
                    fault.planned.kind
                );
            }
        }
        FaultKind::RedisFreeze { redis } => {
            if starting {
                cluster.redis[redis].freeze();
            } else {
                cluster.redis[redis].thaw();
            }
        }
        FaultKind::NodeDiskFull { .. } => {
            let process = &mut cluster.nodes[node];
            if starting {
                process.limit_file_size(Some(DISK_FULL_FILE_SIZE))?;
            } else if process.is_running() {
                process.limit_file_size(None)?;
            } else {
                process.spawn()?;
            }
        }
        // Garbage is written and removed by the run; a membership change is driven by it.
        FaultKind::Corrupt { .. } | FaultKind::MembershipChange { .. } => {}
    }
    Ok(())
}

/// The links (of a `links[node][redis]` grid) a partition of `node` together with `redis`
/// cuts: the node's links to every other server, and every other node's link to that server.
fn isolation_links<T>(links: &[Vec<T>], node: usize, redis: usize) -> Vec<&T> {
    links
        .iter()
        .enumerate()
        .flat_map(|(other, links)| {
            links
                .iter()
                .enumerate()
                .filter(move |(r, _)| (other == node) != (*r == redis))
                .map(|(_, proxy)| proxy)
        })
        .collect()
}

fn set_link(cluster: &Cluster, node: usize, redis: usize, mode: ProxyMode, starting: bool) {
    let mode = if starting { mode } else { ProxyMode::Pass };
    cluster.proxies[node][redis].set_mode(mode);
}

/// Starting: the links swallow everything. Healing: a blackholed connection has lost bytes, so
/// its RESP stream is out of step: it must be torn down (as TCP would after a long
/// partition), never resumed.
fn partition(links: &[&FaultProxy], starting: bool) {
    if starting {
        for proxy in links {
            proxy.set_mode(ProxyMode::Blackhole);
        }
        return;
    }
    for proxy in links {
        proxy.set_mode(ProxyMode::Reset);
    }
    thread::sleep(RESET_SETTLE);
    for proxy in links {
        proxy.set_mode(ProxyMode::Pass);
    }
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests {
    use super::*;
    use crate::schedule::{Garbage, Servers, quorum};

    fn active(id: usize, kind: FaultKind, node: Option<usize>) -> ActiveFault {
        ActiveFault {
            planned: PlannedFault {
                id,
                at: Duration::ZERO,
                lasts: Duration::from_secs(1),
                kind,
            },
            node,
            cut: false,
            stopped: false,
        }
    }

    fn reachable(faults: &[ActiveFault], nodes: usize, redis: usize) -> bool {
        producer_available(faults, redis, quorum(redis, 0), &vec![false; nodes])
    }

    #[test]
    fn producer_available__when_one_redis_is_down__then_holds() {
        // given
        let faults = [active(
            0,
            FaultKind::RedisRestart {
                redis: 1,
                keeps_data: true,
            },
            None,
        )];

        // when / then
        assert!(reachable(&faults, 3, 3));
    }

    #[test]
    fn producer_available__when_two_of_three_redis_are_down__then_fails() {
        // given
        let faults = [
            active(
                0,
                FaultKind::RedisRestart {
                    redis: 0,
                    keeps_data: false,
                },
                None,
            ),
            active(1, FaultKind::RedisFreeze { redis: 2 }, None),
        ];

        // when / then
        assert!(!reachable(&faults, 3, 3));
    }

    #[test]
    fn producer_available__when_the_only_node_is_partitioned__then_fails() {
        // given
        let pick = NodePick::Index(0);
        let faults = [active(0, FaultKind::NodePartition { node: pick }, Some(0))];

        // when / then
        assert!(!reachable(&faults, 1, 3));
        assert!(reachable(&faults, 2, 3));
    }

    #[test]
    fn producer_available__when_a_node_lost_two_links_and_another_is_frozen__then_the_third_reaches()
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
        assert!(reachable(&faults, 3, 3));
        assert!(!reachable(&faults, 2, 3));
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

    #[test]
    fn producer_available__when_the_only_reaching_node_fell_past_the_window__then_fails() {
        // given n0 frozen, n1 left behind without a peer, n2 cut off from two servers
        let faults = [
            active(
                0,
                FaultKind::NodeFreeze {
                    node: NodePick::Index(0),
                },
                Some(0),
            ),
            active(
                1,
                FaultKind::LinkDown {
                    node: NodePick::Index(2),
                    redis: 0,
                },
                Some(2),
            ),
            active(
                2,
                FaultKind::LinkHold {
                    node: NodePick::Index(2),
                    redis: 1,
                },
                Some(2),
            ),
        ];

        // when / then
        assert!(!producer_available(&faults, 3, 2, &[false, true, false]));
        assert!(producer_available(&faults, 3, 2, &[false, false, false]));
    }

    #[test]
    fn producer_available__when_the_budget_raises_the_quorum__then_one_lost_link_of_three_breaks_it()
     {
        // given
        let faults = [active(
            0,
            FaultKind::LinkDown {
                node: NodePick::Index(0),
                redis: 2,
            },
            Some(0),
        )];

        // when / then: three servers with a budget of one need all three
        assert!(!producer_available(&faults, 3, quorum(3, 1), &[false]));
        assert!(producer_available(&faults, 3, quorum(3, 0), &[false]));
    }

    #[test]
    fn producer_available__when_a_node_falls_behind_with_a_server__then_the_others_lose_that_server()
     {
        // given n1 cut off together with r0
        let fall = FaultKind::NodeFallBehind {
            node: NodePick::Leader,
            stop: Stop::Kill,
            with_redis: Some(0),
            cut_off: Duration::from_secs(2),
        };
        let faults = [active(0, fall, Some(1))];

        // when / then: n0 and n2 reach r1 and r2 only
        assert!(producer_available(&faults, 3, 2, &[false, false, false]));
        assert!(!producer_available(&faults, 3, 3, &[false, false, false]));
    }

    fn corrupt(id: usize, first: usize, count: usize) -> ActiveFault {
        active(
            id,
            FaultKind::Corrupt {
                garbage: Garbage::UnparsableMember,
                servers: Servers::consecutive(first, count, 3),
                on_quorum: count > 1,
                salt: 0,
            },
            None,
        )
    }

    #[test]
    fn producer_available__when_garbage_is_on_one_server__then_counts_on_the_other_two_only() {
        // given garbage on r0 and n0's link to r1 down; n1 reaches r1 and r2
        let faults = [
            corrupt(0, 0, 1),
            active(
                1,
                FaultKind::LinkDown {
                    node: NodePick::Index(0),
                    redis: 1,
                },
                Some(0),
            ),
        ];

        // when / then
        assert!(!producer_available(&faults, 3, 2, &[false, true]));
        assert!(producer_available(&faults, 3, 2, &[false, false]));
    }

    #[test]
    fn producer_available__when_garbage_is_on_a_quorum__then_no_producer_can_produce() {
        // given / when / then
        assert!(!producer_available(&[corrupt(0, 1, 2)], 3, 2, &[false; 3]));
    }

    #[test]
    fn clashes_with__when_garbage_meets_garbage_or_a_server_down__then_clash() {
        // given
        let on_r0 = corrupt(0, 0, 1);
        let on_r2 = corrupt(1, 2, 1);
        let r0_down = active(2, FaultKind::RedisFreeze { redis: 0 }, None);
        let r1_down = active(3, FaultKind::RedisFreeze { redis: 1 }, None);

        // when / then
        assert!(on_r0.clashes_with(&on_r2));
        assert!(on_r0.clashes_with(&r0_down));
        assert!(r0_down.clashes_with(&on_r0));
        assert!(!on_r0.clashes_with(&r1_down));
    }

    #[test]
    fn isolation_links__when_a_node_is_cut_off_with_one_server__then_cuts_its_other_links_and_the_others_links_to_that_server()
     {
        // given a grid naming each link (node, redis)
        let grid: Vec<Vec<(usize, usize)>> = (0..3)
            .map(|node| (0..3).map(|redis| (node, redis)).collect())
            .collect();

        // when
        let mut cut: Vec<(usize, usize)> =
            isolation_links(&grid, 1, 2).into_iter().copied().collect();
        cut.sort_unstable();

        // then
        assert_eq!(cut, vec![(0, 2), (1, 0), (1, 1), (2, 2)]);
    }

    #[test]
    fn clashes_with__when_a_server_is_cut_off_with_a_node__then_a_link_fault_to_it_clashes() {
        // given
        let fall = active(
            0,
            FaultKind::NodeFallBehind {
                node: NodePick::Index(1),
                stop: Stop::Freeze,
                with_redis: Some(2),
                cut_off: Duration::from_secs(2),
            },
            Some(1),
        );
        let to_that_server = active(
            1,
            FaultKind::LinkLatency {
                node: NodePick::Index(0),
                redis: 2,
                delay: Duration::from_millis(100),
            },
            Some(0),
        );
        let elsewhere = active(
            2,
            FaultKind::LinkLatency {
                node: NodePick::Index(0),
                redis: 1,
                delay: Duration::from_millis(100),
            },
            Some(0),
        );

        // when / then
        assert!(fall.clashes_with(&to_that_server));
        assert!(to_that_server.clashes_with(&fall));
        assert!(!fall.clashes_with(&elsewhere));
    }

    #[test]
    fn cut_due_and_stop_due__when_the_links_degraded_and_the_cut_off_is_over__then_each_fires_once()
    {
        // given
        let mut fall = active(
            0,
            FaultKind::NodeFallBehind {
                node: NodePick::Index(2),
                stop: Stop::Kill,
                with_redis: Some(0),
                cut_off: Duration::from_secs(2),
            },
            Some(2),
        );

        // when / then
        assert!(!fall.cut_due(Duration::from_millis(400)));
        assert!(fall.cut_due(Duration::from_millis(500)));
        fall.cut = true;
        assert!(!fall.cut_due(Duration::from_millis(600)));
        assert_eq!(fall.stop_due(Duration::from_secs(1)), None);
        assert_eq!(fall.stop_due(Duration::from_secs(2)), Some(2));
        fall.stopped = true;
        assert_eq!(fall.stop_due(Duration::from_secs(3)), None);
    }
}
